"""The event lifecycle of one camera: confirmed tracks in, ``new`` / ``update`` / ``end`` events out.

``EventTracker.update(detections, t_ns, seq, width, height) -> FrameEvents`` (pure and
synchronous, like the stabilizer it follows). It reads only what a ``detections``
message carries — boxes, labels, scores and ``track_id`` — so it works wherever the
stabilizer runs. Detections without a ``track_id`` never make events.

Per track:

* **in** — with zones, a track is in a zone once its anchor (box bottom centre, clamped into
  the frame) has been inside for the zone's ``min_frames`` consecutive frames, and stays in it
  until it has been outside for ``leave_frames``, where outside means farther than
  ``leave_margin`` box heights from the zone (an object standing on the edge, its box
  bottom jittering by a few pixels, stays in); without zones, once it has been seen for
  ``min_frames`` frames.
* **new** — the first frame a track is in (a zone, or the frame).
* **update** — its zones, label or best score (by ``score_step``) change, it becomes
  stationary or loitering; rate limited to one per ``update_interval_s`` (changes in
  between are merged into the next).
* **end** — its track (its last, see *rejoin*) has been missing for ``lost_frames`` frames,
  or (with zones) it left them all. ``end_ns`` is when it was last seen.
* **handover** — a new track id that appears within ``handover_distance`` box heights of
  where a track with an open event was lost (not yet ended: within ``lost_frames``)
  continues that event: an id switch of the stabilizer is not a second object. The same
  holds when the new track would open its event (after ``min_frames``) and the other was
  lost since: the stabilizer often starts the new track a frame or two before it drops the
  old one, while both are seen.
* **rejoin** — a track id that handed its event on and comes back (the stabilizer found its
  old track again, beside the new one or after it) continues that event once it would open
  one; an event carried by two tracks ends when the last is lost or has left the zones.
* **stationary** — its anchor stayed within ``stationary_radius`` box heights for
  ``stationary_s``: the same event, flagged. A stationary object whose track is lost is
  *parked*: its event stays open for ``parked_memory_s``, and a track that appears at the
  same place (IoU >= 0.3, same label) and stands still there for a few frames continues
  it, so a parked car that flickers in and out of the detector never re-triggers. An object
  that never moved while its track lived is parked too (for ``still_memory_s``), and its
  stillness carries over to the next track: a confuser the detector loses every few seconds
  becomes stationary and stays one event.

Line counters count a track's anchor crossing a line segment, per direction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..protocol import Detection
from .config import EventsConfig
from .zones import (LineConfig, MaskConfig, ZoneConfig, crosses_line, distance_to_edges, frame_anchors, geometry,
                    inside_many, side)

PARKED_IOU = 0.3
PARKED_CONFIRM = 5
"""Frames a new track near a parked object must stand still before it continues that object's event."""


