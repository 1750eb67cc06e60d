"""The stdlib HTTP server the project's small pages run on (the MJPEG bridge, the labelling page).

One thread per client (daemon threads: a stop never waits for a stalled browser), and a client
that goes away mid-response is a debug line, not a traceback: browsers drop MJPEG streams and
image requests all the time. :class:`PageHandler` is the handlers' common ground (how a response
is written, the write timeout), :class:`ServedApp` the thread that serves one app and its
designed stop; each app keeps only its routes and what they serve.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional, TypeVar

log = logging.getLogger("streamcam.http")

DISCONNECT = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError, socket.timeout)
"""What a client that went away raises while a response is written."""


class QuietThreadingHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer whose client disconnects are logged at debug level, other errors in full."""

    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, DISCONNECT):
            log.debug("client %s went away: %s", client_address, exc)
        else:
            log.exception("error serving %s", client_address)


class AppHTTPServer(QuietThreadingHTTPServer):
    """The server of one app: its handlers reach the app as ``self.server.app``."""

    app: Any


class PageHandler(BaseHTTPRequestHandler):
    """A request handler's common ground: HTTP/1.0, a write timeout, debug logging, one way to answer."""

    server: AppHTTPServer
    protocol_version = "HTTP/1.0"
    timeout = 10  # a stalled client times out of a write instead of holding a thread forever

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        log.debug("%s %s", self.address_string(), format % args)

    def extra_headers(self) -> list[tuple[str, str]]:
        """Headers this app adds to every response (a cookie, ``nosniff``)."""
        return []

    def _send(self, code: int, ctype: str, body: bytes, cache: str = "no-store") -> None:
        self.send_response(code)
        for name, value in self.extra_headers():
            self.send_header(name, value)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, obj: Any) -> None:
        self._send(code, "application/json", json.dumps(obj).encode())


def http_url(host: str, port: int) -> str:
    """The page's address (an IPv6 host in brackets)."""
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}/"


_App = TypeVar("_App", bound="HttpApp")


class HttpApp:
    """What every served app shares: ``with app:`` starts and stops it, :attr:`url` is its page."""

    host: str
    port: int

    def start(self: _App) -> _App:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _App) -> _App:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The page's address; after :meth:`start`, with the port really bound."""
        return http_url(self.host, self.port)


class ServedApp:
    """One app served on ``host:port`` by a thread of its own; ``port=0`` picks a free port (read back)."""

    def __init__(self, app: Any, handler: type[PageHandler], host: str, port: int, name: str,
                 server_class: type[AppHTTPServer] = AppHTTPServer) -> None:
        self.app, self.handler, self.host, self.port, self.name = app, handler, host, port, name
        self.server_class = server_class
        self._httpd: Optional[AppHTTPServer] = None
        self._thread: Optional[threading.Thread] = None

    def start(self) -> int:
        """Listen and serve in a thread; returns the port bound (raises OSError when it cannot listen)."""
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: already started")
        self._httpd = self.server_class((self.host, self.port), self.handler)
        self._httpd.app = self.app
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=self.name, daemon=True)
        self._thread.start()
        return self.port

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def url(self) -> str:
        return http_url(self.host, self.port)

    def stop(self, timeout: float) -> None:
        """Stop serving; returns within ``timeout`` seconds (plus a little)."""
        if self._httpd is not None and self._thread is not None:
            self._httpd.shutdown()  # returns once serve_forever's loop (polling every 0.1 s) ends
            self._thread.join(max(0.0, timeout))
            if self._thread.is_alive():
                log.warning("thread %s did not stop within %.1f s", self.name, timeout)
        if self._httpd is not None:
            self._httpd.server_close()
        self._httpd, self._thread = None, None


__all__ = ["AppHTTPServer", "DISCONNECT", "HttpApp", "PageHandler", "QuietThreadingHTTPServer", "ServedApp", "http_url"]
