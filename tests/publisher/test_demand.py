"""The publisher makes only what is subscribed: the XPUB subscriptions (publisher/demand.py) decide
whether a frame is annotated and encoded, and whether its heatmap-free copy is."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import zmq

from streamcam import protocol
from streamcam.publisher.demand import Demand
from streamcam.transport import make_socket, send_nowait


@pytest.mark.parametrize("subscribed, topic, wanted", [
    ((), "frames/cam0", False),
    ((b"",), "frames/cam0", True),  # everything
    ((b"frames/",), "frames/cam0", True),
    ((b"frames/cam0",), "frames/cam0", True),
    ((b"frames/cam0",), "frames/cam01", True),  # ZeroMQ's prefix match: it would be delivered
    ((b"frames/cam01",), "frames/cam0", False),
    ((b"detections/",), "frames/cam0", False),
    ((b"want/plain/cam0/",), "want/plain/cam01/", False),  # the demand topic's trailing "/"
    ((b"want/plain/cam0/",), "want/plain/cam0/", True),
])
def test_wants_is_zeromqs_prefix_match(subscribed, topic, wanted):
    d = Demand()
    for p in subscribed:
        d.update(b"\x01" + p)
    assert d.wants(topic) is wanted


def test_unsubscribe_and_noise():
    d = Demand()
    d.update(b"\x01frames/")
    d.update(b"hello")  # not subscription traffic
    d.update(b"")
    assert d.wants("frames/x") and d.changes == 1
    d.update(b"\x00frames/")
    assert not d.wants("frames/x") and d.changes == 2


def test_a_real_xpub_reports_first_subscribe_and_last_unsubscribe():
    """The edges Demand relies on: without XPUB_VERBOSE, one message per prefix when its first
    subscriber comes and one when its last goes (closing counts as going)."""
    from streamcam.publisher.stage import take_subscriptions

    ctx = zmq.Context()
    xpub = make_socket(ctx, "XPUB", "inproc://demand", bind=True)
    subs = [make_socket(ctx, "SUB", "inproc://demand", bind=False, subscribe="frames/") for _ in range(2)]
    d = Demand()

    def settled(cond) -> bool:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            take_subscriptions(xpub, d)
            if cond():
                return True
            time.sleep(0.01)
        return False

    try:
        assert settled(lambda: d.wants("frames/cam0"))
        subs[0].close(0)
        time.sleep(0.1)
        take_subscriptions(xpub, d)
        assert d.wants("frames/cam0")  # one subscriber left
        subs[1].close(0)
        assert settled(lambda: not d.wants("frames/cam0"))
    finally:
        xpub.close(0)
        ctx.term()


def _run(short_tmp, tiny_model, topics, n=12, **publisher):
    """Run the publisher stage on ``n`` results with a CAM; a SUB on ``topics``: (stats, frames got)."""
    from _pipeline_fixtures import pipeline_yaml
    from _processor_fixtures import stats_when
    from _publisher_fixtures import publisher_running
    from streamcam.config import load_config

    extra = {"publisher": "{" + ", ".join(f"{k}: {v}" for k, v in publisher.items()) + "}"} if publisher else {}
    cfg = load_config(pipeline_yaml(short_tmp, tiny_model, **extra), {"serve.enabled": True, "serve.port": 0,
                                                                    "endpoints.publish": f"ipc://{short_tmp}/pub"})
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    cam = np.random.default_rng(1).random((6, 8), dtype=np.float32)
    frames = []
    with publisher_running(cfg) as running:
        sub = running.subscribe(tuple(topics)) if topics else None
        if topics:  # the publisher has seen the subscriptions before the first result
            stats_when(cfg.run_dir, lambda s: all(t in s.get("subscribed", ()) for t in topics), stage="publisher")
        else:
            time.sleep(0.3)
        for seq in range(n):
            running.push.send_multipart(protocol.encode(
                "result", "cam0", seq, time.time_ns(),
                [protocol.raw_part("image", img, "BGR8"), protocol.raw_part("cam", cam, "CAM32")],
                width=160, height=120, detections=[]))
            time.sleep(0.02)
        stats = stats_when(cfg.run_dir, lambda s: s["streams"].get("cam0", {}).get("published") == n, stage="publisher")
        while sub is not None and sub.poll(200):
            m = protocol.decode(sub.recv_multipart())
            if m.kind == "frames":
                frames.append(m)
    return stats["streams"]["cam0"], frames


def test_nobody_subscribed_to_frames_means_none_encoded(short_tmp, tiny_model):
    st, _ = _run(short_tmp, tiny_model, ["detections/"])
    assert st["published"] == 12 and st["encoded"] == 0 and st["encoded_plain"] == 0


def test_frames_subscribed_encodes_them_and_offers_the_plain_copy_on_request(short_tmp, tiny_model):
    st, frames = _run(short_tmp, tiny_model, ["frames/"])
    assert st["encoded"] == 12 and st["encoded_plain"] == 0
    assert frames and all(m.header.get("plain_offered") is True and not m.has_part("image_plain") for m in frames)


def test_the_plain_copy_is_made_while_its_demand_topic_is_subscribed(short_tmp, tiny_model):
    st, frames = _run(short_tmp, tiny_model, ["frames/", protocol.plain_demand_topic("cam0")])
    assert st["encoded"] == 12 and st["encoded_plain"] == 12
    assert frames and all(m.has_part("image_plain") for m in frames)


def test_plain_frames_true_sends_the_copy_without_a_request(short_tmp, tiny_model):
    st, frames = _run(short_tmp, tiny_model, ["frames/"], plain_frames="true")
    assert st["encoded_plain"] == 12 and all(m.has_part("image_plain") and "plain_offered" not in m.header for m in frames)


def test_the_bridge_asks_for_the_plain_copy_only_while_a_viewer_wants_it(short_tmp, tiny_model):
    """The whole loop: a ``?heatmap=0`` snapshot from the HTTP bridge makes the bridge subscribe to
    the demand topic, the publisher sends ``image_plain`` and the snapshot is that copy (no heatmap);
    when nobody asks any more the bridge lets go and the publisher stops making it."""
    import urllib.request

    import cv2

    from _processor_fixtures import stats_when
    from streamcam.config import load_config
    from streamcam.publisher.mjpeg import MjpegServer
    from streamcam.publisher.stream_state import PLAIN_HOLD_S
    from _pipeline_fixtures import pipeline_yaml
    from _publisher_fixtures import PublisherRunning

    cfg = load_config(pipeline_yaml(short_tmp, tiny_model), {"serve.enabled": True, "serve.port": 0,
                                                             "endpoints.publish": f"ipc://{short_tmp}/pub"})
    running = PublisherRunning(cfg)
    push = running.push
    server = MjpegServer(cfg.endpoint("publish"), port=0).start()
    grey = np.full((120, 160, 3), 128, np.uint8)  # the frame itself: flat grey; the heatmap colours it
    cam = np.ones((6, 8), np.float32)
    feeding = threading.Event()

    def feed() -> None:
        seq = 0
        while not feeding.is_set():
            send_nowait(push, protocol.encode("result", "cam0", seq, time.time_ns(),
                                              [protocol.raw_part("image", grey, "BGR8"), protocol.raw_part("cam", cam, "CAM32")],
                                              width=160, height=120, detections=[]))
            seq += 1
            time.sleep(0.04)

    feeder = threading.Thread(target=feed)
    feeder.start()

    def plain_count(ready=lambda n: True) -> int:
        """The copies encoded so far, once ``ready(count)`` (the stats are rewritten once a second)."""
        got = stats_when(cfg.run_dir, lambda s: ready(s["streams"].get("cam0", {}).get("encoded_plain", -1)), stage="publisher")
        return got["streams"]["cam0"]["encoded_plain"]

    try:
        assert stats_when(cfg.run_dir, lambda s: s["streams"].get("cam0", {}).get("encoded", 0) > 3, stage="publisher")
        assert plain_count() == 0  # frames watched, nobody asked for the copy
        with urllib.request.urlopen(server.url + "snapshot/cam0.jpg?heatmap=0", timeout=5) as r:
            body = r.read()
        shot = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        below_banner = shot[60:, :].astype(int)
        assert np.abs(below_banner - 128).max() <= 12, "the ?heatmap=0 snapshot still has the heatmap"
        assert plain_count(lambda n: n > 0) > 0
        time.sleep(PLAIN_HOLD_S + 1.5)  # nobody asks again: the bridge unsubscribes
        before = plain_count()
        time.sleep(2.5)  # two stats reports later
        assert plain_count() == before
    finally:
        feeding.set()
        feeder.join(5)
        server.stop()
        running.close()
