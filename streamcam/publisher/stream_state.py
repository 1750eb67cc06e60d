"""What the HTTP bridge knows about each stream: the latest frames, detections and events (thread-safe).

Fed one decoded message at a time by the bridge's receive thread (:meth:`BridgeStreams.apply`),
read by its HTTP handler threads (the queries below). Bounded: at most :data:`MAX_STREAMS`
streams (the least recently updated makes room for a new id) and :data:`MAX_EVENTS` events each.
No sockets and no HTTP here: :mod:`.mjpeg` owns both.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..protocol import Message

MAX_EVENTS = 50
"""Events the bridge keeps per stream (the page lists them)."""
MAX_STREAMS = 64
"""Streams the bridge keeps; a new id past this evicts the least recently updated one (bounded memory)."""
PLAIN_FRESH_S = 3.0
"""A stream offers ``?heatmap=0`` while its last heatmap-free frame (or offer of one) is at most this old."""
PLAIN_HOLD_S = 2.0
"""A request for ``?heatmap=0`` keeps the bridge's demand for the stream's plain copy this long
(an MJPEG viewer renews it every wake-up; a snapshot once): the publisher makes the copy only then."""
FRAMES_HOLD_S = 5.0
"""With frames on demand (``serve --frames on_demand``), a viewer's request keeps the bridge
subscribed to the stream's frames this long (an MJPEG viewer renews it every wake-up; a snapshot once)."""
FRAME_FRESH_S = 1.0
"""A snapshot on demand serves the latest frame at once while it is at most this old, else waits for a new one."""
NO_PLAIN = ("no frames without the heatmap for this stream: the publisher bakes the heatmap into the JPEG"
            " and sends a heatmap-free copy (JPEG part 'image_plain') only with publisher.plain_frames: true")
_HEADER_ONLY = ("v", "kind", "parts")


