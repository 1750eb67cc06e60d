"""The terminal viewer against a real PUB socket."""

from __future__ import annotations

import io
import re
import threading
import time

import pytest

from _publisher_fixtures import FakePublisher, pub_endpoint  # noqa: F401 (fixture)
from streamcam.errors import StreamcamError
from streamcam.protocol import decode, encode
from streamcam.publisher.viewer import format_detections, view

LINE = re.compile(r"^(\S+) seq=(\d+) lat=([\d.]+)ms n=(\d+)( \| .*)?$")


def _run_view(endpoint, pub, streams, timeout=8.0, bad=None, **kw):
    out = io.StringIO()
    result = {}
    t = threading.Thread(target=lambda: result.update(n=view(endpoint, out=out, **kw)))
    t.start()
    deadline = time.monotonic() + timeout
    while t.is_alive() and time.monotonic() < deadline:
        if bad is not None:
            pub.send_raw(bad)
        for s in streams:
            pub.publish(s)
        time.sleep(0.02)
    t.join(2)
    assert not t.is_alive(), "view() did not return"
    return result["n"], out.getvalue().splitlines()


def test_prints_one_line_per_message_for_one_stream(pub_endpoint, caplog):
    pub = FakePublisher(pub_endpoint)
    try:
        n, lines = _run_view(pub_endpoint, pub, ("cam0", "cam01", "cam1"), stream="cam0", count=5,
                             bad=[b"detections/cam0", b"\x00not json"])
    finally:
        pub.close()
    assert n == 5 and len(lines) == 5
    seqs = []
    for line in lines:
        m = LINE.match(line)
        assert m, line
        assert m.group(1) == "cam0" and m.group(3) == "12.5" and m.group(4) == "2"
        seq = int(m.group(2))
        seqs.append(seq)
        rec = pub.sent[("cam0", seq)]
        d0, d1 = rec["detections"]
        x0 = d0["box"][0]
        assert f"| #1 person 0.90 [{x0:.0f},20,{x0 + 50:.0f},90] | person 0.61 [100,30,150,110]" in line
    assert seqs == sorted(seqs)
    assert any("malformed" in r.getMessage() and "bad_header" in r.getMessage() for r in caplog.records)


def test_all_streams_by_default(pub_endpoint):
    pub = FakePublisher(pub_endpoint)
    try:
        n, lines = _run_view(pub_endpoint, pub, ("a", "b"), count=8)
    finally:
        pub.close()
    assert n == 8
    assert {line.split()[0] for line in lines} == {"a", "b"}


def test_stop_event_returns_quickly(pub_endpoint):
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    t0 = time.monotonic()
    assert view(pub_endpoint, stop_event=stop, out=io.StringIO()) == 0
    assert time.monotonic() - t0 < 1.0


def test_show_without_display_fails_clearly(monkeypatch, pub_endpoint):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(StreamcamError, match="needs a display"):
        view(pub_endpoint, show=True, count=1)


def test_show_with_headless_opencv_fails_clearly(monkeypatch, pub_endpoint):
    import cv2

    monkeypatch.setenv("DISPLAY", ":99")

    def no_gui(*a, **k):
        raise cv2.error("The function is not implemented. Rebuild the library with GTK+")

    monkeypatch.setattr(cv2, "namedWindow", no_gui)
    with pytest.raises(StreamcamError, match="GUI support"):
        view(pub_endpoint, show=True, count=1)


def test_format_without_latency_or_detections():
    msg = decode(encode("detections", "ir0", 3, 1, width=10, height=10, detections=[]))
    assert format_detections(msg) == "ir0 seq=3 lat=? n=0"
