"""The bounded queue every event sink drains: the pipeline's side never waits for a network.

A sink's own thread takes events from the head (and leaves one there while its endpoint is
away); the publisher only appends. Beyond ``queue_size`` the oldest event is dropped and counted
under ``queue_full``: a broker or webhook that stays down costs memory up to that bound, never
a stalled frame.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any


class Outbox:
    """``send`` (never blocks), ``queued``, the queue and its condition for the sink's thread."""

    def __init__(self, queue_size: int) -> None:
        self.queue_size = int(queue_size)
        self.dropped: Counter[str] = Counter()
        """Events not sent, by reason: ``queue_full``, and whatever the sink adds (e.g. ``rejected``)."""
        self._queue: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()

    def send(self, event: dict[str, Any]) -> None:
        """Queue one event object; the oldest goes (counted) when the queue is full."""
        with self._cond:
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self.dropped["queue_full"] += 1
            self._queue.append(event)
            self._cond.notify()

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._queue)
