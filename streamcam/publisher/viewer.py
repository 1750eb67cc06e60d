"""A terminal subscriber: one compact line per detections message, optionally a window per stream.

    cam0 seq=42 lat=12.5ms n=2 | #1 person 0.90 [10,20,60,90] | person 0.61 [100,30,150,110]

``show=True`` also subscribes to ``frames/`` and displays the annotated frames with
``cv2.imshow``, which needs a display and an OpenCV build with GUI support
(``opencv-python``, not ``-headless``); without them it fails up front with a clear error.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any, Optional, TextIO

import zmq

from ..errors import ProtocolError, StreamcamError
from ..protocol import Message, RejectCounter, decode
from ..transport import make_socket
from .annotate import decode_jpeg

log = logging.getLogger(__name__)


def format_detections(msg: Message) -> str:
    """The one-line summary of a ``detections`` message."""
    h = msg.header
    lat = h.get("latency_ms")
    lat_s = f"{lat:.1f}ms" if isinstance(lat, (int, float)) and not isinstance(lat, bool) else "?"
    dets = msg.detections()
    fields = [f"{msg.stream} seq={msg.seq} lat={lat_s} n={len(dets)}"]
    for d in dets:
        tid = f"#{d.track_id} " if d.track_id is not None else ""
        box = ",".join(f"{v:.0f}" for v in d.box)
        fields.append(f"{tid}{d.label} {d.score:.2f} [{box}]")
    return " | ".join(fields)


def _check_display() -> Any:
    """cv2 with a usable window system, or StreamcamError saying what is missing."""
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise StreamcamError("view --show needs a display (DISPLAY/WAYLAND_DISPLAY is not set); "
                             "run without --show, or open the MJPEG page of `streamcam serve` in a browser")
    import cv2

    try:
        cv2.namedWindow("streamcam", cv2.WINDOW_NORMAL)
        cv2.destroyWindow("streamcam")
    except cv2.error as exc:
        raise StreamcamError("view --show needs OpenCV with GUI support (pip install opencv-python instead of "
                             f"opencv-python-headless), or use `streamcam serve`: {str(exc).strip()[:120]}") from None
    return cv2


def view(
    endpoint: str,
    stream: Optional[str] = None,
    show: bool = False,
    count: Optional[int] = None,
    stop_event: Optional[threading.Event] = None,
    out: TextIO = sys.stdout,
    curve: Any = None,
) -> int:
    """Print detections from a publisher (all streams, or ``stream``) until ``count`` or ``stop_event``.

    Returns the number of detections messages printed. Malformed messages are counted and skipped.
    """
    if count is not None and count <= 0:
        raise ValueError(f"count: expected a positive number of messages, got {count}")
    cv2 = _check_display() if show else None
    stop_event = stop_event or threading.Event()
    rejects = RejectCounter()
    suffix = stream or ""
    ctx = zmq.Context()
    sock = make_socket(ctx, "SUB", endpoint, bind=False, subscribe=f"detections/{suffix}", curve=curve)
    if show:
        sock.setsockopt(zmq.SUBSCRIBE, f"frames/{suffix}".encode())
    seen = 0
    try:
        while not stop_event.is_set() and (count is None or seen < count):
            if not sock.poll(100, zmq.POLLIN):
                if cv2 is not None and cv2.waitKey(1) & 0xFF == ord("q"):
                    break
                continue
            parts = sock.recv_multipart(copy=False)
            try:
                msg = decode(parts)
                if stream is not None and msg.stream != stream:  # prefix "cam1" also matches "cam10"
                    continue
                if msg.kind == "detections":
                    line = format_detections(msg)
                elif msg.kind == "frames" and cv2 is not None:
                    img = decode_jpeg(msg.part("image")) if msg.has_part("image") else None
                    if img is None:
                        raise ProtocolError("bad_jpeg", f"frames/{msg.stream} seq {msg.seq}: no decodable image")
                    cv2.imshow(f"streamcam {msg.stream}", img)
                    if cv2.waitKey(1) & 0xFF == ord("q"):
                        break
                    continue
                else:
                    continue
            except ProtocolError as exc:
                rejects.reject(exc, log)
                continue
            print(line, file=out, flush=True)
            seen += 1
    finally:
        sock.close(0)
        ctx.term()
        if cv2 is not None:
            cv2.destroyAllWindows()
    if rejects.total:
        log.warning("skipped %d malformed message(s): %s", rejects.total, dict(rejects.counts))
    return seen
