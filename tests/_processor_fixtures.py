"""The processor stage in a thread of the test, with real sockets into and out of it."""

from __future__ import annotations

import contextlib
import threading
import time

import zmq

from streamcam.transport import make_socket


class _Connected:
    """``wait()`` for ``sock``'s first peer (its ZMTP handshake done: messages flow both ways). Made
    before the peer can appear, so that its event is not missed; ``close()`` in any case."""

    def __init__(self, sock: zmq.Socket) -> None:
        self.sock = sock
        self.mon = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)

    def wait(self, timeout: float = 20.0) -> None:
        from zmq.utils.monitor import recv_monitor_message

        where = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        assert self.mon.poll(int(timeout * 1000)), f"no peer on {where} within {timeout} s"
        recv_monitor_message(self.mon)

    def close(self) -> None:
        if not self.mon.closed:
            self.sock.disable_monitor()
            self.mon.close(0)


@contextlib.contextmanager
def processor_thread(cfg):
    """``run_processor`` in a thread; yields ``(push, pull)``: a PUSH into its frames endpoint and a
    PULL bound on its results endpoint, once the stage is connected to both (its PUSH drops results
    for a peer not connected yet). On exit the stage is stopped and must have ended."""
    from streamcam.processor.stage import run_processor

    ctx = zmq.Context()
    push = make_socket(ctx, "PUSH", cfg.endpoint("frames"), bind=False)
    pull = make_socket(ctx, "PULL", cfg.endpoint("results"), bind=True)
    peers = [_Connected(push), _Connected(pull)]
    stop = threading.Event()
    th = threading.Thread(target=run_processor, args=(cfg, stop))
    th.start()
    try:
        for peer in peers:
            peer.wait()
            peer.close()
        yield push, pull
    finally:
        for peer in peers:
            peer.close()
        stop.set()
        th.join(timeout=5)
        push.close(0)
        pull.close(0)
        ctx.term()
    assert not th.is_alive(), "the processor did not stop"


def stats_when(run_dir, ready, stage: str = "processor", timeout: float = 5.0) -> dict:
    """The stage's stats file once ``ready(stats)`` holds (it is rewritten once a second), or the
    last one read when ``timeout`` passes: the test's assertions then say what differed."""
    import json
    from pathlib import Path

    path = Path(run_dir) / "stats" / f"{stage}.json"
    deadline = time.monotonic() + timeout
    stats: dict = {}
    while True:
        try:
            stats = json.loads(path.read_text())
        except (OSError, ValueError):  # not written yet
            pass
        else:
            try:
                if ready(stats):
                    return stats
            except KeyError:  # an older report without the field
                pass
        if time.monotonic() >= deadline:
            return stats
        time.sleep(0.05)
