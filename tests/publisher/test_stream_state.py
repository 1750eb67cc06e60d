"""The bridge's per-stream state on its own: decoded messages in, what the HTTP routes serve out."""

from __future__ import annotations

import threading
import time

from streamcam.protocol import decode, encode, jpeg_part
from streamcam.publisher.stream_state import MAX_EVENTS, MAX_STREAMS, PLAIN_FRESH_S, PLAIN_HOLD_S, BridgeStreams


def frames(stream: str, seq: int, jpeg: bytes = b"\xff\xd8jpeg", plain: bytes | None = None, **fields):
    parts = [jpeg_part("image", jpeg, 4, 2)] + ([jpeg_part("image_plain", plain, 4, 2)] if plain else [])
    return decode(encode("frames", stream, seq, 0, parts, **fields))


def test_a_frame_becomes_the_snapshot_and_its_detections_the_record():
    s = BridgeStreams()
    s.apply(frames("a", 3, b"one-jpeg", detections=[], width=4, height=2, fps=10.0), now=1.0)
    assert s.has_stream("a") and not s.has_stream("b")
    assert s.snapshot("a") == b"one-jpeg"
    record = s.detections("a")
    assert record["seq"] == 3 and record["detections"] == [] and record["fps"] == 10.0
    assert not {"v", "kind", "parts"} & set(record)  # the wire's own fields are not the record's
    (row,) = s.listing(now=1.5)
    assert (row["id"], row["seq"], row["fps"], row["width"], row["frames"], row["age_s"]) == ("a", 3, 10.0, 4, 1, 0.5)


def test_plain_frames_are_offered_only_while_fresh():
    s = BridgeStreams()
    t0 = time.monotonic()  # the queries read the monotonic clock
    s.apply(frames("a", 1, b"hot-jpeg", plain=b"cold-jpeg"), now=t0)
    assert s.snapshot("a", heatmap=False) == b"cold-jpeg" and s.snapshot("a") == b"hot-jpeg"
    assert s.listing(now=t0 + PLAIN_FRESH_S)[0]["plain"] is True
    assert s.listing(now=t0 + PLAIN_FRESH_S + 0.1)[0]["plain"] is False
    s.apply(frames("b", 1, b"hot-jpeg"), now=t0)
    assert s.snapshot("b", heatmap=False) is None and s.snapshot("b") == b"hot-jpeg"


def test_a_plain_copy_made_on_request():
    """``plain_offered``: the toggle is offered before any copy came; a frame without the copy is
    not served as one (its image has the heatmap) unless it says it has none; the bridge's demand
    lasts PLAIN_HOLD_S after the last request, and only for streams that make it on request."""
    s = BridgeStreams()
    t0 = time.monotonic()
    s.apply(frames("a", 1, b"hot-jpeg", plain_offered=True), now=t0)
    s.apply(frames("old", 1, b"hot-jpeg", plain=b"cold-jpeg"), now=t0)
    assert s.offers_plain("a") and s.snapshot("a", heatmap=False) is None
    assert s.plain_wanted(t0) == set()
    s.want_plain("a", t0)
    s.want_plain("old", t0)  # always sent: nothing to ask for
    s.want_plain("nobody", t0)
    assert s.plain_wanted(t0 + PLAIN_HOLD_S) == {"a"} and s.plain_wanted(t0 + PLAIN_HOLD_S + 0.1) == set()
    s.apply(frames("a", 2, b"hot-jpeg", plain=b"cold-jpeg", plain_offered=True), now=t0)
    assert s.snapshot("a", heatmap=False) == b"cold-jpeg"
    s.apply(frames("a", 3, b"no-heatmap-jpeg", plain_offered=True, heatmap=False), now=t0)
    assert s.snapshot("a", heatmap=False) == b"no-heatmap-jpeg"


def test_a_new_id_past_the_cap_evicts_the_least_recently_updated():
    s = BridgeStreams()
    for i in range(MAX_STREAMS):
        s.apply(frames(f"s{i}", 0), now=float(i))
    s.apply(frames("s0", 1), now=100.0)  # s0 is now the newest; s1 the oldest
    s.apply(frames("late", 0), now=101.0)
    assert len(s) == MAX_STREAMS and s.evicted == 1
    assert s.has_stream("late") and s.has_stream("s0") and not s.has_stream("s1")


def test_events_keep_their_latest_state_newest_first_and_bounded():
    s = BridgeStreams()
    for i in range(MAX_EVENTS + 5):
        s.apply(decode(encode("events", "a", i, 0, events=[{"id": f"e{i}", "type": "new", "label": "person"}])), now=0.0)
    s.apply(decode(encode("events", "a", 99, 0, events=[{"id": f"e{MAX_EVENTS + 4}", "type": "end", "label": "person"}])), now=0.0)
    got = s.events("a")
    assert len(got) == MAX_EVENTS and got[0] == {"id": f"e{MAX_EVENTS + 4}", "type": "end", "label": "person"}
    assert got[-1]["id"] == "e5"


def test_wait_frame_returns_on_a_new_frame_or_on_stop():
    s = BridgeStreams()
    s.apply(frames("a", 1, b"one-jpeg"), now=0.0)
    jpeg, seen = s.wait_frame("a", -1, timeout=1.0)
    assert jpeg == b"one-jpeg"
    threading.Timer(0.05, s.apply, (frames("a", 2, b"two-jpeg"), 0.1)).start()
    assert s.wait_frame("a", seen, timeout=5.0)[0] == b"two-jpeg"
    stop = threading.Event()
    threading.Timer(0.05, lambda: (stop.set(), s.wake())).start()
    assert s.wait_frame("a", seen + 1, timeout=5.0, stopping=stop.is_set) == (None, seen + 1)
    assert stop.is_set()
