"""How a stage takes its input: drain the socket, validate, keep the newest message per stream.

Shared by the processor and the publisher. Everything waiting is read at once; a
malformed message is rejected (counted by reason, never fatal); of the valid ones,
only the newest per stream is kept and the older ones are counted as skipped. This
is the newest-frame policy that keeps latency bounded under overload.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import zmq

from . import protocol
from .errors import ProtocolError
from .guard import MessageGuard
from .transport import drain

IMAGE_FORMATS = ("BGR8", "GRAY8")
"""What a frame's or a result's ``image`` may be (docs/protocol.md); the rest are maps and raw counts."""


def take_waiting(sock: zmq.Socket, kind: str, stage: str, rejects: protocol.RejectCounter, metrics: Any,
                 log: logging.Logger, guard: MessageGuard | None = None,
                 image: bool = True) -> dict[str, list[protocol.Message]]:
    """``{stream: [messages, oldest first]}``: everything waiting on ``sock`` that is accepted.

    A message is accepted when it decodes, is of ``kind`` and carries a raw ``image`` part
    (``image=False``: if it carries one; a result nobody will see the frame of comes without).
    Anything else the decoder raises (a bug: it should only raise ProtocolError) is counted by
    ``guard`` and the message skipped.
    """
    waiting: dict[str, list[protocol.Message]] = {}
    for parts in drain(sock):
        try:
            msg = protocol.decode(parts)
            if msg.kind != kind or (image and not msg.has_part("image")):
                raise ProtocolError("unexpected_kind", f"expected a {kind} with an image, got {msg.kind}")
            if msg.has_part("image"):
                if not isinstance(msg.part("image"), np.ndarray):
                    raise ProtocolError("bad_part", "expected a raw image part, got an encoded one")
                pf = next(d["pixel_format"] for d in msg.header["parts"] if d["name"] == "image")
                if pf not in IMAGE_FORMATS:
                    raise ProtocolError("bad_pixel_format", f"expected an image in {IMAGE_FORMATS}, got {pf}")
            elif not all(isinstance(msg.header.get(k), int) and msg.header[k] > 0 for k in ("width", "height")):
                raise ProtocolError("bad_header", "a result without its image must say its width and height")
        except ProtocolError as exc:
            rejects.reject(exc, log)
            metrics.rejected.labels(stage, exc.reason).inc()
            continue
        except Exception as exc:  # noqa: BLE001 (one message: counted, the stage goes on)
            if guard is None:
                raise
            guard.failed(exc)
            continue
        metrics.frames_in.labels(stage, msg.stream).inc()
        waiting.setdefault(msg.stream, []).append(msg)
    return waiting


def take_newest(sock: zmq.Socket, kind: str, stage: str, rejects: protocol.RejectCounter, metrics: Any,
                log: logging.Logger, guard: MessageGuard | None = None) -> tuple[dict[str, protocol.Message], int]:
    """``({stream: newest message}, skipped)`` from everything waiting on ``sock`` (:func:`take_waiting`):
    the older messages of a stream are counted as skipped (the newest-frame policy)."""
    recent, skipped = take_recent(sock, kind, stage, rejects, metrics, log, guard, max_age_ms=0.0)
    return {stream: msgs[-1] for stream, msgs in recent.items()}, skipped


def take_recent(sock: zmq.Socket, kind: str, stage: str, rejects: protocol.RejectCounter, metrics: Any,
                log: logging.Logger, guard: MessageGuard | None = None, max_age_ms: float = 0.0,
                now_ns: int | None = None, image: bool = True) -> tuple[dict[str, list[protocol.Message]], int]:
    """``({stream: [messages, oldest first]}, skipped)``: each stream's newest message, and the older
    ones still at most ``max_age_ms`` old (capture -> ``now_ns``, default now); the rest are counted
    as skipped. :func:`take_newest` with the burst kept whole while it is fresh: a stage fast enough
    for every message that receives them in bursts (the processor answers a detection and the frames
    predicted meanwhile together) handles them all, and a backlog of stale ones (after a stall) is
    still skipped to the newest."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    limit_ns = int(max_age_ms * 1e6)
    recent: dict[str, list[protocol.Message]] = {}
    skipped = 0
    for stream, msgs in take_waiting(sock, kind, stage, rejects, metrics, log, guard, image).items():
        kept = [m for m in msgs[:-1] if now_ns - m.t_capture_ns <= limit_ns] + msgs[-1:]
        if len(kept) < len(msgs):
            skipped += len(msgs) - len(kept)
            metrics.frames_dropped.labels(stage, stream, "skipped").inc(len(msgs) - len(kept))
        recent[stream] = kept
    return recent, skipped
