"""The sinks' outbox: bounded, the oldest dropped and counted, the sender woken by a new event."""

from __future__ import annotations

import threading

from streamcam.events.outbox import Outbox


def test_a_full_outbox_drops_the_oldest_and_counts_it():
    box = Outbox(3)
    for i in range(5):
        box.send({"id": i})
    assert box.queued == 3 and box.dropped == {"queue_full": 2}
    with box._cond:  # the sink's thread reads the head under the condition
        assert [e["id"] for e in box._queue] == [2, 3, 4]


def test_send_wakes_a_waiting_sender():
    box = Outbox(4)
    got = []

    def sender():
        with box._cond:
            box._cond.wait_for(lambda: bool(box._queue), timeout=10)
            got.append(box._queue[0])

    t = threading.Thread(target=sender)
    t.start()
    box.send({"id": 1})
    t.join(10)
    assert got == [{"id": 1}] and not t.is_alive()
