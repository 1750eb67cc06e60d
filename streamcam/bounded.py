"""Per-stream state with a bound: what a stage keeps for each stream id it has seen.

Stream ids come off the wire, so a client can invent a new one with every message;
a plain dict would grow until the stage runs out of memory. A :class:`StreamTable`
keeps at most ``max_streams`` entries (``run.max_streams``) and evicts the least
recently seen one, counting evictions, so memory is bounded by the limit however
many ids arrive. A configured stream that is evicted by a flood starts again from
fresh state when its next frame comes (its tracks get new ids), and the stage lives.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Generic, Iterator, Optional, TypeVar

V = TypeVar("V")


class StreamTable(Generic[V]):
    """``table.get(stream)``: the stream's state, made by ``factory(stream)`` when new, marked as
    just seen; at most ``max_streams`` entries, the least recently seen evicted (``on_evict``)."""

    def __init__(self, max_streams: int, factory: Callable[[str], V],
                 on_evict: Optional[Callable[[str, V], None]] = None) -> None:
        if max_streams < 1:
            raise ValueError(f"max_streams: expected >= 1, got {max_streams}")
        self.max_streams = max_streams
        self.evicted = 0
        """Entries evicted to make room (each a stream whose state was dropped)."""
        self._factory = factory
        self._on_evict = on_evict
        self._entries: OrderedDict[str, V] = OrderedDict()

    def get(self, stream: str) -> V:
        entry = self._entries.get(stream)
        if entry is not None:
            self._entries.move_to_end(stream)
            return entry
        while len(self._entries) >= self.max_streams:
            old, value = self._entries.popitem(last=False)
            self.evicted += 1
            if self._on_evict is not None:
                self._on_evict(old, value)
        entry = self._entries[stream] = self._factory(stream)
        return entry

    def peek(self, stream: str) -> Optional[V]:
        """The stream's state if it has any, without marking it seen or making it."""
        return self._entries.get(stream)

    def __contains__(self, stream: object) -> bool:
        return stream in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def items(self):
        return self._entries.items()

    def values(self):
        return self._entries.values()
