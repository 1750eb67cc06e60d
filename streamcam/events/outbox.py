"""The queue between the publisher and a sink's sender thread: bounded, never blocking the publisher.

``put`` drops the oldest event (counted as ``queue_full``) when the queue is full: the sink's
endpoint was away too long, and the newest events are the ones worth sending. The sender takes
the oldest with :meth:`Outbox.head` and removes it with :meth:`Outbox.done` once delivered (or
given up), so an event that fails stays first in line.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import Any, Optional


class Outbox:
    """Events waiting for one sink; shares the sink's condition so the sender wakes on a new event."""

    def __init__(self, size: int, dropped: Counter[str], cond: threading.Condition) -> None:
        self.size = size
        self.dropped = dropped
        """The sink's counter of events not sent, by reason (this adds ``queue_full``)."""
        self.cond = cond
        self._events: deque[dict[str, Any]] = deque()

    def put(self, event: dict[str, Any]) -> None:
        """Queue one event (never blocks) and wake the sender."""
        with self.cond:
            if len(self._events) >= self.size:
                self._events.popleft()
                self.dropped["queue_full"] += 1
            self._events.append(event)
            self.cond.notify()

    def head(self) -> Optional[dict[str, Any]]:
        """The oldest event, left in the queue (None when empty); call with :attr:`cond` held."""
        return self._events[0] if self._events else None

    def done(self, event: dict[str, Any]) -> None:
        """Remove ``event`` if it is still first (a full queue may already have dropped it)."""
        with self.cond:
            if self._events and self._events[0] is event:
                self._events.popleft()

    def __len__(self) -> int:
        with self.cond:
            return len(self._events)

    def __bool__(self) -> bool:
        return len(self) > 0
