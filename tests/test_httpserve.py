"""The small HTTP server the bridge and the labelling page share: real sockets, real requests."""

from __future__ import annotations

import json
import urllib.request

import pytest

from streamcam.httpserve import HttpApp, PageHandler, ServedApp, http_url


class _Echo(PageHandler):
    def extra_headers(self) -> list[tuple[str, str]]:
        return [("X-App", self.server.app.name)]

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        self._json(200, {"path": self.path, "app": self.server.app.name})


class _App(HttpApp):
    def __init__(self) -> None:
        self.name, self.host, self.port = "echo", "127.0.0.1", 0
        self.http = ServedApp(self, _Echo, self.host, self.port, "echo-http")

    def start(self) -> "_App":
        self.port = self.http.start()
        return self

    def stop(self, timeout: float = 1.0) -> None:
        self.http.stop(timeout)


def test_port_zero_is_read_back_and_every_response_carries_the_apps_headers():
    with _App() as app:
        assert app.port > 0 and app.url == f"http://127.0.0.1:{app.port}/" and app.http.alive
        with urllib.request.urlopen(app.url + "x?y=1", timeout=3) as r:
            assert r.status == 200 and r.headers["X-App"] == "echo" and r.headers["Cache-Control"] == "no-store"
            assert json.loads(r.read()) == {"path": "/x?y=1", "app": "echo"}
        with pytest.raises(RuntimeError, match="already started"):
            app.http.start()
    assert not app.http.alive


def test_an_ipv6_host_is_bracketed():
    assert http_url("::1", 8080) == "http://[::1]:8080/"
    assert http_url("localhost", 80) == "http://localhost:80/"
