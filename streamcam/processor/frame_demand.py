"""Whether a stream's frames have anyone to go to: the processor leaves the image out of a result
the publisher would not draw.

The publisher annotates and JPEG-encodes a stream's frames only while ``frames/<id>`` (or its
heatmap-free copy's demand topic) is subscribed (:mod:`streamcam.publisher.demand`); the
detections always go out. Its result still carried the whole frame across (a 640x480 colour frame
is 0.9 MB: ~0.3 ms of ZeroMQ's I/O thread on each side, measured with 8 cameras at 30 fps, where
nothing subscribed to a frame). The publisher says what is subscribed in its ``stats/publisher``
message on the bus (once a second, and at once when a subscription changes); this is what the
processor reads from it.

Safe by default: until a first report, or when none came for ``stale_s``, every frame is wanted
(a publisher that restarted, a bus the processor cannot reach). Events that keep snapshots or
clips need every frame: ``always``.

Pure, no sockets: the processor's loop feeds :meth:`FrameDemand.update`.
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from ..protocol import plain_demand_topic

__all__ = ["FrameDemand"]


class FrameDemand:
    """The publisher's subscriptions, as the processor needs them: does stream ``s`` want frames?"""

    def __init__(self, always: bool = False, stale_s: float = 3.0) -> None:
        self.always = always
        self.stale_s = stale_s
        self.prefixes: tuple[bytes, ...] = ()
        self.updated: float | None = None
        """Monotonic time of the last report (None: none yet)."""
        self.reports = 0

    def update(self, subscribed: Iterable[Any], now: float | None = None) -> None:
        """One report: the publisher's subscribed topic prefixes (its stats' ``subscribed``)."""
        self.prefixes = tuple(p.encode() for p in subscribed if isinstance(p, str))
        self.updated = time.monotonic() if now is None else now
        self.reports += 1

    def wants(self, stream: str, now: float | None = None) -> bool:
        """Whether a result of ``stream`` should carry its frame."""
        if self.always or self.updated is None:
            return True
        now = time.monotonic() if now is None else now
        if now - self.updated > self.stale_s:
            return True
        topics = (f"frames/{stream}".encode(), plain_demand_topic(stream).encode())
        return any(t.startswith(p) for t in topics for p in self.prefixes)
