"""Recording one stream's annotated frames (``frames/<stream>``) to an H.264 MP4 file (browsers play it).

Every received frame is written once, in order (frames the transport dropped are not
filled in). The writer opens lazily: its size comes from the first frame, its rate from
the header's ``fps``; without one, from the capture timestamps of the first frames.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Optional

import numpy as np
import zmq

from ..errors import ProtocolError
from ..protocol import Message, RejectCounter, decode
from ..transport import make_socket
from .annotate import decode_jpeg
from ..video import H264Writer, measured_fps

log = logging.getLogger(__name__)

DEFAULT_FPS = 25.0
"""Used when the header has no ``fps`` and timestamps do not give a plausible rate."""
_RATE_PROBE_FRAMES = 8
"""Without a header ``fps``, frames buffered to measure the rate before the writer opens."""


def _frame_of(msg: Message) -> np.ndarray:
    if not msg.has_part("image"):
        raise ProtocolError("missing_part", "frames message without an 'image' part")
    data = msg.part("image")
    if not isinstance(data, bytes):
        raise ProtocolError("bad_encoding", "the 'image' part must be JPEG")
    img = decode_jpeg(data)
    if img is None:
        raise ProtocolError("bad_jpeg", f"cannot decode the {len(data)}-byte JPEG of seq {msg.seq}")
    return img


def record(
    endpoint: str,
    stream: str,
    path: str,
    seconds: Optional[float] = None,
    frames: Optional[int] = None,
    stop_event: Optional[threading.Event] = None,
    curve: Any = None,
) -> dict[str, Any]:
    """Record ``frames/<stream>`` from a publisher to an MP4 file until a limit is reached.

    Stops after ``seconds`` (counted from the first frame), after ``frames`` frames, or
    when ``stop_event`` is set, whichever comes first; with none of them it records until
    interrupted. Returns ``{"frames", "seconds", "path", "fps", "width", "height", "rejected"}``
    (``seconds``: wall time from the first frame to the end).
    """
    if seconds is not None and seconds <= 0:
        raise ValueError(f"seconds: expected a positive duration, got {seconds}")
    if frames is not None and frames <= 0:
        raise ValueError(f"frames: expected a positive count, got {frames}")
    stop_event = stop_event or threading.Event()
    rejects = RejectCounter()
    writer = H264Writer(path)
    pending: list[tuple[np.ndarray, int]] = []  # frames held back while the rate is measured
    header_fps: Optional[float] = None
    first_t: Optional[float] = None

    def total() -> int:
        return writer.frames + len(pending)

    def done() -> bool:
        if stop_event.is_set() or (frames is not None and total() >= frames):
            return True
        return seconds is not None and first_t is not None and time.monotonic() - first_t >= seconds

    def flush(final: bool) -> None:
        if writer.size is None:
            if not pending:
                return
            fps = header_fps or measured_fps([t for _, t in pending])
            if fps is None and not final and len(pending) < _RATE_PROBE_FRAMES:
                return
            h, w = pending[0][0].shape[:2]
            writer.open(fps or DEFAULT_FPS, w, h)
        for img, _ in pending:
            writer.write(img)
        pending.clear()

    ctx = zmq.Context()
    sock = make_socket(ctx, "SUB", endpoint, bind=False, subscribe=f"frames/{stream}", curve=curve)
    try:
        while not done():
            if not sock.poll(100, zmq.POLLIN):
                continue
            parts = sock.recv_multipart(copy=False)
            try:
                msg = decode(parts)
                if msg.stream != stream:  # the prefix "frames/cam1" also matches "frames/cam10"
                    continue
                img = _frame_of(msg)
            except ProtocolError as exc:
                rejects.reject(exc, log)
                continue
            if first_t is None:
                first_t = time.monotonic()
                fps = msg.header.get("fps")
                if isinstance(fps, (int, float)) and not isinstance(fps, bool) and 0.5 <= fps <= 1000:
                    header_fps = float(fps)
            pending.append((img, msg.t_capture_ns))
            flush(final=False)
        flush(final=True)
    finally:
        writer.close()
        sock.close(0)
        ctx.term()
    elapsed = 0.0 if first_t is None else time.monotonic() - first_t
    width, height = writer.size or (None, None)
    return {
        "frames": writer.frames,
        "seconds": round(elapsed, 3),
        "path": path,
        "fps": writer.fps,
        "width": width,
        "height": height,
        "rejected": dict(rejects.counts),
    }
