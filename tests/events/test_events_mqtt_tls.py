"""MQTT over TLS and with a login, against a real mosquitto on loopback.

The broker's only listener is TLS, with a server certificate from a CA made for the test
(``openssl``, in the fixture's folder). With that CA configured the events arrive; a sink
that trusts another CA is refused in the handshake: nothing is sent, the failure is counted
under ``tls`` and logged naming the certificate check and ``events.mqtt.ca_certs``, and the
pipeline's side (``send``) never waits. A wrong password is the same, under ``auth``. A CA
file that is missing or not PEM is rejected when the config loads, naming the key.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from pathlib import Path

import pytest

from _mqtt_fixtures import Mosquitto, Subscriber, mosquitto_auth, mosquitto_tls  # noqa: F401 (fixtures)
from streamcam.config import config_from_dict
from streamcam.errors import ConfigError
from streamcam.events.config import MqttConfig


def _wait(cond, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not cond():
        time.sleep(0.02)
    return cond()


def _sends_without_waiting(sink, n: int = 200) -> float:
    """Seconds ``n`` sends took: the publisher's side of a sink whose broker is unreachable."""
    t0 = time.perf_counter()
    for i in range(n):
        sink.send({"type": "update", "id": f"u{i}"})
    return time.perf_counter() - t0


def test_events_arrive_over_tls_with_the_ca_configured(mosquitto_tls: Mosquitto):  # noqa: F811
    from streamcam.events.mqtt import MqttSink

    tls = mosquitto_tls.tls
    sub = Subscriber(mosquitto_tls.port, ("s/#",), ca=tls.ca)
    assert _wait(lambda: sub.subscribed, 10), "the test's TLS subscriber did not connect"
    sink = MqttSink(MqttConfig(host="127.0.0.1", port=mosquitto_tls.port, prefix="s", tls=True,
                               ca_certs=str(tls.ca), reconnect_max_s=1.0))
    try:
        sink.send({"type": "new", "id": "e1"})
        sink.counts("cam", {"person": 1})
        assert _wait(lambda: sink.sent == 1, 15), (sink.sent, sink.last_error)
        assert isinstance(sink._client.socket(), ssl.SSLSocket)  # the connection is TLS
        assert _wait(lambda: any(t == "s/events" for t, _, _ in sub.messages), 5)
        assert [json.loads(p)["id"] for t, p, _ in sub.messages if t == "s/events"] == ["e1"]
        assert _wait(lambda: any(t == "s/cam/person" and p == b"1" for t, p, _ in sub.messages), 5)
        assert sink.connect_failures == {} and sink.last_error is None
    finally:
        sink.close()
        sub.close()


def test_a_broker_whose_certificate_the_ca_does_not_vouch_for_is_refused(mosquitto_tls: Mosquitto,  # noqa: F811
                                                                         caplog: pytest.LogCaptureFixture):
    from streamcam.events.mqtt import MqttSink

    tls = mosquitto_tls.tls
    caplog.set_level(logging.WARNING, logger="streamcam.events.mqtt")
    wrong = MqttSink(MqttConfig(host="127.0.0.1", port=mosquitto_tls.port, prefix="w", tls=True,
                                ca_certs=str(tls.other_ca), queue_size=50, reconnect_max_s=1.0))
    good = MqttSink(MqttConfig(host="127.0.0.1", port=mosquitto_tls.port, prefix="g", tls=True,
                               ca_certs=str(tls.ca), reconnect_max_s=1.0))
    try:
        wrong.send({"type": "new", "id": "x"})
        good.send({"type": "new", "id": "y"})
        assert _wait(lambda: wrong.connect_failures["tls"] >= 2, 15), wrong.connect_failures  # and it retries
        assert not wrong.connected and wrong.sent == 0
        assert "certificate verify failed" in wrong.last_error and "events.mqtt.ca_certs" in wrong.last_error
        logged = [r.getMessage() for r in caplog.records if r.name == "streamcam.events.mqtt"]
        assert any("TLS handshake" in m and "certificate" in m and "events.mqtt.ca_certs" in m for m in logged), logged
        assert len(logged) < wrong.connect_failures["tls"] + 1  # the same failure is not logged on every retry
        # The pipeline's side never waits on it: sends only queue (bounded, the overflow counted).
        assert _sends_without_waiting(wrong) < 0.5
        assert wrong.queued == 50 and wrong.dropped["queue_full"] == 151
        # The same broker serves a sink with the right CA meanwhile.
        assert _wait(lambda: good.sent == 1, 15), (good.sent, good.last_error)
        t0 = time.monotonic()
        wrong.close()
        assert time.monotonic() - t0 < 3.0
    finally:
        wrong.close()
        good.close()


def test_a_plain_client_on_the_tls_port_is_not_connected_and_says_why(mosquitto_tls: Mosquitto):  # noqa: F811
    from streamcam.events.mqtt import MqttSink

    sink = MqttSink(MqttConfig(host="127.0.0.1", port=mosquitto_tls.port, prefix="p", reconnect_max_s=1.0))
    try:
        sink.send({"type": "new", "id": "z"})
        assert _wait(lambda: sink.connect_failures["closed"] >= 1, 10), (sink.connect_failures, sink.last_error)
        assert not sink.connected and sink.connects == 0 and sink.sent == 0 and sink.queued == 1
        assert "events.mqtt.tls" in sink.last_error
    finally:
        sink.close()


def test_a_wrong_password_is_refused_counted_and_logged_without_blocking(mosquitto_auth: Mosquitto,  # noqa: F811
                                                                         caplog: pytest.LogCaptureFixture):
    from streamcam.events.mqtt import MqttSink

    caplog.set_level(logging.WARNING, logger="streamcam.events.mqtt")
    bad = MqttSink(MqttConfig(host="127.0.0.1", port=mosquitto_auth.port, prefix="b", username="cam",
                              password="nope", queue_size=10, reconnect_max_s=1.0))
    try:
        bad.send({"type": "new", "id": "2"})
        assert _wait(lambda: bad.connect_failures["auth"] >= 1, 10), (bad.connect_failures, bad.last_error)
        assert not bad.connected and bad.sent == 0 and bad.queued == 1
        assert "refused the login of user 'cam'" in bad.last_error and "events.mqtt.password" in bad.last_error
        assert any("refused the login" in r.getMessage() for r in caplog.records)
        assert _sends_without_waiting(bad, 50) < 0.5 and bad.queued == 10
    finally:
        bad.close()


def test_tls_settings_are_checked_when_the_config_loads(tmp_path: Path):
    def load(mqtt: dict):
        return config_from_dict({"events": {"enabled": True, "mqtt": {"host": "broker", "port": 8883, **mqtt}}},
                                base_dir=str(tmp_path))

    with pytest.raises(ConfigError, match=r"events\.mqtt\.ca_certs: .*missing-ca\.pem not found"):
        load({"tls": True, "ca_certs": "missing-ca.pem"})
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"events\.mqtt\.ca_certs: .*junk\.pem is not a PEM file of CA certificates"):
        load({"tls": True, "ca_certs": "junk.pem"})
    with pytest.raises(ConfigError, match=r"events\.mqtt: ca_certs: expected tls: true"):
        load({"ca_certs": "junk.pem"})
    # A real CA file, named relative to the config's folder, loads; so does TLS with the system's CAs.
    from _mqtt_fixtures import make_tls_files

    make_tls_files(tmp_path / "pki")
    assert load({"tls": True, "ca_certs": "pki/ca.crt"}).events.mqtt.ca_certs == "pki/ca.crt"
    assert load({"tls": True}).events.mqtt.tls
