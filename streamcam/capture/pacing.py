"""Deliver frames on an absolute schedule at a given rate (no drift, no bursts)."""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

log = logging.getLogger(__name__)


class Pacer:
    """Releases frames on an absolute schedule of ``fps`` slots per second.

    Slot k is at ``t0 + k / fps`` (t0 = the first :meth:`wait`), so timing errors do not
    accumulate. A caller that is late gets its frame at once and the schedule skips the
    slots it missed (counted in ``skipped``) instead of bursting to catch up.
    """

    def __init__(self, fps: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if not fps or not 0 < fps <= 10000:
            raise ValueError(f"Pacer: expected 0 < fps <= 10000, got {fps}")
        self.fps = float(fps)
        self.period = 1.0 / self.fps
        self._clock = clock
        self._sleep = sleep
        self._next: Optional[float] = None
        self.skipped = 0

    def reset(self) -> None:
        """Start a new schedule at the next wait (e.g. after a reconnect)."""
        self._next = None

    def wait(self, stop: Optional[threading.Event] = None) -> bool:
        """Sleep until the next slot; False if ``stop`` was set while waiting."""
        now = self._clock()
        if self._next is None:
            self._next = now + self.period
            return True
        deadline = self._next
        if now < deadline:
            if stop is not None:
                if stop.wait(deadline - now):
                    return False
            else:
                self._sleep(deadline - now)
            self._next = deadline + self.period
            return True
        missed = int((now - deadline) // self.period)
        self.skipped += missed
        self._next = deadline + (missed + 1) * self.period
        return True
