"""Events inside the publisher stage: one :class:`EventTracker` per stream, media and sinks.

The publisher calls :meth:`EventHub.track` with a frame's detections before it annotates
(masked detections are neither drawn nor published), then :meth:`EventHub.publish` with
the annotated JPEG: the frame goes to the ring buffer, events to ``events/<stream>`` on the
publisher's PUB socket and to the sinks (MQTT, webhooks), which never block.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional

import zmq

from .. import protocol
from ..errors import ConfigError
from ..protocol import Detection
from ..transport import send_nowait
from .lifecycle import EventTracker, FrameEvents

log = logging.getLogger("streamcam.events")


class EventHub:
    """Everything events need in a publisher; ``close()`` ends open events and stops the sinks."""

    def __init__(self, cfg: Any) -> None:
        from .media import EventMedia

        self.cfg = cfg
        ev = cfg.events
        self.dir = cfg.resolve(ev.dir)
        self.trackers: dict[str, EventTracker] = {}
        self.media = EventMedia(ev, self.dir) if (ev.snapshots or ev.clips) else None
        self.sinks: list[Any] = []
        if ev.mqtt.host is not None:
            import dataclasses

            from .mqtt import MqttSink

            mqtt = ev.mqtt  # a CA file is named relative to the config, as every path in it
            if mqtt.ca_certs is not None:
                mqtt = dataclasses.replace(mqtt, ca_certs=cfg.resolve(mqtt.ca_certs))
            self.sinks.append(MqttSink(mqtt))
        for hook in ev.webhooks:
            from .webhook import WebhookSink

            self.sinks.append(WebhookSink(hook))
        self.sent = 0
        self.frames = 0
        self.seconds = 0.0
        """Time spent in zones + lifecycle (``track``), for the benchmark and the stats."""

    def tracker(self, stream: str) -> EventTracker:
        tr = self.trackers.get(stream)
        if tr is None:
            try:
                sc = self.cfg.stream(stream)
                zones, masks, lines = sc.zones, sc.masks, sc.lines
            except ConfigError:  # a stream the config does not name (added at run time): no zones
                zones, masks, lines = (), (), ()
            tr = self.trackers[stream] = EventTracker(stream, self.cfg.events, zones, masks, lines,
                                                      on_open=self.media.paths if self.media else None)
        return tr

    def track(self, stream: str, detections: list[Detection], t_ns: int, seq: int, width: int,
              height: int) -> FrameEvents:
        t0 = time.perf_counter()
        fe = self.tracker(stream).update(detections, t_ns, seq, width, height)
        self.seconds += time.perf_counter() - t0
        self.frames += 1
        return fe

    def draw_zones(self, stream: str, image: Any) -> None:
        """Outline the stream's zones (and lines) on the annotated frame, in place."""
        tr = self.trackers.get(stream)
        if tr is None or not (tr.zones or tr.lines) or image.ndim != 3:
            return
        import cv2
        import numpy as np

        from .zones import geometry

        h, w = image.shape[:2]
        geo = geometry(tr.zones, tr.masks, tr.lines, w, h)
        for zone, poly in zip(tr.zones, geo.zones):
            pts = np.round(poly).astype(np.int32)
            cv2.polylines(image, [pts], True, (255, 200, 0), 1, cv2.LINE_AA)
            cv2.putText(image, zone.name, (int(pts[:, 0].min()) + 3, int(pts[:, 1].min()) + 12),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 200, 0), 1, cv2.LINE_AA)
        for a, b in geo.lines:
            cv2.line(image, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), (0, 200, 255), 1, cv2.LINE_AA)

    def publish(self, pub: zmq.Socket, stream: str, seq: int, t_ns: int, fe: FrameEvents, jpeg: bytes,
                clean: Callable[[], Optional[bytes]]) -> None:
        if self.media is not None:
            self.media.on_frame(stream, t_ns, jpeg, clean, fe)
        self._emit(pub, stream, seq, t_ns, fe)

    def _emit(self, pub: Optional[zmq.Socket], stream: str, seq: int, t_ns: int, fe: FrameEvents) -> None:
        if not (fe.events or fe.crossings or fe.counts is not None):
            return
        fields: dict[str, Any] = {"events": fe.events}
        if fe.counts is not None:
            fields["counts"] = fe.counts
        if fe.crossings:
            fields["crossings"] = fe.crossings
            fields["lines"] = self.trackers[stream].line_counts
        if pub is not None:
            send_nowait(pub, protocol.encode("events", stream, seq, t_ns, (), **fields))
        for sink in self.sinks:
            for e in fe.events:
                sink.send(e)
            if fe.counts is not None and hasattr(sink, "counts"):
                sink.counts(stream, fe.counts)
        self.sent += len(fe.events)

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sent": self.sent, "open": sum(len(t.open_events) for t in self.trackers.values()),
                               "ms_per_frame": round(1e3 * self.seconds / self.frames, 4) if self.frames else None}
        if self.media is not None:
            m = self.media.stats
            out["media"] = {"snapshots": m.snapshots, "clips": m.clips, "deleted": m.deleted,
                            "dropped": dict(m.dropped),
                            "ring_bytes": {s: self.media.ring_bytes(s) for s in self.trackers}}
        out["sinks"] = [{"kind": type(s).__name__, "sent": s.sent, "queued": s.queued, "dropped": dict(s.dropped),
                         **({"connected": s.connected, "connect_failures": dict(s.connect_failures),
                             "last_error": s.last_error} if hasattr(s, "connect_failures") else {})}
                        for s in self.sinks]
        return out

    def close(self, pub: Optional[zmq.Socket] = None) -> None:
        """End every open event (sent on ``pub`` and the sinks), finish clips, stop the sinks."""
        now = time.time_ns()
        for stream, tr in self.trackers.items():
            fe = tr.close(now)  # open clips are finished by media.close() with the frames they have
            self._emit(pub, stream, 0, now, fe)
        if self.media is not None:
            self.media.close(timeout=0.5)
        # The whole stop stays inside the supervisor's grace period (1.5 s): a connected sink gets
        # a moment to send the final ends, then every sink stops.
        deadline = time.monotonic() + 0.5
        while any(s.queued for s in self.sinks) and time.monotonic() < deadline:
            time.sleep(0.02)
        for sink in self.sinks:
            sink.close(timeout=0.3)
