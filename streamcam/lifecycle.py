"""Designed shutdown for stage processes: signals set one Event, children die with their parent."""

from __future__ import annotations

import ctypes
import logging
import signal
import sys
import threading

log = logging.getLogger(__name__)


def install_stop_handlers(stop: threading.Event) -> None:
    """SIGINT and SIGTERM take the same path: set ``stop``; loops see it within their timeout."""

    def _handler(signum: int, _frame: object) -> None:
        log.debug("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, _handler)
    signal.signal(signal.SIGTERM, _handler)


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies (no orphans if the supervisor is killed)."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except OSError as exc:
            log.warning("cannot set parent-death signal: %s", exc)


def setup_logging(level: str = "INFO", name: str = "") -> None:
    fmt = f"%(asctime)s {name + ' ' if name else ''}%(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=getattr(logging, level, logging.INFO), format=fmt, stream=sys.stderr, force=True)
