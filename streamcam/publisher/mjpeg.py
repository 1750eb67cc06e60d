"""HTTP bridge: subscribes to the publisher and serves MJPEG streams, snapshots, JSON and a page.

Routes::

    /                       the viewer page (page.html): a card per stream, discovered from /api/streams
    /stream/<id>.mjpg       multipart/x-mixed-replace MJPEG, one part per new frame
    /snapshot/<id>.jpg      the latest annotated frame
    /api/streams            {"streams": [{id, seq, fps, latency_ms, width, height, frames, age_s, plain}],
                             "rejected": {...}}
    /api/detections/<id>    the latest detections record (as published on ``detections/<id>``)
    /api/events/<id>        {"events": [...]}: the stream's latest events (``events/<id>``), newest first,
                            each in its latest state (an ``end`` replaces its ``new``)
    /events/<stream>/<file> a snapshot (.jpg) or clip (.mp4) from the events folder (``--events-dir``)
    /healthz                {"ok": true, ...}

Heatmap off: ``?heatmap=0`` on ``/stream`` and ``/snapshot`` serves the frames without the
heatmap. The publisher bakes the heatmap into the ``image`` part; it can send the same frame
without it as a second JPEG part named ``image_plain`` (``publisher.plain_frames``), or say
``"heatmap": false`` in the header when ``image`` has none. By default it makes that copy only on
request (the header says ``plain_offered``): while a viewer watches ``?heatmap=0`` (and for
:data:`~.stream_state.PLAIN_HOLD_S` after a snapshot) the bridge subscribes to the stream's demand
topic ``want/plain/<id>/``, on which nothing is published: the publisher sees the subscription. ``plain`` in ``/api/streams``
says whether the stream offers that variant (a plain frame within the last
:data:`PLAIN_FRESH_S` seconds); without it ``?heatmap=0`` answers 404 with the reason. A frame
that arrives without ``image_plain`` while the variant is offered had no heatmap to remove
(the publisher omits the part then), so its ``image`` is served as is.

Frames on demand (``frames="on_demand"``, what ``streamcam run`` starts): the bridge subscribes to
``detections/`` and ``events/`` (streams are found by their detections) and to a stream's
``frames/<id>`` only while a viewer watches it (an MJPEG client, or for :data:`~.stream_state.FRAMES_HOLD_S`
after a snapshot). The publisher then encodes, and the processor sends, no frame nobody receives
(docs/protocol.md, "Frames on demand"); a snapshot of an unwatched stream waits up to
:data:`SNAPSHOT_WAIT_S` for its first frame. ``frames="always"`` subscribes to every frame.

What the bridge knows about each stream (latest frames, detections, events; bounded) is
:mod:`.stream_state`; this module is the sockets and HTTP around it.

Threads: one ZeroMQ receive thread (owns the SUB socket) and the HTTP server thread,
which starts one daemon thread per connection. Shutdown is designed: :meth:`MjpegServer.stop`
sets an Event, stops the HTTP loop, wakes every MJPEG writer, and joins with timeouts.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from importlib import resources
from typing import Any, Optional
from urllib.parse import parse_qs, unquote, urlsplit

import zmq

from .access import BridgeAccess, host_names
from ..httpserve import DISCONNECT, AppHTTPServer, HttpApp, PageHandler, ServedApp
from ..errors import ProtocolError
from ..protocol import RejectCounter, decode, plain_demand_topic
from ..transport import make_socket
from .stream_state import (FRAME_FRESH_S, FRAMES_HOLD_S, MAX_EVENTS, MAX_STREAMS, NO_PLAIN, PLAIN_FRESH_S,
                           PLAIN_HOLD_S, BridgeStreams)

__all__ = ["BOUNDARY", "FRAMES_HOLD_S", "FRAME_MODES", "MAX_EVENTS", "MAX_STREAMS", "MjpegServer", "NO_PLAIN",
           "PLAIN_FRESH_S", "PLAIN_HOLD_S", "PLAIN_WAIT_S", "SNAPSHOT_WAIT_S", "serve_main"]

log = logging.getLogger(__name__)

BOUNDARY = "frame"

_MJPEG_WAKE_S = 0.25
PLAIN_WAIT_S = 1.5
"""How long a ``?heatmap=0`` snapshot waits for the publisher's first plain copy after asking."""
SNAPSHOT_WAIT_S = 3.0
"""With frames on demand, how long a snapshot of a stream nobody watched waits for its first frame
(the processor resumes sending a stream's frames within one frame of the publisher's report)."""
FRAME_MODES = ("on_demand", "always")


