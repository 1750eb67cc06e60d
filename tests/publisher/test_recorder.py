"""Recording a published stream to MP4 and reading it back."""

from __future__ import annotations

import threading
import time

import cv2
import pytest

from _publisher_fixtures import FakePublisher, pub_endpoint  # noqa: F401 (fixture)
from streamcam.publisher.recorder import record
from streamcam.video import measured_fps


def _run_record(endpoint, pub, streams=("cam0",), publish_fps=None, period=0.02, timeout=8.0, **kw):
    """Run ``record`` in a thread while publishing until it returns."""
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(record(endpoint, **kw)))
    t.start()
    deadline = time.monotonic() + timeout
    while t.is_alive() and time.monotonic() < deadline:
        for s in streams:
            pub.publish(s, fps=publish_fps)
        time.sleep(period)
    t.join(2)
    assert not t.is_alive(), "record() did not return"
    return result


def _read_back(path):
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    n, size = 0, None
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        n += 1
        size = frame.shape
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    return n, size, fps


def test_records_n_frames_with_header_fps(pub_endpoint, tmp_path):
    pub = FakePublisher(pub_endpoint, width=160, height=120)
    try:
        out = tmp_path / "sub" / "rec.mp4"
        res = _run_record(pub_endpoint, pub, streams=("cam0", "cam01"), publish_fps=15.0,
                          stream="cam0", path=str(out), frames=12)
    finally:
        pub.close()
    assert res["frames"] == 12 and res["path"] == str(out)
    assert res["fps"] == 15.0 and (res["width"], res["height"]) == (160, 120)
    n, size, fps = _read_back(out)
    assert n == 12
    assert size == (120, 160, 3)
    assert fps == pytest.approx(15.0, rel=0.01)


def test_rate_measured_from_timestamps_without_header_fps(pub_endpoint, tmp_path):
    pub = FakePublisher(pub_endpoint, width=96, height=64)
    try:
        out = tmp_path / "rec.mp4"
        res = _run_record(pub_endpoint, pub, publish_fps=None, period=0.05, stream="cam0", path=str(out), frames=10)
    finally:
        pub.close()
    assert res["frames"] == 10
    assert 5 < res["fps"] < 25  # published every ~50 ms (+ sleep overhead)
    n, size, _ = _read_back(out)
    assert n == 10 and size == (64, 96, 3)


def test_seconds_limit_and_stop_event(pub_endpoint, tmp_path):
    pub = FakePublisher(pub_endpoint, width=64, height=48)
    try:
        res = _run_record(pub_endpoint, pub, publish_fps=20.0, stream="cam0", path=str(tmp_path / "a.mp4"),
                          seconds=0.5)
        assert 0.5 <= res["seconds"] < 1.5 and res["frames"] >= 5
        assert _read_back(tmp_path / "a.mp4")[0] == res["frames"]

        stop = threading.Event()
        threading.Timer(0.3, stop.set).start()
        t0 = time.monotonic()
        res = record(pub_endpoint, "nobody", str(tmp_path / "b.mp4"), stop_event=stop)
        assert time.monotonic() - t0 < 1.0
        assert res["frames"] == 0 and res["fps"] is None
        assert not (tmp_path / "b.mp4").exists()  # lazily opened: no frame, no file
    finally:
        pub.close()


def test_bad_jpeg_is_rejected_and_recording_goes_on(pub_endpoint, tmp_path):
    pub = FakePublisher(pub_endpoint, width=64, height=48)
    result: dict = {}
    path = tmp_path / "c.mp4"
    t = threading.Thread(target=lambda: result.update(record(pub_endpoint, "cam0", str(path), frames=5)))
    t.start()
    try:
        deadline = time.monotonic() + 8
        while t.is_alive() and time.monotonic() < deadline:
            pub.publish("cam0", fps=10.0, jpeg=b"\xff\xd8garbage")
            pub.publish("cam0", fps=10.0)
            time.sleep(0.02)
        t.join(2)
    finally:
        pub.close()
    assert result["frames"] == 5 and result["rejected"].get("bad_jpeg", 0) >= 1
    assert _read_back(path)[0] == 5


def test_the_recording_is_h264_that_browsers_play(pub_endpoint, tmp_path):
    from streamcam.video import probe

    pub = FakePublisher(pub_endpoint, width=64, height=48)
    try:
        res = _run_record(pub_endpoint, pub, publish_fps=20.0, stream="cam0", path=str(tmp_path / "h.mp4"), frames=6)
    finally:
        pub.close()
    info = probe(str(tmp_path / "h.mp4"))
    assert (info["codec"], info["pix_fmt"], info["frames"]) == ("h264", "yuv420p", res["frames"])


def test_measured_fps():
    assert measured_fps([0, 100_000_000, 200_000_000, 300_000_000]) == pytest.approx(10.0)
    assert measured_fps([5]) is None
    assert measured_fps([5, 5, 5]) is None


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="seconds"):
        record("ipc:///tmp/x.sock", "s", "/tmp/x.mp4", seconds=0)
    with pytest.raises(ValueError, match="frames"):
        record("ipc:///tmp/x.sock", "s", "/tmp/x.mp4", frames=-1)
