"""What the publisher's subscribers ask for: the topic prefixes subscribed on its XPUB socket.

An XPUB socket hands its owner one message per subscription change: ``b"\\x01" + prefix`` when the
first subscriber subscribes to a prefix, ``b"\\x00" + prefix`` when the last one unsubscribes or
goes away (ZeroMQ keeps the count; without ``XPUB_VERBOSE`` only these edges are passed). The set
of subscribed prefixes is then exactly what the socket would deliver to: a message on ``topic``
reaches a subscriber iff some subscribed prefix starts ``topic``. :meth:`Demand.wants` asks that
question before the work of making the message, so the publisher annotates and JPEG-encodes a
stream's frames only while someone receives them (the detections always go out: they cost nothing).

Pure, no sockets: the stage reads the socket and feeds :meth:`Demand.update`.
"""

from __future__ import annotations

__all__ = ["Demand"]


class Demand:
    """The subscribed topic prefixes of one XPUB socket, from its subscription messages."""

    def __init__(self) -> None:
        self.prefixes: set[bytes] = set()
        self.changes = 0
        """Subscription messages taken (subscribe and unsubscribe)."""

    def update(self, message: bytes) -> None:
        """One subscription message: ``b"\\x01" + prefix`` (subscribe) or ``b"\\x00" + prefix``;
        anything else (a subscriber's own message on XPUB: not subscription traffic) is ignored."""
        if not message or message[0] not in (0, 1):
            return
        self.changes += 1
        if message[0] == 1:
            self.prefixes.add(bytes(message[1:]))
        else:
            self.prefixes.discard(bytes(message[1:]))

    def wants(self, topic: str | bytes) -> bool:
        """Whether a message on ``topic`` would reach any subscriber (ZeroMQ's prefix match)."""
        t = topic.encode() if isinstance(topic, str) else topic
        return any(t.startswith(p) for p in self.prefixes)