class _HTTPServer(AppHTTPServer):
    app: "MjpegServer"

    def process_request(self, request: Any, client_address: Any) -> None:
        # The cap is taken before a thread exists: a flood of connections costs a refusal each, not a thread.
        if not self.app.access.admit():
            self.app.refused += 1
            body = b"too many clients\n"
            try:
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
                                b"Retry-After: 5\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.app.access.release()


class _Handler(PageHandler):
    server: _HTTPServer
    server_version = "streamcam"

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        bridge = self.server.app
        url = urlsplit(self.path)
        path = url.path
        try:
            denied = bridge.access.check(self.headers, url.query)
            if denied is not None:
                bridge.denied[denied[0]] += 1
                self._send(denied[0], "text/plain; charset=utf-8", denied[1].encode() + b"\n")
                return
            self._cookie = bridge.access.set_cookie(self.headers, url.query)
            if path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", bridge.page().encode())
            elif path == "/healthz":
                self._json(200, bridge.health())
            elif path == "/api/streams":
                self._json(200, bridge.streams())
            elif m := re.fullmatch(r"/api/detections/([^/]+)", path):
                rec = bridge.detections(unquote(m.group(1)))
                self._json(200, rec) if rec is not None else self._not_found()
            elif m := re.fullmatch(r"/api/events/([^/]+)", path):
                self._json(200, {"events": bridge.events(unquote(m.group(1)))})
            elif m := re.fullmatch(r"/events/([A-Za-z0-9_-]+)/([A-Za-z0-9_.-]+\.(jpg|mp4))", path):
                body = bridge.event_file(m.group(1), m.group(2))
                ctype = "image/jpeg" if m.group(3) == "jpg" else "video/mp4"
                self._send(200, ctype, body) if body is not None else self._not_found()
            elif m := re.fullmatch(r"/(snapshot|stream)/([^/]+)\.(jpg|mjpg)", path):
                route, sid, ext = m.group(1), unquote(m.group(2)), m.group(3)
                if (route, ext) not in (("snapshot", "jpg"), ("stream", "mjpg")):
                    self._not_found()
                    return
                heatmap = _heatmap_param(url.query)
                if heatmap is None:
                    self._send(400, "text/plain; charset=utf-8", b"heatmap: expected 0 or 1\n")
                elif not bridge.has_stream(sid):
                    self._not_found()
                elif not heatmap and not bridge.offers_plain(sid):
                    self._not_found(NO_PLAIN)
                elif route == "stream":
                    self._mjpeg(sid, heatmap)
                else:
                    jpeg = bridge.snapshot(sid, heatmap)
                    self._send(200, "image/jpeg", jpeg) if jpeg is not None else self._not_found()
            else:
                self._not_found()
        except DISCONNECT as exc:
            log.debug("client %s went away: %s", self.client_address, exc)

    _cookie: Optional[str] = None

    def extra_headers(self) -> list[tuple[str, str]]:
        return [("Set-Cookie", self._cookie)] if self._cookie else []

    def _not_found(self, why: str = "not found") -> None:
        self._send(404, "text/plain; charset=utf-8", why.encode() + b"\n")

    def _mjpeg(self, sid: str, heatmap: bool) -> None:
        bridge = self.server.app
        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Pragma", "no-cache")
        self.end_headers()
        seen = -1
        while True:
            bridge.want_frames(sid)  # renewed while this viewer watches
            if not heatmap:
                bridge.want_plain(sid)
            jpeg, seen = bridge.wait_frame(sid, seen, _MJPEG_WAKE_S, heatmap)
            if bridge.stopping:
                return
            if jpeg is None:
                continue
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
            self.wfile.write(head + jpeg + b"\r\n")