def _iou(a: Sequence[float], b: Sequence[float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


@dataclass(eq=False)  # identity: events are looked up in lists every frame
class Event:
    """One object's event (what the sinks send, as :meth:`to_json`)."""

    id: str
    stream: str
    label: str
    track_id: int
    start_ns: int
    score: float
    box: tuple[float, float, float, float]
    best_seq: int
    zones: list[str] = field(default_factory=list)
    entered_zones: list[str] = field(default_factory=list)
    end_ns: int | None = None
    stationary: bool = False
    loitering: bool = False
    snapshot: str | None = None
    clip: str | None = None
    last_seen_ns: int = 0
    still_anchor: tuple[float, float] = (0.0, 0.0)
    still_since_ns: int = 0
    """Where and since when its object has stood (carried from one track to the next when parked)."""
    parked_until_ns: int = 0
    former_ids: list[int] = field(default_factory=list)
    """Track ids that carried this event and handed it on (to another id); one that comes back rejoins it."""
    last_sent_ns: int = 0
    sent_score: float = 0.0
    dirty: bool = False

    def to_json(self, kind: str) -> dict[str, Any]:
        """The event object of the ``events/<stream>`` topic, MQTT ``<prefix>/events`` and webhooks."""
        return {
            "type": kind, "id": self.id, "stream": self.stream, "label": self.label, "track_id": self.track_id,
            "zones": list(self.zones), "entered_zones": list(self.entered_zones),
            "start_ns": self.start_ns, "end_ns": self.end_ns, "score": round(self.score, 4),
            "box": [round(v, 1) for v in self.box], "stationary": self.stationary, "loitering": self.loitering,
            "snapshot": self.snapshot, "clip": self.clip,
        }


@dataclass
class _Track:
    label: str
    first_ns: int
    seen: int = 0
    last_frame: int = 0
    last_ns: int = 0
    box: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    zone_in: list[int] = field(default_factory=list)
    """Per zone: consecutive frames inside (and outside, ``zone_out``)."""
    zone_out: list[int] = field(default_factory=list)
    zone_since: dict[int, int] = field(default_factory=dict)
    """Zone index -> when the track was first counted in it (for loitering)."""
    still_anchor: tuple[float, float] = (0.0, 0.0)
    still_since_ns: int = 0
    line_sides: dict[int, tuple[float, tuple[float, float]]] = field(default_factory=dict)
    """Line index -> (side, anchor) of the last anchor off that line."""
    event: Event | None = None


@dataclass
class FrameEvents:
    """What one frame changed: events to send, events whose best frame this is, counts when changed."""

    events: list[dict[str, Any]] = field(default_factory=list)
    best: list[Event] = field(default_factory=list)
    """Events whose best score this frame set (their snapshot should be this frame)."""
    started: list[Event] = field(default_factory=list)
    ended: list[Event] = field(default_factory=list)
    counts: dict[str, int] | None = None
    """Open events per label, when they changed this frame."""
    crossings: list[dict[str, Any]] = field(default_factory=list)
    """``{"line", "direction", "track_id", "label"}`` per crossing this frame."""
    kept: list[Detection] = field(default_factory=list)
    """The detections outside every mask."""


class EventTracker:
    """Per-camera event state; ``update`` once per published frame, in ``seq`` order."""

    def __init__(self, stream: str, config: EventsConfig, zones: Sequence[ZoneConfig] = (),
                 masks: Sequence[MaskConfig] = (), lines: Sequence[LineConfig] = (),
                 on_open: Callable[[Event], None] | None = None) -> None:
        """``on_open(event)``: called when an event opens, before it is sent (names its snapshot and clip)."""
        self.stream = stream
        self.on_open = on_open
        self.config = config
        self.zones, self.masks, self.lines = tuple(zones), tuple(masks), tuple(lines)
        # Per zone (name, min_frames, labels, loitering ns), and the config's times in ns: read every frame.
        self._zone_rules = [(z.name, z.min_frames, frozenset(z.labels), int(z.loitering_s * 1e9)) for z in self.zones]
        self._loitering = any(z.loitering_s > 0 for z in self.zones)
        self._stationary_ns = int(config.stationary_s * 1e9)
        self._leave_margin = config.leave_margin
        self._tracks: dict[int, _Track] = {}
        self._parked: list[Event] = []
        self._former: dict[int, Event] = {}
        """Track id -> the open event it carried before another id took it on (``rejoin``)."""
        self._frame = 0
        self._counts: dict[str, int] = {}
        self.line_counts: dict[str, dict[str, int]] = {ln.name: {"in": 0, "out": 0} for ln in self.lines}

    @property
    def open_events(self) -> list[Event]:
        """Events not ended yet (active and parked), each once (two tracks may carry one event)."""
        return list(dict.fromkeys([t.event for t in self._tracks.values() if t.event is not None] + self._parked))

    def update(self, detections: Sequence[Detection], t_ns: int, seq: int, width: int, height: int) -> FrameEvents:
        cfg = self.config
        self._frame += 1
        out = FrameEvents()
        geo = geometry(self.zones, self.masks, self.lines, int(width), int(height))
        boxes = np.array([d.box for d in detections], np.float64).reshape(-1, 4)
        anchor = frame_anchors(boxes, width, height)
        # Per frame, all anchors against all polygons at once (zones, then masks) and line sides;
        # per track, plain Python.
        nz = len(self.zones)
        hits = inside_many(anchor, geo.all_edges, geo.starts) if len(geo.starts) else None
        keep = (~hits[nz:].any(axis=0)).tolist() if geo.masks else [True] * len(detections)
        out.kept = [d for d, k in zip(detections, keep) if k]
        in_zone = hits[:nz].T.tolist() if nz else None
        sides = np.stack([side(anchor, a, b) for a, b in geo.lines]).T.tolist() if geo.lines else None
        points = anchor.tolist()
        present = {d.track_id for d in detections}
        for i, d in enumerate(detections):
            if not keep[i] or d.track_id is None:
                continue
            tr = self._tracks.get(d.track_id)
            pt = (points[i][0], points[i][1])
            if tr is None and cfg.handover_distance > 0:
                tr = self._handover(d, present)
            if tr is None:
                tr = self._tracks[d.track_id] = _Track(d.label, t_ns, zone_in=[0] * nz, zone_out=[1 << 30] * nz,
                                                       still_anchor=pt, still_since_ns=t_ns)
            self._step(tr, d, pt, in_zone[i] if in_zone else (), sides[i] if sides else (), t_ns, seq, geo, out,
                       present)
        for tid in [tid for tid, tr in self._tracks.items() if tr.last_frame != self._frame]:
            tr = self._tracks[tid]
            if self._frame - tr.last_frame > cfg.lost_frames:
                del self._tracks[tid]
                if tr.event is not None and self._carried(tr.event):
                    self._hand_on(tid, tr.event)  # another track carries its event on
                elif tr.event is not None:
                    ev = tr.event
                    # Parked: stationary, or it never moved while its track lived (a stationary object
                    # the detector keeps losing before it has stood still long enough to be called so).
                    still = ev.stationary or tr.still_since_ns == tr.first_ns
                    memory = cfg.parked_memory_s if ev.stationary else min(cfg.parked_memory_s, cfg.still_memory_s)
                    if still and memory > 0:
                        ev.parked_until_ns = ev.last_seen_ns + int(memory * 1e9)
                        self._parked.append(ev)
                    else:
                        self._end(tr.event, out)
        for ev in [ev for ev in self._parked if t_ns > ev.parked_until_ns]:
            self._parked.remove(ev)
            self._end(ev, out)
        counts: dict[str, int] = {}
        for ev in self.open_events:
            if ev.dirty and t_ns - ev.last_sent_ns >= cfg.update_interval_s * 1e9:
                self._send(ev, "update", t_ns, out)
            counts[ev.label] = counts.get(ev.label, 0) + 1
        if counts != self._counts:
            out.counts = {label: counts.get(label, 0) for label in set(counts) | set(self._counts)}
            self._counts = counts
        return out

    def close(self, t_ns: int) -> FrameEvents:
        """End every open event (the stream or the stage stops)."""
        out = FrameEvents()
        for ev in self.open_events:
            self._end(ev, out)
        self._tracks.clear()
        self._parked.clear()
        self._former.clear()
        if self._counts:
            out.counts = {label: 0 for label in self._counts}
            self._counts = {}
        return out

    # --- one tracked detection ---------------------------------------------------------
    def _step(self, tr: _Track, d: Detection, anchor: tuple[float, float], in_zone: Sequence[bool],
              sides: Sequence[float], t_ns: int, seq: int, geo: Any, out: FrameEvents, present: set) -> None:
        cfg = self.config
        tr.seen += 1
        tr.last_frame, tr.last_ns, tr.box = self._frame, t_ns, d.box
        # Zones, with inertia both ways.
        current: list[str] = []
        zone_in, zone_out, since = tr.zone_in, tr.zone_out, tr.zone_since
        box, label, margin = d.box, d.label, self._leave_margin
        for z, (name, min_frames, labels, _) in enumerate(self._zone_rules):
            was_in = z in since
            if labels and label not in labels:
                zone_in[z] = 0
                zone_out[z] += 1
            elif in_zone[z] or (was_in and margin and distance_to_edges(
                    anchor[0], anchor[1], geo.zone_segments[z]) <= margin * max(box[3] - box[1], 1.0)):
                # (In the zone already, it leaves only once its anchor is clearly outside: one
                # standing on the edge, whose box bottom jitters by a few pixels, stays in.)
                zone_in[z] += 1
                zone_out[z] = 0
            else:
                zone_in[z] = 0
                zone_out[z] += 1
            now_in = zone_in[z] >= min_frames or (was_in and zone_out[z] < cfg.leave_frames)
            if now_in:
                if not was_in:
                    since[z] = t_ns
                current.append(name)
            elif was_in:
                del since[z]
        # Stationary: the anchor stayed near where it settled.
        h = max(box[3] - box[1], 1.0)
        if math.hypot(anchor[0] - tr.still_anchor[0], anchor[1] - tr.still_anchor[1]) > cfg.stationary_radius * h:
            tr.still_anchor, tr.still_since_ns = anchor, t_ns
        stationary = t_ns - tr.still_since_ns >= self._stationary_ns
        if sides:
            self._count_lines(tr, d, anchor, sides, geo, out)
        eligible = bool(current) if self.zones else tr.seen >= cfg.min_frames
        ev, opened = tr.event, False
        if ev is None:
            if not eligible:
                return
            parked = self._parked_near(d, anchor)
            if parked is not None:
                # Near a parked object: it is that object once it has stood still for PARKED_CONFIRM
                # frames; one that walks on is another object (opens its own event then).
                if tr.still_since_ns != tr.first_ns:
                    parked = None
                elif tr.seen < PARKED_CONFIRM:
                    return
            former = self._former.get(d.track_id) if cfg.rejoin else None
            if former is not None:
                parked = None
            lost = self._lost_near(d, present) if former is None and parked is None and cfg.handover_distance > 0 \
                else None
            if former is not None:
                # This id carried that event before another took it on (the stabilizer found the old
                # track again, beside or after the new one): the same object, the same event.
                del self._former[d.track_id]
                ev = former
                if former in self._parked:
                    self._parked.remove(former)
                ev.track_id = d.track_id  # type: ignore[assignment]
            elif parked is not None:
                self._parked.remove(parked)
                ev = parked
                ev.track_id = d.track_id  # type: ignore[assignment]
                tr.still_anchor, tr.still_since_ns = ev.still_anchor, ev.still_since_ns
                stationary = t_ns - tr.still_since_ns >= self._stationary_ns
            elif lost is not None:
                # About to open where a track with an open event went quiet since this one started:
                # the stabilizer replaced that track; the object, and its event, are the same.
                ev = self._tracks.pop(lost).event
                assert ev is not None
                self._hand_on(lost, ev)
                ev.track_id = d.track_id  # type: ignore[assignment]
            else:
                ev, opened = self._open(tr, d, t_ns, seq, out), True
            tr.event = ev
        ev.still_anchor, ev.still_since_ns = tr.still_anchor, tr.still_since_ns
        if self.zones and not eligible:
            tr.event = None
            if self._carried(ev):  # another track of it is still in a zone: this one only leaves it
                self._hand_on(d.track_id, ev)  # type: ignore[arg-type]
            else:
                self._end(ev, out)
            return
        ev.last_seen_ns, ev.box = t_ns, box
        if d.score > ev.score or opened:
            ev.score, ev.best_seq = d.score, seq
            if ev not in out.best:
                out.best.append(ev)
            if d.score >= ev.sent_score + cfg.score_step:
                ev.dirty = True
        loitering = self._loitering and any(
            self._zone_rules[z][3] > 0 and t_ns - t0 >= self._zone_rules[z][3] for z, t0 in since.items())
        if ev.zones != current or ev.label != d.label or ev.stationary != stationary or ev.loitering != loitering:
            ev.zones, ev.label, ev.stationary, ev.loitering, ev.dirty = current, d.label, stationary, loitering, True
        for name in current:
            if name not in ev.entered_zones:
                ev.entered_zones.append(name)
        if opened:  # sent once zones and flags are filled: the first message already says where it is
            self._send(ev, "new", t_ns, out)

    def _open(self, tr: _Track, d: Detection, t_ns: int, seq: int, out: FrameEvents) -> Event:
        assert d.track_id is not None
        ev = Event(id=f"{self.stream}-{t_ns // 1_000_000}-{d.track_id}", stream=self.stream, label=d.label,
                   track_id=d.track_id, start_ns=tr.first_ns, score=d.score, box=d.box, best_seq=seq,
                   last_seen_ns=t_ns)
        if self.on_open is not None:
            self.on_open(ev)
        out.started.append(ev)
        out.best.append(ev)
        return ev

    def _handover(self, d: Detection, present: set) -> _Track | None:
        """A new track id near where a track with an open event was just lost (an id switch of the
        stabilizer): the new id takes over the lost track's state and event."""
        best = self._lost_near(d, present)
        if best is None:
            return None
        tr = self._tracks.pop(best)
        self._tracks[d.track_id] = tr
        assert tr.event is not None
        self._hand_on(best, tr.event)
        tr.event.track_id = d.track_id  # type: ignore[assignment]
        return tr

    def _carried(self, ev: Event) -> bool:
        """Whether a live track (one in a zone, for streams with zones) carries ``ev``."""
        return any(t.event is ev and (t.zone_since or not self.zones) for t in self._tracks.values())

    def _hand_on(self, tid: int, ev: Event) -> None:
        """Track ``tid`` no longer carries ``ev`` (another does); if it comes back, it rejoins it."""
        if self.config.rejoin:
            self._former[tid] = ev
            ev.former_ids.append(tid)

    def _lost_near(self, d: Detection, present: set) -> int | None:
        """The nearest track (id) of ``d``'s label with an open event that is lost now (missing
        from this frame, not yet ended), last seen within ``handover_distance`` box heights of ``d``."""
        cfg = self.config
        cx, cy = (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2
        best, best_d = None, None
        for tid, tr in self._tracks.items():
            if tid in present or tr.event is None or tr.label != d.label or tr.last_frame == self._frame:
                continue
            b = tr.box
            dist = math.hypot(cx - (b[0] + b[2]) / 2, cy - (b[1] + b[3]) / 2) / max(b[3] - b[1], 1.0)
            if dist <= cfg.handover_distance and (best_d is None or dist < best_d):
                best, best_d = tid, dist
        return best

    def _parked_near(self, d: Detection, anchor: tuple[float, float]) -> Event | None:
        """A parked event of the same label whose object stood where this detection stands."""
        radius = self.config.stationary_radius * max(d.box[3] - d.box[1], 1.0)
        for ev in self._parked:
            if ev.label == d.label and _iou(ev.box, d.box) >= PARKED_IOU and math.hypot(
                    anchor[0] - ev.still_anchor[0], anchor[1] - ev.still_anchor[1]) <= radius:
                return ev
        return None

    def _count_lines(self, tr: _Track, d: Detection, anchor: tuple[float, float], sides: Sequence[float], geo: Any,
                     out: FrameEvents) -> None:
        # Per line, the last anchor that was off the line: an anchor landing exactly on it is neither side.
        for k, (ln, (a, b)) in enumerate(zip(self.lines, geo.lines)):
            now = sides[k]
            if now == 0 or (ln.labels and d.label not in ln.labels):
                continue
            last = tr.line_sides.get(k)
            tr.line_sides[k] = (now, anchor)
            if last is None or last[0] == now or not crosses_line(np.asarray(last[1]), np.asarray(anchor), a, b):
                continue
            direction = "in" if last[0] > 0 else "out"
            self.line_counts[ln.name][direction] += 1
            out.crossings.append({"line": ln.name, "direction": direction, "track_id": d.track_id, "label": d.label})

    def _send(self, ev: Event, kind: str, t_ns: int, out: FrameEvents) -> None:
        ev.last_sent_ns, ev.sent_score, ev.dirty = t_ns, ev.score, False
        out.events.append(ev.to_json(kind))

    def _end(self, ev: Event, out: FrameEvents) -> None:
        for tid in ev.former_ids:
            self._former.pop(tid, None)
        for t in self._tracks.values():  # a second track of it that is out of every zone
            if t.event is ev:
                t.event = None
        ev.end_ns = ev.last_seen_ns
        out.ended.append(ev)
        out.events.append(ev.to_json("end"))
