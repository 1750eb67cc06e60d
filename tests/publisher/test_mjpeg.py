"""The HTTP bridge against a real PUB socket and real HTTP requests."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from _publisher_fixtures import FakePublisher, publish_until, pub_endpoint  # noqa: F401 (fixture)
from _wait import wait_for
from streamcam.protocol import encode, jpeg_part
from streamcam.publisher.mjpeg import BOUNDARY, MjpegServer, serve_main


def get(url: str, timeout: float = 3.0) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def get_json(url: str):
    status, ctype, body = get(url)
    assert status == 200 and ctype == "application/json"
    return json.loads(body)


@pytest.fixture
def setup(pub_endpoint):
    pub = FakePublisher(pub_endpoint)
    server = MjpegServer(pub_endpoint, port=0).start()
    try:
        yield pub, server
    finally:
        server.stop()
        pub.close()


def _has_stream(server, sid):
    return lambda: any(s["id"] == sid for s in get_json(server.url + "api/streams")["streams"])


def read_mjpeg_part(url: str, min_frames: int = 2, timeout: float = 5.0) -> tuple[str, list[bytes]]:
    """Read the MJPEG response until ``min_frames`` complete JPEG parts have arrived."""
    r = urllib.request.urlopen(url, timeout=timeout)
    try:
        ctype = r.headers["Content-Type"]
        buf = b""
        deadline = time.monotonic() + timeout
        frames: list[bytes] = []
        while len(frames) < min_frames and time.monotonic() < deadline:
            buf += r.read1(65536) if hasattr(r, "read1") else r.read(4096)
            frames = []
            for chunk in buf.split(f"--{BOUNDARY}\r\n".encode())[1:]:
                head, sep, rest = chunk.partition(b"\r\n\r\n")
                if not sep:
                    continue
                length = int(dict(line.split(": ", 1) for line in head.decode().split("\r\n"))["Content-Length"])
                if len(rest) >= length:
                    frames.append(rest[:length])
        return ctype, frames
    finally:
        r.close()


def test_streams_mjpeg_snapshot_detections(setup):
    pub, server = setup
    assert server.url.startswith("http://127.0.0.1:") and not server.url.endswith(":0/")
    publish_until(pub, _has_stream(server, "cam0"), streams=("cam0", "cam1"))

    listing = get_json(server.url + "api/streams")
    by_id = {s["id"]: s for s in listing["streams"]}
    assert set(by_id) == {"cam0", "cam1"}
    assert by_id["cam0"]["fps"] == 10.0 and by_id["cam0"]["latency_ms"] == 12.5
    assert by_id["cam0"]["width"] == 160 and by_id["cam0"]["height"] == 120
    assert by_id["cam0"]["seq"] >= 0 and by_id["cam0"]["frames"] >= 1

    # MJPEG: keep publishing while reading, so new frames are pushed to the client
    stop = threading.Event()

    def keep_publishing():
        while not stop.is_set():
            pub.publish("cam0")
            time.sleep(0.03)

    t = threading.Thread(target=keep_publishing)
    t.start()
    try:
        ctype, frames = read_mjpeg_part(server.url + "stream/cam0.mjpg", min_frames=3)
    finally:
        stop.set()
        t.join(2)
    assert ctype == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
    assert len(frames) >= 3
    for jpeg in frames:
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None and img.shape == (120, 160, 3)
    assert len(set(frames)) >= 2  # new frames were pushed, not the same one repeated

    status, ctype, jpeg = get(server.url + "snapshot/cam0.jpg")
    assert status == 200 and ctype == "image/jpeg"
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)

    # detections: exactly the record published for the latest sequence number
    rec = get_json(server.url + "api/detections/cam0")
    assert rec == pub.sent[("cam0", rec["seq"])]
    assert rec["seq"] == max(seq for (s, seq) in pub.sent if s == "cam0")
    assert rec["detections"][0]["track_id"] == 1 and rec["detections"][1]["track_id"] is None
    assert rec["latency_ms"] == 12.5


def test_page_health_and_not_found(setup):
    pub, server = setup
    status, ctype, body = get(server.url)
    assert status == 200 and "text/html" in ctype and b"No streams yet" in body
    # the page finds streams itself and uses only the bridge's own routes
    for route in (b'"/api/streams"', b'"/api/detections/"', b'"/stream/"', b'"/snapshot/"', b"?heatmap="):
        assert route in body
    # no external resources: everything is inline
    assert b"http://" not in body and b"https://" not in body and b"//cdn" not in body
    publish_until(pub, _has_stream(server, "cam0"))
    health = get_json(server.url + "healthz")
    assert health["ok"] is True and health["streams"] == 1
    for path in ("nope", "stream/other.mjpg", "snapshot/other.jpg", "api/detections/other"):
        assert get(server.url + path)[0] == 404


def test_malformed_messages_are_counted_and_skipped(setup):
    pub, server = setup
    publish_until(pub, _has_stream(server, "cam0"))
    good_header = json.dumps({"v": 1, "kind": "frames", "stream": "cam0", "seq": 1, "t_capture_ns": 1,
                              "parts": []}).encode()
    bad = [
        [b"frames/cam0", b"{not json"],
        [b"frames/cam0", good_header],  # a frames message without its image
        [b"detections/cam0", json.dumps({"v": 99}).encode()],
    ]
    deadline = time.monotonic() + 5
    while server.rejects.total < 3 and time.monotonic() < deadline:
        for parts in bad:
            pub.send_raw(parts)
        time.sleep(0.05)
    assert {"bad_header", "missing_part", "bad_version"} <= set(server.rejects.counts)
    assert get_json(server.url + "healthz")["rejected"] == server.rejects.total
    assert get_json(server.url + "api/streams")["rejected"]["bad_header"] >= 1
    # still serving new frames
    before = get_json(server.url + "api/detections/cam0")["seq"]
    publish_until(pub, lambda: get_json(server.url + "api/detections/cam0")["seq"] > before)
    assert get(server.url + "snapshot/cam0.jpg")[0] == 200


def test_client_disconnect_and_stop_are_quick_and_quiet(pub_endpoint, caplog, capfd):
    caplog.set_level(logging.DEBUG, logger="streamcam.publisher.mjpeg")
    pub = FakePublisher(pub_endpoint)
    server = MjpegServer(pub_endpoint, port=0).start()
    try:
        publish_until(pub, _has_stream(server, "cam0"))
        # clients that read the headers and a frame, then hang up mid-stream
        host, port = server.url[len("http://"):].rstrip("/").split(":")
        for _ in range(3):
            with socket.create_connection((host, int(port)), timeout=3) as c:
                c.sendall(b"GET /stream/cam0.mjpg HTTP/1.0\r\n\r\n")
                got = b""
                while b"image/jpeg" not in got:
                    pub.publish("cam0")
                    got += c.recv(65536)
                assert got.startswith(b"HTTP/1.0 200")
        for _ in range(10):  # writes to the gone clients fail inside the server
            pub.publish("cam0")
            time.sleep(0.02)
        assert any("went away" in rec.getMessage() for rec in caplog.records)
        # an MJPEG client still connected while stopping must not hold stop() up
        r = urllib.request.urlopen(server.url + "stream/cam0.mjpg", timeout=3)
        pub.publish("cam0")
        t0 = time.monotonic()
        server.stop()
        assert time.monotonic() - t0 < 1.0
        r.close()
        assert not [rec for rec in caplog.records if rec.levelno >= logging.WARNING]
        assert "Traceback" not in capfd.readouterr().err
    finally:
        server.stop()
        pub.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(server.url + "healthz", timeout=1)


def test_serve_main_runs_until_stop_event(pub_endpoint, caplog):
    caplog.set_level(logging.INFO, logger="streamcam.publisher.mjpeg")
    stop = threading.Event()
    result = {}
    t = threading.Thread(target=lambda: result.update(serve_main(pub_endpoint, "127.0.0.1", 0, stop)))
    t.start()
    wait_for("the bridge to serve", lambda: any("MJPEG bridge for" in r.getMessage() for r in caplog.records), 5)
    assert t.is_alive()  # serving until told to stop
    stop.set()
    t.join(3)
    assert not t.is_alive()
    assert result["url"].startswith("http://127.0.0.1:") and result["rejected"] == {}


def test_two_mjpeg_clients_get_frames_at_once(setup):
    pub, server = setup
    publish_until(pub, _has_stream(server, "cam0"))
    results: list = [None, None]

    def client(i):
        results[i] = read_mjpeg_part(server.url + "stream/cam0.mjpg", min_frames=2)[1]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        pub.publish("cam0")
        time.sleep(0.03)
    for t in threads:
        t.join(2)
    assert all(r is not None and len(r) >= 2 for r in results)
    assert all(cv2.imdecode(np.frombuffer(f, np.uint8), cv2.IMREAD_COLOR) is not None for r in results for f in r)


def test_heatmap_off_serves_image_plain(pub_endpoint):
    pub = FakePublisher(pub_endpoint, plain=True)
    server = MjpegServer(pub_endpoint, port=0).start()
    try:
        publish_until(pub, _has_stream(server, "cam0"))
        assert get_json(server.url + "api/streams")["streams"][0]["plain"] is True
        heat, plain = b"H" * 64 + b"\xff\xd9", b"P" * 64 + b"\xff\xd9"
        publish_until(pub, lambda: get(server.url + "snapshot/cam0.jpg")[2] == heat, jpeg=heat, plain_jpeg=plain)
        assert get(server.url + "snapshot/cam0.jpg?heatmap=1")[2] == heat
        for off in ("0", "false", "off"):
            assert get(server.url + "snapshot/cam0.jpg?heatmap=" + off) == (200, "image/jpeg", plain)
        assert get(server.url + "snapshot/cam0.jpg?heatmap=maybe")[0] == 400

        stop = threading.Event()

        def keep_publishing():
            while not stop.is_set():
                pub.publish("cam0", jpeg=heat, plain_jpeg=plain)
                time.sleep(0.03)

        t = threading.Thread(target=keep_publishing)
        t.start()
        try:
            ctype, frames = read_mjpeg_part(server.url + "stream/cam0.mjpg?heatmap=0", min_frames=2)
            _, heat_frames = read_mjpeg_part(server.url + "stream/cam0.mjpg", min_frames=2)
        finally:
            stop.set()
            t.join(2)
        assert ctype.startswith("multipart/x-mixed-replace") and len(frames) >= 2 and set(frames) == {plain}
        assert set(heat_frames) == {heat}
    finally:
        server.stop()
        pub.close()


def test_heatmap_off_without_image_plain_is_404_with_reason(setup):
    pub, server = setup  # a publisher that does not send image_plain
    publish_until(pub, _has_stream(server, "cam0"))
    assert get_json(server.url + "api/streams")["streams"][0]["plain"] is False
    for path in ("snapshot/cam0.jpg?heatmap=0", "stream/cam0.mjpg?heatmap=0"):
        status, _, body = get(server.url + path)
        assert status == 404 and b"image_plain" in body and b"plain_frames" in body
    assert get(server.url + "snapshot/cam0.jpg")[0] == 200
    assert get(server.url + "stream/cam0.jpg")[0] == 404 and get(server.url + "snapshot/cam0.mjpg")[0] == 404


def test_header_heatmap_false_means_the_image_is_plain(setup):
    pub, server = setup
    jpeg = b"N" * 64 + b"\xff\xd9"
    t_ns = time.time_ns()

    def send():
        pub.send_raw(encode("frames", "cam9", 7, t_ns, [jpeg_part("image", jpeg, 160, 120)], heatmap=False))
        return True

    publish_until(pub, lambda: send() and _has_stream(server, "cam9")())
    assert {s["id"]: s["plain"] for s in get_json(server.url + "api/streams")["streams"]}["cam9"] is True
    assert get(server.url + "snapshot/cam9.jpg?heatmap=0")[2] == jpeg


def test_frames_on_demand_only_while_a_viewer_watches(pub_endpoint, monkeypatch):
    """The bridge finds streams by their detections and takes a stream's frames only while it is
    watched: unwatched, the publisher (here a plain PUB, which filters by subscription) sends none."""
    import streamcam.publisher.stream_state as stream_state

    monkeypatch.setattr(stream_state, "FRAMES_HOLD_S", 0.5)
    pub = FakePublisher(pub_endpoint)
    server = MjpegServer(pub_endpoint, port=0, frames="on_demand").start()
    stop = threading.Event()

    def keep_publishing():
        while not stop.is_set():
            pub.publish("cam0")
            pub.publish("cam1")
            time.sleep(0.03)

    t = threading.Thread(target=keep_publishing)
    try:
        publish_until(pub, lambda: _has_stream(server, "cam0")() and _has_stream(server, "cam1")(),
                      streams=("cam0", "cam1"))
        t.start()
        time.sleep(0.5)
        by_id = {s["id"]: s for s in get_json(server.url + "api/streams")["streams"]}
        assert by_id["cam0"]["frames"] == 0 and by_id["cam1"]["frames"] == 0  # nobody watches: no frame came
        assert by_id["cam0"]["seq"] > 0 and server.frames_subscribed == set()  # the detections keep it current

        ctype, frames = read_mjpeg_part(server.url + "stream/cam0.mjpg", min_frames=3)
        assert len(frames) >= 3 and cv2.imdecode(np.frombuffer(frames[-1], np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
        by_id = {s["id"]: s for s in get_json(server.url + "api/streams")["streams"]}
        assert by_id["cam0"]["frames"] >= 3 and by_id["cam1"]["frames"] == 0  # only the watched stream's

        wait_for("the bridge to drop cam0's frames after its viewer left", lambda: server.frames_subscribed == set(),
                 timeout=5)
        time.sleep(0.3)  # frames already on the wire when it unsubscribed
        before = {s["id"]: s for s in get_json(server.url + "api/streams")["streams"]}["cam0"]["frames"]
        time.sleep(0.5)
        after = {s["id"]: s for s in get_json(server.url + "api/streams")["streams"]}["cam0"]["frames"]
        assert after == before, (before, after)

        # a snapshot of the never-watched stream waits for its first frame, and gets a fresh one
        status, ctype, jpeg = get(server.url + "snapshot/cam1.jpg", timeout=6)
        assert status == 200 and ctype == "image/jpeg"
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
    finally:
        stop.set()
        if t.is_alive():
            t.join(2)
        server.stop()
        pub.close()

    with pytest.raises(ValueError, match="frames: expected one of"):
        MjpegServer(pub_endpoint, port=0, frames="sometimes")
