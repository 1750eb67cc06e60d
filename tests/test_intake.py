"""How a stage takes its input: every waiting message, the newest per stream, or a short burst whole."""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
import zmq

from streamcam import protocol
from streamcam.intake import take_newest, take_recent
from streamcam.metrics import StageMetrics
from streamcam.transport import SocketPolicy, make_socket

log = logging.getLogger("streamcam.test")


def _result(stream: str, seq: int, t_ns: int | None = None) -> list:
    return protocol.encode("result", stream, seq, time.time_ns() if t_ns is None else t_ns,
                           [protocol.raw_part("image", np.zeros((4, 6), np.uint8), "GRAY8")], width=6, height=4, detections=[])


@pytest.fixture
def pair():
    ctx = zmq.Context()
    room = SocketPolicy(sndhwm=32, rcvhwm=32)  # the whole backlog of a test fits: sends never block
    pull = make_socket(ctx, "PULL", "inproc://intake", bind=True, policy=room)
    push = make_socket(ctx, "PUSH", "inproc://intake", bind=False, policy=room)
    yield push, pull
    push.close(0)
    pull.close(0)
    ctx.term()


def _wait_waiting(pull) -> None:
    pull.poll(5000, zmq.POLLIN)
    time.sleep(0.05)  # inproc: everything sent is queued once the first message is


@pytest.mark.parametrize("max_age_ms, kept", [(0.0, [4]), (25.0, [2, 3, 4]), (45.0, [0, 1, 2, 3, 4])])
def test_take_recent_keeps_the_newest_and_the_fresh_ones_in_order(pair, max_age_ms, kept):
    """Frames captured 40, 30, 20, 10, 0 ms before now: the newest always, the older ones while fresh."""
    push, pull = pair
    now = time.time_ns()
    for seq in range(5):
        for sid in ("a", "b"):
            push.send_multipart(_result(sid, seq, now - (4 - seq) * 10_000_000 - 1))
    _wait_waiting(pull)
    metrics = StageMetrics("test", None)
    recent, skipped = take_recent(pull, "result", "test", protocol.RejectCounter(), metrics, log,
                                  max_age_ms=max_age_ms, now_ns=now)
    assert {s: [m.seq for m in msgs] for s, msgs in recent.items()} == {"a": kept, "b": kept}
    assert skipped == 2 * (5 - len(kept))


def test_a_stale_newest_is_still_taken(pair):
    push, pull = pair
    push.send_multipart(_result("a", 0, time.time_ns() - 10**10))
    _wait_waiting(pull)
    recent, skipped = take_recent(pull, "result", "test", protocol.RejectCounter(), StageMetrics("test", None), log,
                                  max_age_ms=100.0)
    assert [m.seq for m in recent["a"]] == [0] and skipped == 0


def test_take_newest_is_take_recent_of_one(pair):
    push, pull = pair
    for seq in range(3):
        push.send_multipart(_result("a", seq))
    _wait_waiting(pull)
    newest, skipped = take_newest(pull, "result", "test", protocol.RejectCounter(), StageMetrics("test", None), log)
    assert newest["a"].seq == 2 and skipped == 2


def test_the_publisher_publishes_a_burst_whole(short_tmp, tiny_model):
    """The processor sends a detection and the frames predicted meanwhile together: every one of
    them is published (publisher.catch_up_ms), none skipped by the newest-frame policy."""
    from _pipeline_fixtures import pipeline_yaml
    from _processor_fixtures import stats_when
    from _publisher_fixtures import publisher_running
    from streamcam.config import load_config

    cfg = load_config(pipeline_yaml(short_tmp, tiny_model), {"endpoints.publish": f"ipc://{short_tmp}/pub"})
    assert cfg.publisher.catch_up_ms == 150.0
    got = []
    with publisher_running(cfg) as running:
        sub = running.subscribe("detections/cam0")
        stats_when(cfg.run_dir, lambda s: "detections/cam0" in s.get("subscribed", ()), stage="publisher")
        for burst in range(10):
            for i in range(3):  # within the socket's high-water mark: sent at once, none dropped
                running.push.send_multipart(_result("cam0", 3 * burst + i), flags=zmq.NOBLOCK)
            time.sleep(0.15)
            while sub.poll(0):
                got.append(protocol.decode(sub.recv_multipart()).seq)
        stats = stats_when(cfg.run_dir, lambda s: s["streams"].get("cam0", {}).get("published") == 30, stage="publisher")
    assert stats["skipped"] == 0 and stats["streams"]["cam0"]["published"] == 30, stats
    assert got == sorted(got) and len(got) == 30
