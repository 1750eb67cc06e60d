"""Results of one stream in capture order, whichever worker detected them (pure, no sockets).

Scaled out, the frames of one stream go to several workers; a slow one may answer after a
faster one has answered a newer frame. Tracks must never step back in time, so a result is
passed only when it is newer than the last one passed for its stream; an older one is *late*:
counted and dropped (its frame was already overtaken; waiting for it would add latency to
every frame). Gaps are normal (frames skipped upstream) and never waited for.

"Newer" is by ``seq``; a smaller ``seq`` with a later capture time is the capture stage
restarted (its ``seq`` starts again at 0): the stream starts over instead of dropping every
frame until the old ``seq`` is passed.
"""

from __future__ import annotations

from ..bounded import StreamTable


class SeqOrder:
    """``admit(stream, seq, t_capture_ns) -> bool``: True for a result to pass on, False for a late one."""

    def __init__(self, max_streams: int = 64) -> None:
        self._last: StreamTable[list[int]] = StreamTable(max_streams, lambda _s: [-1, -1])
        self.late = 0
        """Results dropped because a newer one of their stream had passed."""
        self.restarts = 0
        """Streams whose seq started again (a restarted capture)."""

    def admit(self, stream: str, seq: int, t_capture_ns: int) -> bool:
        last = self._last.get(stream)
        last_seq, last_t = last
        if seq > last_seq:
            last[0], last[1] = seq, t_capture_ns
            return True
        if seq < last_seq and t_capture_ns > last_t:
            self.restarts += 1
            last[0], last[1] = seq, t_capture_ns
            return True
        self.late += 1
        return False

    @property
    def evicted(self) -> int:
        return self._last.evicted

    def __len__(self) -> int:
        return len(self._last)
