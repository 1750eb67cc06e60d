"""The dispatcher (scaled out): ZeroMQ's own streamer device between the captures and the workers.

Captures push frames to ``frames`` (PULL, bound here) as they push them to a single processor;
``zmq.proxy_steerable`` forwards each message, in C and without copies, to ``work`` (PUSH,
bound here), where every worker, on any host, connects. PUSH hands a message to the next
worker in turn whose queue has room, so a busy worker is skipped and a dead one (its connection
gone, or its heartbeats unanswered for 4 × 250 ms) gets nothing more: its share moves to the
others. There is no scheduler of our own: the load balancing is ZeroMQ's.

When no worker has room the device stops reading ``frames``; the captures then drop (counted)
at their own high-water mark, as with one slow processor.
"""

from __future__ import annotations

import logging
import threading
import time

import zmq

from ..config import PipelineConfig
from ..security import stop_authenticators
from ..stats import write_stats
from ..transport import SocketPolicy, make_socket

log = logging.getLogger("streamcam.dispatcher")

WORK_POLICY = SocketPolicy(sndhwm=1, heartbeat_ms=250)
"""One frame queued per worker on this side: a frame waiting for a busy worker is a frame an idle
one could take; heartbeats find a worker whose host went silent within about a second."""


def _statistics(control: zmq.Socket) -> dict[str, int]:
    """The device's counters (``STATISTICS``: message parts and bytes in/out of each side)."""
    control.send(b"STATISTICS")
    if not control.poll(1000, zmq.POLLIN):
        return {}
    values = [int.from_bytes(v, "little") for v in control.recv_multipart()]
    names = ("frames_parts_in", "frames_bytes_in", "frames_parts_out", "frames_bytes_out",
             "work_parts_in", "work_bytes_in", "work_parts_out", "work_bytes_out")
    return dict(zip(names, values))


def run_dispatcher(cfg: PipelineConfig, stop: threading.Event) -> int:
    """Forward ``frames`` to ``work`` until ``stop`` (the device runs in a thread; this one steers it)."""
    # A context of its own: if the device is blocked sending to a worker at the stop, terminating the
    # context is what wakes it (ETERM), and it must not take other sockets of this process along.
    ctx = zmq.Context()
    frames = make_socket(ctx, "PULL", cfg.endpoint("frames"), bind=True, curve=cfg.curve())
    work = make_socket(ctx, "PUSH", cfg.endpoint("work"), bind=True, policy=WORK_POLICY, curve=cfg.curve())
    control_ep = f"inproc://dispatcher-control-{id(ctx)}"
    device_side = make_socket(ctx, "PAIR", control_ep, bind=True)
    control = make_socket(ctx, "PAIR", control_ep, bind=False, policy=SocketPolicy(rcvtimeo_ms=1000))

    def device() -> None:
        try:
            zmq.proxy_steerable(frames, work, None, device_side)
        except zmq.ZMQError as exc:
            if exc.errno != zmq.ETERM:
                log.error("dispatcher: the device stopped: %s", exc)
        finally:
            for sock in (frames, work, device_side):
                sock.close(0)

    thread = threading.Thread(target=device, name="dispatcher-device", daemon=True)
    thread.start()
    log.info("dispatcher: %s → %s (workers connect PULL)", cfg.endpoint("frames"), cfg.endpoint("work"))
    last: dict[str, int] = {}
    try:
        while not stop.wait(1.0) and thread.is_alive():
            last = _statistics(control) or last
            write_stats(cfg.run_dir, "dispatcher", {"stage": "dispatcher", **last})
    finally:
        if thread.is_alive():
            control.send(b"TERMINATE")
            thread.join(0.3)
        control.close(0)
        stop_authenticators(ctx)  # with CURVE on, its ZAP socket would keep ctx.term() waiting forever
        t0 = time.monotonic()
        ctx.term()  # returns once the device's sockets are closed; wakes a device blocked in a send
        thread.join(max(0.0, 1.0 - (time.monotonic() - t0)))
    return 0 if stop.is_set() else 1  # the device ended by itself: a crash, for the supervisor to restart
