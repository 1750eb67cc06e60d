"""The HTTP bridge's admission: connection cap, Host allow-list (DNS rebinding), access token; bind rules."""

import http.client
import socket
import time

import pytest

from streamcam.config import config_from_dict
from streamcam.errors import ConfigError
from streamcam.publisher.access import BridgeAccess, host_names
from streamcam.publisher.mjpeg import MjpegServer
from _publisher_fixtures import FakePublisher, pub_endpoint  # noqa: F401 (fixture)
from _wait import wait_for

TOKEN = "t0ken-of-the-test-bridge-xyz"


def _get(server, path, headers=None):
    c = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


@pytest.mark.parametrize("host, status", [
    ("127.0.0.1:{port}", 200), ("localhost:{port}", 200), ("[::1]:{port}", 200),
    ("evil.example:{port}", 421), ("evil.example", 421), ("127.0.0.1.evil.example", 421)])
def test_only_the_bridges_own_names_are_served(pub_endpoint, host, status):  # noqa: F811
    with MjpegServer(pub_endpoint, port=0) as server:
        code, _, body = _get(server, "/api/streams", {"Host": host.format(port=server.port)})
        assert code == status, body
        assert server.denied.get(421, 0) == (status == 421)


def test_a_token_is_needed_once_then_the_cookie_carries_it(pub_endpoint):  # noqa: F811
    access = BridgeAccess(host_names("127.0.0.1"), TOKEN)
    with MjpegServer(pub_endpoint, port=0, access=access) as server:
        assert _get(server, "/api/streams")[0] == 401
        assert _get(server, "/api/streams?token=wrong-token-of-same-size")[0] == 401
        assert _get(server, "/api/streams", {"Authorization": "Bearer " + TOKEN})[0] == 200
        code, headers, _ = _get(server, "/?token=" + TOKEN)
        assert code == 200
        cookie = headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        assert _get(server, "/api/streams", {"Cookie": cookie.split(";")[0]})[0] == 200
        assert _get(server, "/healthz", {"Cookie": "streamcam_token=nope"})[0] == 401
        assert server.denied[401] == 3


def test_connections_past_the_cap_are_refused_and_the_bridge_keeps_serving(pub_endpoint):  # noqa: F811
    pub = FakePublisher(pub_endpoint)
    with MjpegServer(pub_endpoint, port=0, access=BridgeAccess(host_names("127.0.0.1"), max_clients=3)) as server:
        # Three clients hold their connections (a slow loris: no request line yet), as viewers would.
        held = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(3)]
        try:
            wait_for("the three held connections admitted", lambda: server.access.open == 3, timeout=5)
            extra = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(20)]
            answers = [c.recv(100) for c in extra]
            assert all(a.startswith(b"HTTP/1.0 503") for a in answers), answers[:3]
            assert server.refused == 20
            for c in extra:
                c.close()
        finally:
            for c in held:
                c.close()
        # The held connections' threads end and give their slots back.
        wait_for("the held connections' slots given back", lambda: server.access.open == 0, timeout=5)
        assert _get(server, "/healthz")[0] == 200
    pub.close()


@pytest.mark.parametrize("data, message", [
    ({"metrics": {"host": "0.0.0.0"}}, "metrics.host: 0.0.0.0 is beyond loopback"),
    ({"endpoints": {"publish": "tcp://*:5560"}, "security": {"allow_remote_bind": True}},
     r"endpoints.publish: tcp://\*:5560 is a wildcard"),
    ({"endpoints": {"results": "tcp://*:5561"}}, r"endpoints.results: tcp://\*:5561 is a wildcard"),
    ({"serve": {"host": "0.0.0.0"}, "security": {"allow_remote_bind": True}},
     r"serve.token_file: required when serve.host \(0.0.0.0\) is beyond loopback"),
    ({"security": {"curve": True}}, "serve.token_file: required when security.curve is on"),
    ({"serve": {"token_file": "no/such/token"}}, "serve.token_file: .*no/such/token not found"),
    ({"serve": {"max_clients": 0}}, "serve.max_clients: expected 1-1024"),
])
def test_bind_and_bridge_rules_are_checked_before_start(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_remote_metrics_and_a_tokened_remote_bridge_are_allowed_when_asked(tmp_path):
    (tmp_path / "bridge.token").write_text(TOKEN + "\n")
    cfg = config_from_dict({"metrics": {"host": "0.0.0.0"}, "security": {"allow_remote_bind": True},
                            "serve": {"host": "0.0.0.0", "token_file": "bridge.token"}}, base_dir=str(tmp_path))
    assert cfg.metrics.host == "0.0.0.0" and cfg.serve.token_file == "bridge.token"


def test_a_flood_of_stream_ids_cannot_lock_a_later_stream_out_of_the_bridge(pub_endpoint):  # noqa: F811
    from streamcam.publisher.mjpeg import MAX_STREAMS

    pub = FakePublisher(pub_endpoint)
    with MjpegServer(pub_endpoint, port=0) as server:
        deadline = time.monotonic() + 20
        i = 0
        while server.evicted < 10 and time.monotonic() < deadline:  # more ids than the bridge holds
            pub.publish(f"flood{i}")
            i += 1
            time.sleep(0.002)
        while not server.has_stream("late") and time.monotonic() < deadline:
            pub.publish("late")
            time.sleep(0.02)
        assert server.has_stream("late") and server.evicted >= 10
        listing = server.streams()
        assert len(listing["streams"]) <= MAX_STREAMS and listing["rejected"] == {}
    pub.close()