@dataclass
class StreamState:
    """What the bridge knows about one stream; guarded by :class:`BridgeStreams`' lock."""

    id: str
    jpeg: Optional[bytes] = None
    plain: Optional[bytes] = None
    """The latest frame without the heatmap (its ``image_plain`` part, or ``image`` when it has none)."""
    last_plain_t: Optional[float] = None
    on_request: bool = False
    """The latest frame said ``plain_offered``: the publisher makes the plain copy only on request."""
    image_is_plain: bool = False
    """The latest frame said ``"heatmap": false``: its image has no heatmap to remove."""
    offered_t: Optional[float] = None
    """When a frame last offered the plain copy on request."""
    plain_wanted_t: Optional[float] = None
    """When a viewer last asked for ``?heatmap=0`` (the bridge's demand: :data:`PLAIN_HOLD_S`)."""
    frames_wanted_t: Optional[float] = None
    """When a viewer last asked for the stream's frames (frames on demand: :data:`FRAMES_HOLD_S`)."""
    version: int = 0
    """Incremented on every new frame: MJPEG writers send when it changes."""
    seq: Optional[int] = None
    width: Optional[int] = None
    height: Optional[int] = None
    header_fps: Optional[float] = None
    measured_fps: Optional[float] = None
    latency_ms: Optional[float] = None
    frames: int = 0
    last_frame_t: Optional[float] = None
    last_update_t: float = field(default_factory=time.monotonic)
    detections: Optional[dict[str, Any]] = None
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Event id -> its latest state, oldest first (bounded by MAX_EVENTS)."""

    def summary(self, now: float) -> dict[str, Any]:
        fps = self.header_fps if self.header_fps is not None else self.measured_fps
        return {
            "id": self.id,
            "seq": self.seq,
            "fps": None if fps is None else round(fps, 2),
            "latency_ms": self.latency_ms,
            "width": self.width,
            "height": self.height,
            "frames": self.frames,
            "age_s": round(now - self.last_update_t, 3),
            "plain": self.offers_plain(now),
        }

    def offers_plain(self, now: float) -> bool:
        return any(t is not None and now - t <= PLAIN_FRESH_S for t in (self.last_plain_t, self.offered_t))

    def frame(self, heatmap: bool, now: float) -> Optional[bytes]:
        """The latest JPEG with or without the heatmap; None when there is none (yet): a frame made
        before the publisher saw the request for its plain copy has none."""
        if heatmap:
            return self.jpeg
        if not self.offers_plain(now):
            return None
        if self.plain is not None:
            return self.plain
        # On request, a frame without the copy has one only when its image has no heatmap; from a
        # publisher that always sends the copy (no plain_offered), such a frame had no heatmap.
        return self.jpeg if self.image_is_plain or not self.on_request else None


def _number(value: Any) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _record(header: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in header.items() if k not in _HEADER_ONLY}


class BridgeStreams:
    """Every stream's :class:`StreamState`, under one condition lock that MJPEG writers wait on."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.evicted = 0
        """Streams dropped to make room past MAX_STREAMS (least recently updated first)."""
        self._streams: dict[str, StreamState] = {}

    def __len__(self) -> int:
        with self.cond:
            return len(self._streams)

    def wake(self) -> None:
        """Wake every :meth:`wait_frame` (the bridge is stopping)."""
        with self.cond:
            self.cond.notify_all()

    def apply(self, msg: Message, now: float) -> None:
        """Take one validated ``frames``, ``detections`` or ``events`` message received at ``now``."""
        h = msg.header
        with self.cond:
            st = self._streams.get(msg.stream)
            if st is None:
                if len(self._streams) >= MAX_STREAMS:
                    # Ids come off the wire: the least recently updated stream makes room (counted), so a
                    # flood of ids can neither grow the bridge nor lock out a stream that starts later.
                    oldest = min(self._streams.values(), key=lambda x: x.last_update_t or 0.0)
                    del self._streams[oldest.id]
                    self.evicted += 1
                st = self._streams[msg.stream] = StreamState(msg.stream)
            if msg.kind == "events":
                for e in h["events"]:
                    st.events.pop(e["id"], None)
                    st.events[e["id"]] = e
                while len(st.events) > MAX_EVENTS:
                    st.events.pop(next(iter(st.events)))
                return
            st.last_update_t = now
            if st.seq is None or msg.kind == "frames":
                st.seq = msg.seq  # the latest frame's: it goes back to 0 when the publisher restarts
            latency = _number(h.get("latency_ms"))
            if latency is not None:
                st.latency_ms = latency
            if isinstance(h.get("width"), int) and isinstance(h.get("height"), int):
                st.width, st.height = h["width"], h["height"]
            have = st.detections.get("seq", -1) if st.detections else -1
            if msg.kind == "detections":
                if msg.seq >= have or msg.seq < have - 1000:  # newer, or the publisher restarted
                    st.detections = _record(h)
                if st.last_frame_t is None or now - st.last_frame_t > FRAMES_HOLD_S:
                    st.seq = msg.seq  # nobody watches its frames: the detections say where the stream is
            else:
                if "detections" in h and (st.detections is None or msg.seq > have):
                    st.detections = _record(h)
                st.jpeg = msg.part("image")
                st.plain = msg.part("image_plain") if msg.has_part("image_plain") else None
                st.on_request = h.get("plain_offered") is True
                st.image_is_plain = h.get("heatmap") is False
                if st.on_request:
                    st.offered_t = now
                if st.plain is not None or st.image_is_plain:
                    st.last_plain_t = now
                st.version += 1
                st.frames += 1
                st.header_fps = _number(h.get("fps"))
                if st.last_frame_t is not None and now > st.last_frame_t:
                    inst = 1.0 / (now - st.last_frame_t)
                    st.measured_fps = inst if st.measured_fps is None else 0.9 * st.measured_fps + 0.1 * inst
                st.last_frame_t = now
                self.cond.notify_all()

    def has_stream(self, sid: str) -> bool:
        with self.cond:
            return sid in self._streams

    def offers_plain(self, sid: str) -> bool:
        with self.cond:
            st = self._streams.get(sid)
            return st is not None and st.offers_plain(time.monotonic())

    def wait_frame(self, sid: str, seen_version: int, timeout: float, heatmap: bool = True,
                   stopping: Callable[[], bool] = lambda: False) -> tuple[Optional[bytes], int]:
        """The stream's latest JPEG once its version differs from ``seen_version`` (or None on timeout).

        With ``heatmap=False`` the frame without the heatmap; a new frame that has none is skipped.
        ``stopping`` ends the wait early (checked whenever :meth:`wake` is called).
        """
        with self.cond:
            st = self._streams.get(sid)
            if st is None:
                return None, seen_version
            self.cond.wait_for(lambda: stopping() or (st.jpeg is not None and st.version != seen_version),
                               timeout)
            if st.jpeg is None or st.version == seen_version:
                return None, seen_version
            return st.frame(heatmap, time.monotonic()), st.version

    def snapshot(self, sid: str, heatmap: bool = True) -> Optional[bytes]:
        with self.cond:
            st = self._streams.get(sid)
            return None if st is None else st.frame(heatmap, time.monotonic())

    def detections(self, sid: str) -> Optional[dict[str, Any]]:
        with self.cond:
            st = self._streams.get(sid)
            return None if st is None or st.detections is None else dict(st.detections)

    def events(self, sid: str) -> list[dict[str, Any]]:
        with self.cond:
            st = self._streams.get(sid)
            return [] if st is None else list(reversed(list(st.events.values())))

    def want_plain(self, sid: str, now: float) -> None:
        """A viewer asks for the stream's frames without the heatmap (renewed while it watches)."""
        with self.cond:
            st = self._streams.get(sid)
            if st is not None:
                st.plain_wanted_t = now

    def want_frames(self, sid: str, now: float) -> None:
        """A viewer asks for the stream's frames (renewed while it watches)."""
        with self.cond:
            st = self._streams.get(sid)
            if st is not None:
                st.frames_wanted_t = now

    def frames_wanted(self, now: float) -> set[str]:
        """The streams a viewer asked frames of within :data:`FRAMES_HOLD_S`."""
        with self.cond:
            return {sid for sid, st in self._streams.items()
                    if st.frames_wanted_t is not None and now - st.frames_wanted_t <= FRAMES_HOLD_S}

    def frame_age(self, sid: str, now: float) -> Optional[float]:
        """Seconds since the stream's latest frame arrived; None when none has."""
        with self.cond:
            st = self._streams.get(sid)
            return None if st is None or st.last_frame_t is None else now - st.last_frame_t

    def version(self, sid: str) -> int:
        with self.cond:
            st = self._streams.get(sid)
            return -1 if st is None else st.version

    def plain_wanted(self, now: float) -> set[str]:
        """The streams whose plain copy the bridge should ask the publisher for now: made on request
        and asked for by a viewer within :data:`PLAIN_HOLD_S`."""
        with self.cond:
            return {sid for sid, st in self._streams.items()
                    if st.on_request and st.plain_wanted_t is not None and now - st.plain_wanted_t <= PLAIN_HOLD_S}

    def listing(self, now: float) -> list[dict[str, Any]]:
        """Every stream's summary, by id."""
        with self.cond:
            return [self._streams[k].summary(now) for k in sorted(self._streams)]
