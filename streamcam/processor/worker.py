"""A stateless detection worker (scaled out): frames from the dispatcher → engine → CAM → boxes → the stabilizer.

Any number of workers, on any hosts, connect to the dispatcher's ``work`` endpoint; ZeroMQ's
PUSH hands each frame to one of them (round robin over the workers whose queue has room, so a
slow or busy worker gets fewer). A worker keeps nothing per stream: its results carry the
candidates (boxes at the stabilizer's candidate gate, the map and the probabilities) to the
stabilizer stage, which holds the tracks and puts each stream's results back in ``seq`` order.
Each batch is the newest frame of each stream waiting (the older ones are skipped, counted), as a
single processor does. A worker that dies loses only the frames in its engine call; the others
take its share.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import zmq

from .. import protocol
from ..config import PipelineConfig
from ..guard import MessageGuard
from ..intake import take_newest
from ..metrics import StageMetrics
from ..stats import Every, LatencyWindow, SendTally, write_stats
from ..transport import SocketPolicy, make_socket, send_nowait
from .stage import _pixel_format, build_stabilized_detector, result_message

log = logging.getLogger("streamcam.worker")

WORK_POLICY = SocketPolicy(rcvhwm=32, heartbeat_ms=250)
"""Room for a backlog, so that the worker sees it and skips it: ZeroMQ's queue is not the only one.
A frame in flight to a worker also sits in the kernel's socket buffers, which TCP grows to
megabytes: hundreds of small frames. With room for one message here, ZeroMQ read the next frame
from the kernel only as the last was taken, the newest-frame policy never saw the backlog, and
every frame was detected seconds after its capture (measured, ``tools.bench_workers`` with the
worker the bottleneck: capture -> publish p50 5.5 s; a SIGKILLed peer's share came back after a
3.4 s gap, the survivor's older frames all late). With room for 32 the backlog is read at once
and all but each stream's newest frame skipped (p50 74 ms, gap 0.2 s). What waits here when the
worker dies would have been skipped: only the frames in its engine call are lost."""


def worker_name(name: str | None = None) -> str:
    """The worker's name in results and stats: given, or ``<host>-<pid>``."""
    return name or f"{socket.gethostname()}-{os.getpid()}"


def run_worker(cfg: PipelineConfig, stop: threading.Event, name: str | None = None,
               ctx: zmq.Context | None = None) -> int:
    """Take frames from ``work`` until ``stop``; push each frame's detector result to ``detected``."""
    name = worker_name(name)
    stabilized = build_stabilized_detector(cfg, live=True)  # only its candidate gate is used: no stabilizer is made
    detector = stabilized.detector
    ctx = ctx or zmq.Context.instance()
    pull = make_socket(ctx, "PULL", cfg.endpoint("work"), bind=False, policy=WORK_POLICY, curve=cfg.curve())
    push = make_socket(ctx, "PUSH", cfg.endpoint("detected"), bind=False, curve=cfg.curve())
    rejects = protocol.RejectCounter()
    metrics = StageMetrics("worker", None)  # several workers per host: no fixed metrics port
    guard = MessageGuard("worker", metrics, log)
    plain = cfg.publisher.wants_plain(cfg.serve.enabled)
    skipped = 0
    tally = SendTally()
    engine_ms = LatencyWindow()
    batches = LatencyWindow()
    reporting = Every(1.0)
    log.info("worker %s: %s on %s, %s → %s", name, cfg.model_path(), detector.engine.name,
             cfg.endpoint("work"), cfg.endpoint("detected"))

    def report() -> None:
        write_stats(cfg.run_dir, f"worker-{name}", {
            "stage": "worker", "worker": name, "backend": detector.engine.name, "processed": tally.sent,
            "skipped": skipped, "dropped": tally.dropped, "fps": tally.rate, "batch_p50": batches.recent(50),
            "engine_ms_p50": engine_ms.recent(50), "engine_ms_p99": engine_ms.recent(99),
            "rejected": dict(rejects.counts), "failed": dict(guard.counts),
        })

    def send(msg: protocol.Message, result) -> None:
        extra: dict = {"t_processed_ns": time.time_ns(), "worker": name}
        if result.batch > 1:
            extra["batch"] = result.batch
        if "truth" in msg.header:
            extra["truth"] = msg.header["truth"]
        engine_ms.add(result.timings_ms["engine"])
        batches.add(float(result.batch))
        tally(metrics.sent(send_nowait(push, result_message(msg, result, extra, plain)), "worker", msg.stream))

    try:
        while not stop.is_set():
            if reporting.due():
                report()
            if not pull.poll(100, zmq.POLLIN):
                continue
            newest, n_skipped = take_newest(pull, "frame", "worker", rejects, metrics, log, guard)
            skipped += n_skipped
            frames = list(newest.values())
            found: dict = {}
            # The newest frame of every stream waiting here in one engine call (batching across streams);
            # if the batch fails, each frame is detected alone, so one bad frame fails alone.
            with guard.message("batch"):
                args = [(m.stream, m.part("image"), _pixel_format(m), m.t_capture_ns) for m in frames]
                found = dict(zip(map(id, frames), stabilized.detect_batch(args)))
            for msg in frames:
                with guard.message(msg.stream):
                    result = found.get(id(msg))
                    if result is None:
                        result = stabilized.detect_batch([(msg.stream, msg.part("image"), _pixel_format(msg),
                                                        msg.t_capture_ns)])[0]
                    send(msg, result)
        report()
    finally:
        pull.close(0)
        push.close(0)
        getattr(detector, "close", detector.engine.close)()
    return 0
