"""The stabilizer stage (scaled out): the workers' results → each stream in ``seq`` order → tracks → the publisher.

The one place per-stream state lives when detection is spread over stateless workers: it binds
``detected`` (every worker pushes there), puts each stream's results back in capture order
(:class:`~streamcam.stabilizer.order.SeqOrder`: a result overtaken by a newer one of its stream is
late, counted and dropped, never fed to the tracks), runs the stream's stabilizer on the result's
candidates (:class:`~streamcam.processor.stabilized.StreamTracks`) and pushes the tracked result to
the publisher's ``results`` endpoint, exactly as the single processor does. It is light: no
engine, no pixels touched (the frame's parts are passed on as they came, without copies).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

import numpy as np
import zmq

from .. import protocol
from ..config import PipelineConfig
from ..guard import MessageGuard
from ..intake import take_waiting
from ..metrics import StageMetrics
from ..stats import Every, SendTally, write_stats
from ..transport import make_socket, send_nowait
from .detector import FrameResult

log = logging.getLogger("streamcam.stabilizer")


def tracks_for(cfg: PipelineConfig):
    """The :class:`StreamTracks` a config's workers feed: the model's first chosen class and its
    box-size correction, read from the model's metadata (no engine is built)."""
    from .model_meta import read_metadata
    from .stabilized import StreamTracks

    p = cfg.processor
    faces = p.mode == "faces"
    meta = read_metadata(cfg.model_path())
    names = tuple(p.classes) or meta.positive_classes or meta.classes
    label, index = ("", 0) if faces else (names[0], meta.class_index(names[0]))
    return StreamTracks(cfg.stabilizer, label, index, p.min_score, meta.box_correction, faces=faces,
                        live=True, max_streams=cfg.run.max_streams)


def frame_result(msg: protocol.Message) -> FrameResult:
    """A worker's ``result`` message as the detector's :class:`FrameResult` (what the stabilizer reads)."""
    cam = msg.part("cam") if msg.has_part("cam") else None
    return FrameResult(msg.detections(), cam, np.asarray(msg.header.get("probs", []), dtype=np.float64),
                       dict(msg.header.get("timings_ms", {})), batch=int(msg.header.get("batch", 1)))


def tracked_message(msg: protocol.Message, result: FrameResult, tracks: list, with_tracks: bool) -> list:
    """The worker's result with the stabilizer's detections (and tracks); the frame's parts as they came."""
    skip = {"v", "kind", "stream", "seq", "t_capture_ns", "parts", "detections", "timings_ms", "tracks"}
    fields = {k: v for k, v in msg.header.items() if k not in skip}
    if with_tracks:
        fields["tracks"] = tracks
    return protocol.encode("result", msg.stream, msg.seq, msg.t_capture_ns, zip(msg.header["parts"], msg.payloads),
                           detections=[d.to_json() for d in result.detections],
                           timings_ms={k: round(v, 3) for k, v in result.timings_ms.items()}, **fields)


def run_stabilizer(cfg: PipelineConfig, stop: threading.Event, ctx: zmq.Context | None = None) -> int:
    """Serve ``detected`` until ``stop``; push each stream's tracked results, in order, to ``results``."""
    from ..stabilizer.order import SeqOrder

    tracks = tracks_for(cfg)
    order = SeqOrder(cfg.run.max_streams)
    ctx = ctx or zmq.Context.instance()
    pull = make_socket(ctx, "PULL", cfg.endpoint("detected"), bind=True, curve=cfg.curve())
    push = make_socket(ctx, "PUSH", cfg.endpoint("results"), bind=False, curve=cfg.curve())
    rejects = protocol.RejectCounter()
    metrics = StageMetrics("stabilizer", None)
    guard = MessageGuard("stabilizer", metrics, log)
    received = 0
    tally = SendTally()
    by_worker: Counter[str] = Counter()
    reporting = Every(1.0)
    log.info("stabilizer: %s → %s", cfg.endpoint("detected"), cfg.endpoint("results"))

    def report() -> None:
        write_stats(cfg.run_dir, "stabilizer", {
            "stage": "stabilizer", "received": received, "published": tally.sent, "late": order.late,
            "dropped": tally.dropped, "restarts": order.restarts, "fps": tally.rate, "workers": dict(by_worker),
            "streams": len(order), "evicted": max(order.evicted, tracks.streams.evicted),
            "clock_steps": tracks.clock_steps, "rejected": dict(rejects.counts), "failed": dict(guard.counts),
        })

    def handle(msg: protocol.Message) -> None:
        if not order.admit(msg.stream, msg.seq, msg.t_capture_ns):
            metrics.frames_dropped.labels("stabilizer", msg.stream, "late").inc()
            return
        image = msg.part("image")
        result, tracked = tracks.track(msg.stream, frame_result(msg), (image.shape[1], image.shape[0]),
                                       msg.t_capture_ns)
        tally(metrics.sent(send_nowait(push, tracked_message(msg, result, tracked, cfg.stabilizer.enabled)),
                           "stabilizer", msg.stream))

    try:
        while not stop.is_set():
            if reporting.due():
                report()
            if not pull.poll(100, zmq.POLLIN):
                continue
            for stream, msgs in take_waiting(pull, "result", "stabilizer", rejects, metrics, log, guard).items():
                # What arrived together goes out in seq order; what arrives after a newer one is late.
                for msg in sorted(msgs, key=lambda m: m.seq):
                    received += 1
                    worker = msg.header.get("worker")
                    if isinstance(worker, str) and (worker[:64] in by_worker or len(by_worker) < 64):
                        by_worker[worker[:64]] += 1  # names off the wire: a bounded table
                    with guard.message(stream):
                        handle(msg)
        report()
    finally:
        pull.close(0)
        push.close(0)
    return 0
