"""The labelling page's HTTP server: frames by index, the session's labels, and Save.

Routes::

    /                   the labelling page (page.html, self-contained: works offline)
    /api/session        {"source", "frames", "width", "height", "fps", "classes", "step", "out", "labels", "saved"}
    /frame/<i>.jpg      frame i as JPEG (16-bit thermal frames through the AGC)
    POST /api/save      the page's labels (JSON, see streamcam.labelling.labels) -> written to OUT_DIR;
                        200 {"train": {class: n}, ..., "next": [commands]} or
                        400 {"error": "ranges[1].end: ...", "field": "ranges[1].end"}
    /healthz            {"ok": true, ...}

Bound to loopback by default (it writes files on request). A save must come as
``Content-Type: application/json`` (a cross-site form cannot send that without a CORS preflight,
which this server never grants) and within :data:`MAX_BODY` bytes; a bad request is answered
and the server goes on serving. Threads: the stdlib ``ThreadingHTTPServer`` (one daemon thread per
connection); saves are serialised by a lock. :meth:`LabelServer.stop` shuts it down with a timeout.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Optional
from urllib.parse import urlsplit

from ..capture.indexed import IndexedFrames
from ..httpserve import DISCONNECT, HttpApp, PageHandler, ServedApp
from ..errors import SourceError, StreamcamError
from .labels import LabelError, Labels, check_classes, parse_classes, parse_labels
from .writer import load_session, write_dataset

log = logging.getLogger(__name__)

MAX_BODY = 4 << 20
"""Largest save request (bytes): thousands of ranges and boxes fit in far less."""


class _Handler(PageHandler):
    server_version = "streamcam-label"

    def extra_headers(self) -> list[tuple[str, str]]:
        return [("X-Content-Type-Options", "nosniff")]

    def do_GET(self) -> None:  # noqa: N802 (stdlib name)
        app = self.server.app
        path = urlsplit(self.path).path
        try:
            if path in ("/", "/index.html"):
                self._send(200, "text/html; charset=utf-8", app.page().encode())
            elif path == "/api/session":
                self._json(200, app.session())
            elif path == "/healthz":
                self._json(200, app.health())
            elif m := re.fullmatch(r"/frame/(\d{1,9})\.jpg", path):
                i = int(m.group(1))
                if i >= app.frames.count:
                    self._json(404, {"error": f"frame: expected 0 <= frame < {app.frames.count}, got {i}",
                                     "field": "frame"})
                else:
                    self._send(200, "image/jpeg", app.jpeg(i), cache="private, max-age=3600")
            else:
                self._json(404, {"error": f"no such page: {path}"})
        except SourceError as exc:
            log.error("%s", exc)
            self._json(500, {"error": str(exc)})
        except DISCONNECT as exc:
            log.debug("client %s went away: %s", self.client_address, exc)

    def do_POST(self) -> None:  # noqa: N802 (stdlib name)
        app = self.server.app
        path = urlsplit(self.path).path
        try:
            if path != "/api/save":
                self._json(404, {"error": f"no such endpoint: POST {path}"})
                return
            ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                self._json(415, {"error": f"Content-Type: expected application/json, got {ctype or 'none'!r}",
                                 "field": "Content-Type"})
                return
            try:
                length = int(self.headers.get("Content-Length") or "")
            except ValueError:
                self._json(411, {"error": "Content-Length: required", "field": "Content-Length"})
                return
            if not 0 <= length <= MAX_BODY:
                self.close_connection = True
                self._json(413, {"error": f"Content-Length: expected at most {MAX_BODY} bytes, got {length}",
                                 "field": "Content-Length"})
                return
            body = self.rfile.read(length)
            try:
                doc = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
            except (UnicodeDecodeError, ValueError, RecursionError) as exc:
                self._json(400, {"error": f"body: not valid JSON: {exc}", "field": "body"})
                return
            try:
                summary = app.save(doc)
            except LabelError as exc:
                self._json(400, {"error": str(exc), "field": exc.field})
                return
            self._json(200, summary)
        except DISCONNECT as exc:
            log.debug("client %s went away: %s", self.client_address, exc)
        except Exception as exc:  # noqa: BLE001 (one request's failure: answered, logged, the server goes on)
            log.exception("save failed")
            self._json(500, {"error": f"save failed: {exc}"})


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


class LabelServer(HttpApp):
    """Serves one recording's frames and a labelling page; Save writes OUT_DIR (see :mod:`.writer`).

    ``classes=None``: the saved session's classes, else ``person,empty``. An existing OUT_DIR's
    session is loaded on construction (its labels appear in the page). ``port=0`` picks a free
    port; :attr:`url` reports the real one after :meth:`start`. ``on_save(summary)`` is called
    after each successful save (the CLI prints the next commands).
    """

    def __init__(self, frames: IndexedFrames, out_dir: str | Path, classes: Optional[tuple[str, ...]] = None,
                 step: Optional[int] = None, host: str = "127.0.0.1", port: int = 8090,
                 on_save: Optional[Callable[[dict[str, Any]], None]] = None) -> None:
        self.frames = frames
        self.out_dir = Path(out_dir)
        self.host, self.port = host, port
        self.on_save = on_save
        saved = load_session(self.out_dir, frames)
        self.classes: tuple[str, ...] = check_classes(
            tuple(classes or (saved["classes"] if saved else parse_classes(None))), "--classes")
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 1):
            raise LabelError("--step", f"expected an integer >= 1, got {step!r}")
        self.step: int = step or (saved["step"] if saved else 1)
        self.labels = Labels()
        self.saved_at: Optional[float] = None
        if saved:
            missing = sorted({r.cls for r in saved["labels"].ranges} - set(self.classes))
            if missing:
                raise LabelError("--classes", f"{self.out_dir} has ranges of {missing}, not among {list(self.classes)}")
            self.labels = saved["labels"]
        self._save_lock = threading.Lock()
        self._http = ServedApp(self, _Handler, host, port, "label-http")
        self._started_t = time.monotonic()
        self._page = resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> "LabelServer":
        if self._http.alive:
            raise RuntimeError("LabelServer already started")
        self.port = self._http.start()
        self._started_t = time.monotonic()
        log.debug("labelling %s at %s", self.frames.path, self.url)
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving; returns within ``timeout`` seconds (plus a little)."""
        self._http.stop(timeout)

    # --- what the handlers call (thread-safe) ------------------------------------------
    def page(self) -> str:
        return self._page

    def jpeg(self, i: int) -> bytes:
        return self.frames.jpeg(i)

    def session(self) -> dict[str, Any]:
        f = self.frames
        return {"source": Path(f.path).name, "kind": f.kind, "frames": f.count, "width": f.width, "height": f.height,
                "fps": f.fps, "classes": list(self.classes), "step": self.step, "out": self.out_dir.as_posix(),
                "labels": self.labels.to_json(), "saved": self.saved_at is not None}

    def health(self) -> dict[str, Any]:
        return {"ok": self._http.alive, "frames": self.frames.count,
                "uptime_s": round(time.monotonic() - self._started_t, 3)}

    def save(self, doc: Any) -> dict[str, Any]:
        """Validate the page's labels and write OUT_DIR; :class:`LabelError` names a bad field."""
        f = self.frames
        labels = parse_labels(doc, f.count, f.width, f.height, self.classes, self.step)
        with self._save_lock:
            summary = write_dataset(labels, f, self.out_dir, self.classes, self.step)
            self.labels = labels
            self.saved_at = time.time()
        if self.on_save is not None:
            self.on_save(summary)
        return summary


