"""The processor leaves a result's frame out while nobody subscribes to it (processor/frame_demand.py),
from the publisher's stats on the bus; the publisher publishes such a result's detections; a
subscriber to the frames gets them again at once (a real `streamcam run`)."""

from __future__ import annotations

import json
import time

import zmq

from _pipeline_fixtures import pipeline_yaml, published, start_run
from _wait import wait_for
from streamcam import protocol
from streamcam.lifecycle import terminate
from streamcam.processor.frame_demand import FrameDemand
from streamcam.transport import make_socket


def test_frames_are_wanted_until_told_otherwise_and_when_the_reports_stop():
    d = FrameDemand(stale_s=3.0)
    assert d.wants("cam0", now=0.0)  # no report yet: safe
    d.update(["detections/", "stats/publisher"], now=10.0)
    assert not d.wants("cam0", now=11.0)
    assert d.wants("cam0", now=13.5)  # the publisher went quiet: safe again
    d.update(["frames/cam0"], now=20.0)
    assert d.wants("cam0", now=20.5) and d.wants("cam01", now=20.5)  # ZeroMQ's prefix match
    assert not d.wants("cam1", now=20.5)
    d.update([protocol.plain_demand_topic("cam1")], now=30.0)
    assert d.wants("cam1", now=30.1) and not d.wants("cam10", now=30.1)  # the demand topic's "/"
    d.update([""], now=40.0)
    assert d.wants("anything", now=40.1)  # a subscriber to everything
    assert FrameDemand(always=True).wants("cam0")  # events with snapshots or clips: every frame


def test_the_publisher_publishes_the_detections_of_a_result_without_its_frame(short_tmp, tiny_model):
    from _processor_fixtures import stats_when
    from _publisher_fixtures import publisher_running
    from streamcam.config import load_config

    cfg = load_config(pipeline_yaml(short_tmp, tiny_model), {"endpoints.publish": f"ipc://{short_tmp}/pub"})
    det = [{"box": [1.0, 2.0, 30.0, 60.0], "score": 0.9, "label": "person", "track_id": 3}]
    with publisher_running(cfg) as running:
        sub = running.subscribe(("detections/", "frames/"))
        stats_when(cfg.run_dir, lambda s: {"frames/", "detections/"} <= set(s.get("subscribed", ())), stage="publisher")
        for seq in range(5):
            running.push.send_multipart(protocol.encode("result", "cam0", seq, time.time_ns(), [],
                                                        width=160, height=120, detections=det))
            time.sleep(0.02)  # a burst past the subscriber's high-water mark (4) would be dropped there
        # a frameless result that does not say its size is refused, counted, and nothing else is lost
        running.push.send_multipart(protocol.encode("result", "cam0", 5, time.time_ns(), [], detections=det))
        stats = stats_when(cfg.run_dir, lambda s: s["streams"].get("cam0", {}).get("published") == 5
                           and s["rejected"].get("bad_header") == 1, stage="publisher")
        got = []
        while sub.poll(300):
            got.append(protocol.decode(sub.recv_multipart()))
    assert stats["streams"]["cam0"]["encoded"] == 0
    assert [m.kind for m in got] == ["detections"] * 5  # no frame to draw: no frames/ message
    assert all(m.header["width"] == 160 and m.header["height"] == 120 and m.header["detections"] == det for m in got)


def test_a_run_sends_frames_only_while_someone_watches_them(short_tmp, tiny_model):
    run_dir = short_tmp / "run"
    sup = start_run(pipeline_yaml(short_tmp, tiny_model))
    ctx = zmq.Context()
    socks = []
    try:
        endpoint = published(run_dir)
        det = make_socket(ctx, "SUB", endpoint, bind=False, subscribe="detections/")
        socks.append(det)

        def processor() -> dict:
            try:
                return json.loads((run_dir / "stats" / "processor.json").read_text())
            except (OSError, ValueError):
                return {}

        # nobody watches the frames: the processor hears so from the publisher and stops sending them
        wait_for("frameless results", lambda: processor().get("frameless", 0) > 10, timeout=30, poll=0.2)
        n = 0
        while det.poll(2000) and n < 5:
            m = protocol.decode(det.recv_multipart())
            assert m.header["width"] == 320 and m.header["height"] == 240
            n += 1
        assert n == 5  # the detections go on
        before = processor()["frameless"]
        t0 = time.monotonic()
        frames = make_socket(ctx, "SUB", endpoint, bind=False, subscribe="frames/cam0")
        socks.append(frames)
        assert frames.poll(5000), "no frame within 5 s of subscribing"
        first = time.monotonic() - t0
        m = protocol.decode(frames.recv_multipart())
        assert m.kind == "frames" and m.has_part("image") and isinstance(m.part("image"), bytes)  # a JPEG
        assert first < 2.0, first
        time.sleep(1.5)
        assert processor()["frameless"] - before < 40  # at most the moment before the report came
    finally:
        for sock in socks:
            sock.close(0)
        ctx.term()
        terminate(sup, 20)