def _heatmap_param(query: str) -> Optional[bool]:
    """``heatmap`` from the query string: True when absent, None when not understood."""
    values = parse_qs(query).get("heatmap")
    if not values:
        return True
    return {"1": True, "true": True, "on": True, "0": False, "false": False, "off": False}.get(values[-1].lower())


class MjpegServer(HttpApp):
    """Subscribes to a publisher's ``frames/`` and ``detections/`` topics and serves them over HTTP.

    ``port=0`` picks a free port; :attr:`url` reports the real one after :meth:`start`.
    Malformed messages are counted in :attr:`rejects` and skipped.
    """

    def __init__(self, endpoint: str, host: str = "127.0.0.1", port: int = 8080, curve: Any = None,
                 events_dir: Optional[str] = None, access: Optional[BridgeAccess] = None,
                 frames: str = "always") -> None:
        if frames not in FRAME_MODES:
            raise ValueError(f"frames: expected one of {FRAME_MODES}, got {frames!r}")
        self.endpoint = endpoint
        self.frames = frames
        """``always`` (every stream's frames) or ``on_demand`` (a stream's frames while a viewer watches)."""
        self.events_dir = events_dir
        """Where the publisher writes snapshots and clips (``events.dir``); None: /events/ answers 404."""
        self.curve = curve
        self.host = host
        self.port = port
        self.access = access or BridgeAccess(host_names(host))
        """Connection cap, Host allow-list and token (streamcam/publisher/access.py)."""
        self.refused = 0
        """Connections answered 503 at the cap."""
        self.denied: Counter[int] = Counter()
        """Requests refused by status: 421 (Host not allowed), 401 (no valid token)."""
        self.rejects = RejectCounter()
        self.failures: Counter[str] = Counter()
        """Valid messages whose handling raised, by ``error:<ExceptionType>``."""
        self.state = BridgeStreams()
        """Every stream's latest frames, detections and events (streamcam/publisher/stream_state.py)."""
        self._stop = threading.Event()
        self._ctx: Optional[zmq.Context] = None
        self._sock: Optional[zmq.Socket] = None
        self._http = ServedApp(self, _Handler, host, port, "mjpeg-http", server_class=_HTTPServer)
        self._receiver: Optional[threading.Thread] = None
        self._plain_subscribed: set[str] = set()
        """Streams whose demand topic the receive thread (the socket's owner) has subscribed."""
        self._frames_subscribed: set[str] = set()
        """Streams whose ``frames/<id>`` the receive thread has subscribed (frames on demand)."""
        self._started_t = time.monotonic()
        self._page_template = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> "MjpegServer":
        if self._receiver is not None:
            raise RuntimeError("MjpegServer already started")
        self._stop.clear()
        self._ctx = zmq.Context()
        try:
            self._sock = make_socket(self._ctx, "SUB", self.endpoint, bind=False,
                                     subscribe=(("frames/",) if self.frames == "always" else ()) +
                                     ("detections/", "events/"), curve=self.curve)
            self.port = self._http.start()
        except BaseException:
            if self._sock is not None:
                self._sock.close(0)
            self._ctx.term()
            self._sock = self._ctx = None
            raise
        self._started_t = time.monotonic()
        self._receiver = threading.Thread(target=self._receive_loop, name="mjpeg-zmq", daemon=True)
        self._receiver.start()
        log.info("serving %s at %s", self.endpoint, self.url)
        return self

    def stop(self, timeout: float = 0.9) -> None:
        """Stop receiving and serving; returns within ``timeout`` seconds (plus a little)."""
        deadline = time.monotonic() + timeout
        self._stop.set()
        self.state.wake()  # MJPEG writers see the stop and return
        self._http.stop(timeout)
        receiver_alive = False
        if self._receiver is not None:
            self._receiver.join(max(0.0, deadline - time.monotonic()))
            receiver_alive = self._receiver.is_alive()
            if receiver_alive:
                log.warning("thread %s did not stop within %.1f s", self._receiver.name, timeout)
        if self._ctx is not None and not receiver_alive:
            self._ctx.term()  # the receive thread closed its socket on the way out
            self._ctx = None
        self._receiver = None

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # --- receiving -------------------------------------------------------------------
    def _receive_loop(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            while not self._stop.is_set():
                self._sync_demand(sock)
                if not sock.poll(100, zmq.POLLIN):
                    continue
                # Take everything waiting (several streams share the socket: never keep only one).
                for _ in range(256):
                    try:
                        parts = sock.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    try:
                        self._handle(parts)
                    except Exception as exc:  # noqa: BLE001 (one message never stops the bridge)
                        self._failed(exc)
        except zmq.ZMQError as exc:
            if not self._stop.is_set():
                log.error("receive loop stopped: %s", exc)
        finally:
            sock.close(0)
            self._sock = None

    def _sync_demand(self, sock: zmq.Socket) -> None:
        """Subscribe to the demand topic of each stream a viewer wants without the heatmap, and
        unsubscribe from those no longer wanted (the publisher makes the plain copy meanwhile)."""
        wanted = self.state.plain_wanted(time.monotonic())
        for sid in wanted - self._plain_subscribed:
            sock.setsockopt(zmq.SUBSCRIBE, plain_demand_topic(sid).encode())
        for sid in self._plain_subscribed - wanted:
            sock.setsockopt(zmq.UNSUBSCRIBE, plain_demand_topic(sid).encode())
        self._plain_subscribed = wanted
        if self.frames == "on_demand":
            watched = self.state.frames_wanted(time.monotonic())
            for sid in watched - self._frames_subscribed:
                sock.setsockopt(zmq.SUBSCRIBE, f"frames/{sid}".encode())
            for sid in self._frames_subscribed - watched:
                sock.setsockopt(zmq.UNSUBSCRIBE, f"frames/{sid}".encode())
            self._frames_subscribed = watched

    @property
    def frames_subscribed(self) -> set[str]:
        """Streams whose frames the bridge receives now (every stream's with ``frames="always"``)."""
        return set(self._frames_subscribed) if self.frames == "on_demand" else {s["id"] for s in
                                                                                 self.state.listing(time.monotonic())}

    def _failed(self, exc: BaseException) -> None:
        reason = f"error:{type(exc).__name__}"
        self.failures[reason] += 1
        if self.failures[reason] == 1:
            log.error("bridge: a message failed (%s; counted, logged once per reason)", reason, exc_info=exc)

    def _handle(self, parts: list[Any]) -> None:
        try:
            msg = decode(parts)
            if msg.kind == "frames":
                if not msg.has_part("image") or not isinstance(msg.part("image"), bytes):
                    raise ProtocolError("missing_part", "frames message without a JPEG 'image' part")
                if msg.has_part("image_plain") and not isinstance(msg.part("image_plain"), bytes):
                    raise ProtocolError("bad_part", "frames message with a non-JPEG 'image_plain' part")
            elif msg.kind not in ("detections", "events"):
                raise ProtocolError("bad_kind", f"expected frames, detections or events, got {msg.kind!r}")
        except ProtocolError as exc:
            self.rejects.reject(exc, log)
            return
        self.state.apply(msg, time.monotonic())

    # --- queries (used by the HTTP handlers; thread-safe) ------------------------------
    @property
    def evicted(self) -> int:
        """Streams dropped to make room past MAX_STREAMS (least recently updated first)."""
        return self.state.evicted

    def has_stream(self, sid: str) -> bool:
        return self.state.has_stream(sid)

    def offers_plain(self, sid: str) -> bool:
        return self.state.offers_plain(sid)

    def wait_frame(self, sid: str, seen_version: int, timeout: float,
                   heatmap: bool = True) -> tuple[Optional[bytes], int]:
        """The stream's latest JPEG once it is newer than ``seen_version`` (None on timeout or stop)."""
        return self.state.wait_frame(sid, seen_version, timeout, heatmap, stopping=self._stop.is_set)

    def want_plain(self, sid: str) -> None:
        self.state.want_plain(sid, time.monotonic())

    def want_frames(self, sid: str) -> None:
        """A viewer wants the stream's frames (frames on demand; renewed while it watches)."""
        self.state.want_frames(sid, time.monotonic())

    def snapshot(self, sid: str, heatmap: bool = True) -> Optional[bytes]:
        """The latest frame; without the heatmap, asks for the plain copy and waits up to
        :data:`PLAIN_WAIT_S` for the first one when the publisher makes it on request."""
        self.want_frames(sid)
        if heatmap:
            age = self.state.frame_age(sid, time.monotonic())
            if self.frames == "on_demand" and (age is None or age > FRAME_FRESH_S):
                # nobody watched it lately: the frame held (if any) is old; wait for the next one
                seen = self.state.version(sid)
                jpeg, _ = self.wait_frame(sid, seen, SNAPSHOT_WAIT_S, True)
                if jpeg is not None:
                    return jpeg
            return self.state.snapshot(sid, True)
        self.want_plain(sid)
        jpeg = self.state.snapshot(sid, False)
        deadline = time.monotonic() + PLAIN_WAIT_S
        seen = -1
        while jpeg is None and not self._stop.is_set() and time.monotonic() < deadline:
            jpeg, seen = self.wait_frame(sid, seen, min(_MJPEG_WAKE_S, max(0.0, deadline - time.monotonic())), False)
        return jpeg

    def detections(self, sid: str) -> Optional[dict[str, Any]]:
        return self.state.detections(sid)

    def events(self, sid: str) -> list[dict[str, Any]]:
        return self.state.events(sid)

    def event_file(self, stream: str, name: str) -> Optional[bytes]:
        """A snapshot or clip under the events folder (names checked by the route: no path can leave it)."""
        if self.events_dir is None:
            return None
        from pathlib import Path

        path = Path(self.events_dir) / stream / name
        try:
            return path.read_bytes() if path.is_file() else None
        except OSError:
            return None

    def streams(self) -> dict[str, Any]:
        listing = self.state.listing(time.monotonic())
        return {"streams": listing, "rejected": dict(self.rejects.counts), "failed": dict(self.failures),
                "evicted": self.evicted}

    def health(self) -> dict[str, Any]:
        n = len(self.state)
        return {
            "ok": not self._stop.is_set() and (self._receiver is None or (self._receiver.is_alive() and self._http.alive)),
            "endpoint": self.endpoint,
            "streams": n,
            "rejected": self.rejects.total,
            "refused": self.refused, "denied": {str(k): v for k, v in self.denied.items()},
            "uptime_s": round(time.monotonic() - self._started_t, 3),
        }

    def page(self) -> str:
        """The viewer page; it finds the streams itself (``/api/streams``), so it is static."""
        return self._page_template


def serve_main(endpoint: str, host: str = "127.0.0.1", port: int = 8080,
               stop_event: Optional[threading.Event] = None, curve: Any = None,
               access: Optional[BridgeAccess] = None, events_dir: Optional[str] = None,
               frames: str = "always") -> dict[str, Any]:
    """Run the bridge until ``stop_event`` is set (the CLI's ``streamcam serve``); returns reject counts."""
    stop_event = stop_event or threading.Event()
    with MjpegServer(endpoint, host, port, curve=curve, access=access, events_dir=events_dir,
                     frames=frames) as server:
        log.info("MJPEG bridge for %s: %s", endpoint, server.url)
        while not stop_event.wait(0.5):
            pass
        return {"url": server.url, "rejected": dict(server.rejects.counts)}
