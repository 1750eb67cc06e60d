"""The sinks' queue: bounded, the oldest dropped and counted, an undelivered event kept first."""

from __future__ import annotations

import threading
from collections import Counter

from streamcam.events.outbox import Outbox


def test_a_full_outbox_drops_the_oldest_and_counts_it():
    dropped: Counter[str] = Counter()
    box = Outbox(3, dropped, threading.Condition())
    for i in range(5):
        box.put({"id": i})
    assert len(box) == 3 and dropped == {"queue_full": 2}
    with box.cond:
        assert box.head() == {"id": 2}


def test_done_removes_the_event_only_while_it_is_still_first():
    box = Outbox(2, Counter(), threading.Condition())
    first = {"id": "a"}
    box.put(first)
    box.put({"id": "b"})
    box.put({"id": "c"})  # drops "a": its late delivery must not remove "b"
    box.done(first)
    with box.cond:
        assert box.head() == {"id": "b"}
    box.done(box.head())
    assert len(box) == 1 and box


def test_put_wakes_a_waiting_sender():
    cond = threading.Condition()
    box = Outbox(4, Counter(), cond)
    got = []

    def sender():
        with cond:
            cond.wait_for(lambda: box.head() is not None, timeout=10)
            got.append(box.head())

    t = threading.Thread(target=sender)
    t.start()
    box.put({"id": 1})
    t.join(10)
    assert got == [{"id": 1}] and not t.is_alive()
