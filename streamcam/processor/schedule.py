"""Which frames of a stream go through the network: the per-stream detect rate.

A camera may deliver more frames than the network needs to see (Frigate's *detect fps*): every
frame is still published, the frames between detections carry the stabilizer's predicted tracks.
Two ways to say the rate, per stream:

* ``detect_every = n``: the network sees frames 0, n, 2n, ... of the stream (counted as taken).
* ``detect_fps = f``: the network sees a frame when one is due by its capture time: one every
  ``1/f`` s on a fixed timetable, so a 30 fps camera at ``detect_fps: 10`` is detected on every
  third frame whatever the jitter of its timestamps: the frame nearest a due time is detected (a
  frame counts as on time when it is less than half a frame interval early), and a stream that
  fell behind (a gap, a slow engine) restarts its timetable.

Pure and synchronous: no clocks of its own, only the frames' capture timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DetectSchedule:
    """``due(stream, t_capture_ns) -> bool`` for each frame taken, in the order taken."""

    every: int = 1
    """Detect every n-th frame of each stream (1 = every frame)."""
    fps: float | None = None
    """Detect at most this many frames per second of each stream (None: by ``every`` only)."""
    per_stream_fps: dict[str, float] = field(default_factory=dict)
    """Streams with their own detect rate (``streams[].detect_fps``), overriding ``fps``."""
    _seen: dict[str, int] = field(default_factory=dict, repr=False)
    _next_ns: dict[str, int] = field(default_factory=dict, repr=False)
    _last_ns: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"every: expected an integer >= 1, got {self.every!r}")
        for name, f in [("fps", self.fps), *((f"per_stream_fps[{k!r}]", v) for k, v in self.per_stream_fps.items())]:
            if f is not None and not f > 0:
                raise ValueError(f"{name}: expected a rate > 0 frames/s, got {f!r}")

    def rate(self, stream: str) -> float | None:
        """The detect fps of ``stream`` (None: every ``every``-th frame)."""
        return self.per_stream_fps.get(stream, self.fps)

    def due(self, stream: str, t_capture_ns: int) -> bool:
        """Whether this frame of ``stream`` goes through the network; the first frame always does."""
        fps = self.rate(stream)
        if fps is None:
            n = self._seen.get(stream, 0)
            self._seen[stream] = n + 1
            return n % self.every == 0
        period = int(1e9 / fps)
        nxt = self._next_ns.get(stream)
        prev = self._last_ns.get(stream)
        self._last_ns[stream] = t_capture_ns
        # Early by less than half the last frame interval: this frame is nearer the due time than the next.
        early = min(max(t_capture_ns - prev, 0) // 2, period // 2) if prev is not None else 0
        if nxt is not None and t_capture_ns < nxt - early:
            return False
        # On the timetable (next = previous due + period), unless the stream is a period or more
        # behind it: then the timetable restarts from this frame, so no burst of catch-up detections.
        self._next_ns[stream] = nxt + period if nxt is not None and t_capture_ns < nxt + period else t_capture_ns + period
        return True

    def forget(self, stream: str) -> None:
        """A stream removed: its next frame starts afresh (and is detected)."""
        self._seen.pop(stream, None)
        self._next_ns.pop(stream, None)
        self._last_ns.pop(stream, None)
