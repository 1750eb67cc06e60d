"""The processor stage in a thread of the test, with real sockets into and out of it."""

from __future__ import annotations

import contextlib
import threading
import time

import zmq

from streamcam.transport import make_socket


@contextlib.contextmanager
def processor_thread(cfg, settle_s: float = 0.5):
    """``run_processor`` in a thread; yields ``(push, pull)``: a PUSH into its frames endpoint and a
    PULL bound on its results endpoint. On exit the stage is stopped and must have ended."""
    from streamcam.processor.stage import run_processor

    stop = threading.Event()
    th = threading.Thread(target=run_processor, args=(cfg, stop))
    th.start()
    ctx = zmq.Context()
    push = make_socket(ctx, "PUSH", cfg.endpoint("frames"), bind=False)
    pull = make_socket(ctx, "PULL", cfg.endpoint("results"), bind=True)
    try:
        time.sleep(settle_s)
        yield push, pull
    finally:
        stop.set()
        th.join(timeout=5)
        push.close(0)
        pull.close(0)
        ctx.term()
    assert not th.is_alive(), "the processor did not stop"
