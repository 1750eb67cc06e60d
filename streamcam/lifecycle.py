"""Designed shutdown for stage processes: signals set one Event, children die with their parent."""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading

log = logging.getLogger(__name__)


def install_stop_handlers(stop: threading.Event,
                          signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> None:
    """SIGINT and SIGTERM take the same path: set ``stop``; loops see it within their timeout.

    The handler itself only writes a byte to a pipe; a watcher thread sets ``stop``. Python runs
    signal handlers in the main thread between bytecodes, and that thread spends its life in
    ``stop.wait(timeout)``, which holds the event's internal (non-reentrant) lock for a few
    bytecodes on every call: ``stop.set()`` called from the handler at that moment waits for a
    lock its own thread holds, forever. That hung a supervisor on SIGTERM in CI.
    """
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)

    def _handler(signum: int, _frame: object) -> None:
        try:
            os.write(write_fd, bytes([signum & 0xFF]))
        except BlockingIOError:
            pass  # the pipe is full of earlier stop requests: one more adds nothing

    def _watch() -> None:
        while True:
            data = os.read(read_fd, 64)
            if not data:
                return
            log.debug("signal %d: stopping", data[0])
            stop.set()

    threading.Thread(target=_watch, name="stop-signals", daemon=True).start()
    for signum in signals:
        signal.signal(signum, _handler)


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no orphans if the supervisor is killed)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except OSError as exc:
            log.warning("cannot set parent-death signal: %s", exc)


def single_threaded_opencv() -> None:
    """One OpenCV thread in a stage process: the stages (and the engine's own threads) are the
    parallelism. OpenCV's pool would start a thread per core for every resize, labelling or blend,
    and on a small shared machine those threads wait for the cores the other stages hold
    (connected components at 320x240 measured 1.5-2x slower with 2 threads than with 1 here)."""
    import cv2

    cv2.setNumThreads(1)


def setup_logging(level: str = "INFO", name: str = "") -> None:
    fmt = f"%(asctime)s {name + ' ' if name else ''}%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level, logging.INFO), format=fmt, stream=sys.stderr, force=True)


def terminate(proc, timeout: float, kill_wait: float = 5.0) -> None:
    """SIGTERM a child process (a ``subprocess.Popen``), SIGKILL it if it has not stopped within
    ``timeout`` seconds: the designed shutdown first, the hard one only for a stage that hangs."""
    import subprocess

    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=kill_wait)
