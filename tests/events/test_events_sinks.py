"""Webhooks against a real HTTP server that is down, then up; MQTT queue bounds and config; media files."""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest

from _mqtt_fixtures import Mosquitto, Subscriber, mosquitto, mosquitto_auth  # noqa: F401 (fixture)
from streamcam.config import config_from_dict
from streamcam.errors import ConfigError
from streamcam.events.config import EventsConfig, MqttConfig, RetentionConfig, WebhookConfig
from streamcam.events.lifecycle import EventTracker
from streamcam.events.media import EventMedia, FrameRing, apply_retention
from streamcam.events.webhook import WebhookSink
from streamcam.httpserve import QuietThreadingHTTPServer
from streamcam.protocol import Detection
from streamcam.publisher.annotate import encode_jpeg


class _Hook(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (stdlib name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.got.append(body)
        code = self.server.status
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *a):
        pass


def _bound(status: int = 200) -> QuietThreadingHTTPServer:
    """A webhook server on a port the OS picked, bound but not listening yet: a connection to it is
    refused until :func:`_listen` (the port is held all along, so no other process can take it)."""
    httpd = QuietThreadingHTTPServer(("127.0.0.1", 0), _Hook, bind_and_activate=False)
    httpd.server_bind()
    httpd.got, httpd.status = [], status
    return httpd


def _listen(httpd: QuietThreadingHTTPServer) -> QuietThreadingHTTPServer:
    httpd.server_activate()
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return httpd


def _wait(cond, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():
        time.sleep(0.01)
    return cond()


def test_a_webhook_that_is_down_gets_the_events_in_order_when_it_returns():
    httpd = _bound()
    sink = WebhookSink(WebhookConfig(url=f"http://127.0.0.1:{httpd.server_port}/hook", timeout_s=0.5, backoff_s=0.05))
    try:
        t0 = time.perf_counter()
        for i in range(5):
            sink.send({"type": "new", "id": f"e{i}"})
        assert time.perf_counter() - t0 < 0.05, "send() blocked on a dead endpoint"
        assert _wait(lambda: sink.attempts >= 2) and sink.sent == 0 and sink.queued == 5
        _listen(httpd)
        assert _wait(lambda: sink.sent == 5, 10), (sink.sent, sink.queued)
        assert [e["id"] for e in httpd.got] == [f"e{i}" for i in range(5)]
    finally:
        sink.close()
        httpd.shutdown()
        httpd.server_close()


def test_a_webhook_that_rejects_an_event_gives_it_up_after_the_retries():
    httpd = _listen(_bound(status=422))
    sink = WebhookSink(WebhookConfig(url=f"http://127.0.0.1:{httpd.server_port}/", retries=2, backoff_s=0.01))
    try:
        sink.send({"type": "new", "id": "bad"})
        assert _wait(lambda: sink.dropped["rejected"] == 1)
        assert len(httpd.got) == 3 and sink.queued == 0  # the first attempt and 2 retries
    finally:
        sink.close()
        httpd.shutdown()
        httpd.server_close()


def test_sink_queues_are_bounded_and_count_what_they_drop():
    down = _bound()  # never listening: every delivery is refused
    sink = WebhookSink(WebhookConfig(url=f"http://127.0.0.1:{down.server_port}/", queue_size=3, backoff_s=5.0))
    try:
        for i in range(10):
            sink.send({"type": "new", "id": str(i)})
        assert sink.queued == 3 and sink.dropped["queue_full"] == 7
    finally:
        sink.close()
        down.server_close()


def test_mqtt_down_at_start_queues_and_delivers_once_the_broker_is_up(mosquitto: Mosquitto):  # noqa: F811
    from streamcam.events.mqtt import MqttSink

    mosquitto.stop()
    sink = MqttSink(MqttConfig(host="127.0.0.1", port=mosquitto.port, prefix="t", queue_size=4, reconnect_max_s=1.0))
    try:
        for i in range(6):
            sink.send({"type": "new", "id": str(i)})
        sink.counts("cam", {"person": 2})
        assert sink.queued == 4 and sink.dropped["queue_full"] == 2 and not sink.connected
        mosquitto.start()
        sub = Subscriber(mosquitto.port, ("t/#",))
        try:
            assert _wait(lambda: sink.sent == 4, 15), (sink.sent, sink.queued)
            assert _wait(lambda: len([m for m in sub.messages if m[0] == "t/events"]) == 4, 5)
            assert [json.loads(p)["id"] for t, p, _ in sub.messages if t == "t/events"] == ["2", "3", "4", "5"]
            # the count is retained: a subscriber that comes later still gets it
            late = Subscriber(mosquitto.port, ("t/cam/person",), name="late")
            try:
                assert _wait(lambda: late.messages, 5) and late.messages[0][1:] == (b"2", True)
            finally:
                late.close()
            assert any(t == "t/available" and p == b"online" for t, p, _ in sub.messages)
        finally:
            sub.close()
    finally:
        sink.close()


@pytest.mark.parametrize("events,why", [
    ({"mqtt": {"host": "b", "prefix": "a/#"}}, "events.mqtt: prefix"),
    ({"mqtt": {"host": "b", "password": "x"}}, "events.mqtt: password"),
    ({"mqtt": {"host": "b", "ca_certs": "ca.pem"}}, "events.mqtt: ca_certs"),
    ({"mqtt": {"hostname": "b"}}, "events.mqtt.hostname: unknown key"),
    ({"webhooks": [{"url": "http://x", "timeout_s": 0}]}, "events.webhooks[0]: timeout_s"),
    ({"pre_roll_s": 120}, "events: pre_roll_s"),
    ({"retention": {"max_bytes": -1}}, "events.retention: max_bytes"),
    ({"min_frames": 0}, "events: min_frames"),
    ({"leave_margin": -0.1}, "events: leave_margin"),
])
def test_bad_events_config_is_rejected_naming_the_key(events, why):
    with pytest.raises(ConfigError) as err:
        config_from_dict({"events": events})
    assert why in str(err.value)


def test_the_ring_keeps_the_pre_roll_and_counts_its_bytes():
    ring = FrameRing(1.0)
    for i in range(50):
        ring.add(i * 100_000_000, bytes(1000 + i))
    assert len(ring.frames) == 11 and ring.frames[0][0] == 39 * 100_000_000
    assert ring.nbytes == sum(len(b) for _, b in ring.frames)


def test_clip_has_pre_roll_event_and_post_roll_and_snapshots(tmp_path: Path):
    from streamcam.video import probe

    cfg = EventsConfig(min_frames=1, lost_frames=2, pre_roll_s=1.0, post_roll_s=1.0, dir=str(tmp_path))
    media = EventMedia(cfg, str(tmp_path), fps_hint=10)
    tr = EventTracker("cam", cfg, on_open=media.paths)
    frame = np.zeros((120, 160, 3), np.uint8)
    ended = None
    for i in range(60):  # 10 fps: empty 0-19, a person walking 20-29, empty after
        x = 4 * (i - 20)
        dets = [Detection((50 + x, 20, 90 + x, 100), 0.5 + i / 100, "person", 1)] if 20 <= i < 30 else []
        fe = tr.update(dets, i * 100_000_000, i, 160, 120)
        frame[:] = i
        media.on_frame("cam", i * 100_000_000, encode_jpeg(frame), lambda: encode_jpeg(frame[:, :, 0]), fe)
        ended = ended or next((e for e in fe.events if e["type"] == "end"), None)
    media.close(timeout=20)
    assert ended is not None and media.stats.clips == 1 and media.stats.snapshots >= 1
    info = probe(str(tmp_path / ended["clip"]))
    # 1 s pre-roll (10) + the event (frames 20-29 -> last seen 29) + 1 s post-roll (10): ~30 frames
    assert info["codec"] == "h264" and 28 <= info["frames"] <= 32, info
    assert (tmp_path / ended["snapshot"]).read_bytes()[:2] == b"\xff\xd8"
    assert (tmp_path / ended["snapshot"].replace(".jpg", "-clean.jpg")).exists()


def test_retention_deletes_old_files_then_the_oldest_over_the_size(tmp_path: Path):
    now = time.time()
    for i, age_h in enumerate([100, 50, 30, 20, 10]):
        p = tmp_path / "cam" / f"{i}.jpg"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x" * 1000)
        os.utime(p, (now - age_h * 3600, now - age_h * 3600))
    assert apply_retention(tmp_path, RetentionConfig(max_age_h=72, max_bytes=2500), now) == 3
    assert sorted(p.name for p in (tmp_path / "cam").iterdir()) == ["3.jpg", "4.jpg"]


def test_a_stop_with_a_backlog_finishes_open_clips_within_its_timeout(tmp_path: Path):
    from streamcam.video import probe

    cfg = EventsConfig(min_frames=1, pre_roll_s=0.5, post_roll_s=0.5, dir=str(tmp_path))
    media = EventMedia(cfg, str(tmp_path), fps_hint=25)
    tr = EventTracker("cam", cfg, on_open=media.paths)
    rng = np.random.default_rng(0)
    noisy = [encode_jpeg(rng.integers(0, 255, (480, 640, 3), np.uint8), 90) for _ in range(4)]  # slow to encode
    for i in range(200):  # faster than the writer can encode: a backlog
        fe = tr.update([Detection((50, 20, 90, 100), 0.9, "person", 1)], i * 40_000_000, i, 640, 480)
        media.on_frame("cam", i * 40_000_000, noisy[i % 4], lambda: noisy[0], fe)
    clip = tmp_path / tr.open_events[0].clip
    t0 = time.monotonic()
    media.close(timeout=0.5)
    assert time.monotonic() - t0 < 1.5
    assert clip.exists() and not list(tmp_path.rglob("*.part*"))
    assert probe(str(clip))["frames"] >= 1


def test_home_assistant_discovery_configs_are_retained(mosquitto: Mosquitto):  # noqa: F811
    from streamcam.events.mqtt import MqttSink

    sink = MqttSink(MqttConfig(host="127.0.0.1", port=mosquitto.port, prefix="sc", discovery=True))
    try:
        sink.counts("yard", {"person": 1})
        assert _wait(lambda: sink.connected, 10)
        sub = Subscriber(mosquitto.port, ("homeassistant/#",))
        try:
            assert _wait(lambda: sub.messages, 10)
            topic, payload, _ = sub.messages[0]
            config = json.loads(payload)
            assert topic == "homeassistant/sensor/sc_yard_person/config"
            assert config["state_topic"] == "sc/yard/person" and config["availability_topic"] == "sc/available"
        finally:
            sub.close()
        late = Subscriber(mosquitto.port, ("homeassistant/#",), name="late")  # Home Assistant started after streamcam
        try:
            assert _wait(lambda: late.messages, 10) and late.messages[0][2], "the discovery config is not retained"
        finally:
            late.close()
    finally:
        sink.close()


def test_mqtt_with_a_username_and_password(mosquitto_auth: Mosquitto, caplog):  # noqa: F811
    from streamcam.events.mqtt import MqttSink

    good = MqttSink(MqttConfig(host="127.0.0.1", port=mosquitto_auth.port, prefix="a", username="cam", password="s3cret"))
    bad = MqttSink(MqttConfig(host="127.0.0.1", port=mosquitto_auth.port, prefix="b", username="cam", password="nope"))
    try:
        good.send({"type": "new", "id": "1"})
        bad.send({"type": "new", "id": "2"})
        assert _wait(lambda: good.sent == 1, 10)
        assert _wait(lambda: bad.connect_failures["auth"] >= 1, 10)
        assert any("refused the login" in r.getMessage() for r in caplog.records)
        # refused: nothing is sent, the event waits in the queue (and the broker's refusal is logged)
        assert not bad.connected and bad.sent == 0 and bad.queued == 1
    finally:
        good.close()
        bad.close()