def print_saved(summary: dict[str, Any]) -> None:
    """The CLI's report of a save: counts, warnings, and the exact commands to run next."""
    counts = ", ".join(f"{c} {n}" for c, n in summary["train"].items())
    print(f"saved {summary['out']}: train {counts}; validation {summary['val_frames']} frame(s), "
          f"{summary['val_boxes']} box(es)")
    for w in summary["warnings"]:
        print(f"  note: {w}")
    print("next:")
    for cmd in summary["next"]:
        print(f"  {cmd}")
    sys.stdout.flush()


def label_main(source: str, out_dir: str, host: str = "127.0.0.1", port: int = 8090,
               classes: Optional[str] = None, step: Optional[int] = None,
               stop_event: Optional[threading.Event] = None) -> int:
    """``streamcam label``: serve the page until ``stop_event`` is set (Ctrl-C)."""
    stop_event = stop_event or threading.Event()
    frames = IndexedFrames(source)
    try:
        server = LabelServer(frames, out_dir, parse_classes(classes) if classes else None, step, host, port,
                             on_save=print_saved)
        try:
            server.start()
        except OSError as exc:
            raise StreamcamError(f"--host {host} --port {port}: cannot listen there: {exc}") from None
        try:
            n_ranges, n_val = len(server.labels.ranges), len(server.labels.validation)
            resumed = f"; resumed {n_ranges} range(s), {n_val} validation frame(s)" if n_ranges or n_val else ""
            print(f"labelling {source}: {frames.count} frames of {frames.width}x{frames.height}, classes "
                  f"{', '.join(server.classes)}{resumed}")
            print(f"open {server.url} in a browser (Ctrl-C stops; Save writes {Path(out_dir).as_posix()})")
            sys.stdout.flush()
            while not stop_event.wait(0.5):
                pass
        finally:
            server.stop()
    finally:
        frames.close()
    return 0


__all__ = ["LabelServer", "MAX_BODY", "label_main", "print_saved"]
