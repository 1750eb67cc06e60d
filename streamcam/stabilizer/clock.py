"""The stabilizer's clock: capture times mapped onto this host's monotonic clock.

The Kalman filter and the smoothing need the time *between* frames. Capture times
(``t_capture_ns``, wall clock of the capture host) give it most precisely, but a wall
clock steps (NTP, a camera restarted with a wrong clock) and a late frame can carry an
older time than one already seen; fed as is, either makes ``dt`` negative or huge. This
clock keeps the capture times' spacing while it is plausible and re-anchors on the local
monotonic clock when it is not, so the dynamics never see time go backwards or jump
ahead of the host. The capture time itself stays on the wire untouched.
"""

from __future__ import annotations

from typing import Optional

STEP_NS = 1_000_000_000
"""A capture time this far behind the last one, or ahead of the host, is a clock step, not jitter."""


class StreamClock:
    """``clock(t_capture_ns, now_ns) -> seconds`` for one stream: never decreasing.

    ``now_ns`` is the host's ``time.monotonic_ns()`` when the frame is handled (live), or
    None offline (a recorded file, processed faster or slower than real time), where only
    a step backwards is corrected (the frame gets the last time: ``dt = 0``).
    """

    def __init__(self) -> None:
        self._offset: Optional[int] = None
        self._last: Optional[int] = None
        self.steps = 0
        """How often the capture clock stepped and the clock re-anchored."""

    def __call__(self, t_capture_ns: int, now_ns: Optional[int] = None) -> float:
        if self._offset is None:
            self._offset = 0 if now_ns is None else now_ns - t_capture_ns
        t = t_capture_ns + self._offset
        last = self._last
        if last is not None and t < last - STEP_NS or now_ns is not None and t > now_ns + STEP_NS:
            # A step: this frame is "now" (live) or "just after the last" (offline); later frames
            # keep their capture spacing from it.
            self.steps += 1
            anchor = now_ns if now_ns is not None else last
            self._offset = anchor - t_capture_ns
            t = anchor
        elif now_ns is not None and t > now_ns:
            # Less latency than any frame before (the first ones wait for the engine to warm up):
            # the offset follows the smallest latency, so the dynamics time never runs ahead of the host.
            self._offset = now_ns - t_capture_ns
            t = now_ns
        if last is not None:
            t = max(t, last)  # a late, older frame: no motion rather than negative time
        self._last = t
        return t / 1e9
