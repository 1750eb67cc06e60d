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


def single_threaded_blas() -> bool:
    """One BLAS thread in a stage process, for the reason of :func:`single_threaded_opencv`: numpy's
    OpenBLAS starts a thread per core for every large product (the CAM's channels x cells matmul),
    so a processor set to one engine thread kept both cores of this machine busy (measured: a
    scale-out worker at 175-193 % CPU with ``processor.threads: 1``, and a second worker on another
    "host" added nothing). Through threadpoolctl, which finds the BLAS numpy loaded; False (nothing
    changed) without it."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(limits=1, user_api="blas")
    return True


FRAME_HEAP_MMAP_THRESHOLD = 32 << 20
"""Allocations up to this size come from the heap, not a fresh ``mmap`` (glibc's own dynamic ceiling)."""
FRAME_HEAP_TRIM_THRESHOLD = 64 << 20
"""Free memory the heap keeps at its top before it gives pages back to the kernel."""


def steady_frame_memory() -> bool:
    """Keep the memory of freed frame buffers in the process for the next frame (glibc only; True
    when set, False where there is no glibc ``mallopt``, e.g. musl or macOS).

    A stage allocates several frame-sized buffers per frame (a decoded 768x576 BGR frame is 1.3 MB,
    its float input 5.3 MB; ZeroMQ's receive buffers, OpenCV's and numpy's results) and frees them
    at the end of the frame. glibc serves a block of this size with ``mmap`` and, freeing it, gives
    the pages back (``munmap``, or trimming the heap's top past the dynamic trim threshold): every
    frame then page-faults its buffers in again, zeroed by the kernel. Measured: the publisher's
    768x576 heatmap blend took ~1,150 minor faults and 5-13 ms a call instead of 0 faults and ~2 ms,
    and the publisher stage ~11.6 -> ~6.3 CPU ms per frame in the pipeline. Fixed thresholds keep
    these blocks on the heap, reused frame after frame (the buffer pool a video pipeline has, for
    every allocator in the process at once: numpy, OpenCV, libzmq). The cost is that up to
    :data:`FRAME_HEAP_TRIM_THRESHOLD` of freed memory stays mapped in each stage process.
    """
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # <malloc.h>
    ok = mallopt(m_mmap_threshold, FRAME_HEAP_MMAP_THRESHOLD) == 1
    ok = mallopt(m_trim_threshold, FRAME_HEAP_TRIM_THRESHOLD) == 1 and ok
    if not ok:
        log.warning("mallopt refused the frame heap thresholds; frame buffers are page-faulted in per frame")
    return ok


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
