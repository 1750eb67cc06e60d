"""The stabilizer: steady, tracked detections from per-frame boxes or heatmap peaks.

``Stabilizer.update(detections, t) -> list[Detection]`` (norfair-style, pure and
synchronous). Per call:

0. **Calibrate** the candidate boxes' size (:class:`BoxCorrection`, fitted per model
   against ground truth; identity by default): CAM boxes are too wide for small, distant
   people and too narrow for near ones.
1. **Predict** every track to time ``t`` with its constant-velocity Kalman filter
   (:mod:`.kalman`, all tracks in one vectorised call).
2. **Associate** candidates (``score >= score_leave``) to tracks optimally
   (``scipy.optimize.linear_sum_assignment``) on the cost
   ``d + iou_weight * (1 - IoU)``, where ``d`` is the centre distance normalised by the
   mean box size per axis (``sqrt((dx / w)^2 + (dy / h)^2)``). Pairs with
   ``d > max_distance``, ``IoU < min_iou`` or different labels are gated out.
   **Merged blobs**: a candidate whose (uncalibrated) box holds the predicted centres of
   two or more established tracks (``merge_min_hits``) is one CAM blob of several people
   (crossing, walking together); it updates none of them and starts no track, and they
   ride on their predictions, published, for up to ``max_merged`` frames. The tracks are
   associated with the other candidates only (``merge_keeps_own``): one of them also seen
   on its own box keeps to that box instead of riding, and that box starts no second track.
3. **Lifecycle**: a candidate with ``score >= score_enter`` that matches no track starts a
   *tentative* track; ``hits_to_confirm`` strong hits confirm it; a tentative track that
   misses more than ``max_tentative_misses`` frames is deleted (a one-frame false positive
   is never published). A *confirmed* track is sustained by candidates down to
   ``score_leave`` (hysteresis); when unmatched it *coasts* on its prediction, published
   for ``coast_publish`` frames and kept (unpublished, still matchable, same id) for
   ``max_misses`` frames, then deleted.
4. **Publish** confirmed and coasting tracks with their id; the box is the Kalman
   estimate smoothed once more by a one-euro filter (:mod:`.one_euro`) on
   ``(cx, cy, w, h)``; the score is an exponential average of the matched scores
   (decayed by ``coast_score_decay`` per missed frame).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..geometry import iou_matrix
from ..protocol import Detection
from . import kalman
from .config import StabilizerConfig
from .one_euro import one_euro_step

__all__ = ["COASTING", "CONFIRMED", "Stabilizer", "TENTATIVE", "Track"]

TENTATIVE, CONFIRMED, COASTING = "tentative", "confirmed", "coasting"
_GATED = 1e6


@dataclass(frozen=True)
class Track:
    """A snapshot of one track (for drawing and inspection)."""

    id: int
    state: str
    """``tentative``, ``confirmed`` or ``coasting``."""
    label: str
    age: int
    """Frames since the track started."""
    hits: int
    misses: int
    """Consecutive frames without a matching candidate."""
    box: tuple[float, float, float, float]
    """Published (smoothed) box, x0, y0, x1, y1 in frame pixels."""
    score: float
    velocity: tuple[float, float]
    """Centre velocity (px/s) of the Kalman filter."""
    trail: tuple[tuple[float, float], ...]
    """Last published centres, oldest first."""


def trails_reference(tracks: Sequence[Track]) -> list[dict[str, Any]]:
    """:meth:`Stabilizer.trails` written out on the track snapshots."""
    return [{"id": t.id, "state": t.state, "trail": [[round(x, 1), round(y, 1)] for x, y in t.trail]}
            for t in tracks if t.state != TENTATIVE]


def _as_candidates(items: Sequence[Any], default_label: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Boxes ``[M, 4]``, scores ``[M]`` and labels of Detections, Peaks or ``(box, score)`` pairs."""
    boxes, scores, labels = [], [], []
    for d in items:
        if hasattr(d, "box"):
            boxes.append(d.box)
            scores.append(d.score if hasattr(d, "score") else d.value)
            labels.append(getattr(d, "label", None) or default_label)
        else:
            box, score = d
            boxes.append(box)
            scores.append(score)
            labels.append(default_label)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not (np.isfinite(b).all() and np.isfinite(s).all()):
        raise ValueError("Stabilizer.update: expected finite boxes and scores")
    return b, s, labels


class Stabilizer:
    """Turns per-frame candidates into steady, tracked detections (a multi-object tracker)."""

    def __init__(self, config: StabilizerConfig | None = None) -> None:
        self.config = (config or StabilizerConfig()).for_model(None)
        self.reset()

    def reset(self) -> None:
        self._t: float | None = None
        self._next_id = 1
        self._x = np.zeros((0, 8))  # Kalman states
        self._p = np.zeros((0, 8, 8))
        self._f = np.zeros((0, 4))  # one-euro state on (cx, cy, w, h): value, derivative
        self._df = np.zeros((0, 4))
        self._ids: list[int] = []
        self._labels: list[str] = []
        self._states: list[str] = []
        self._hits: list[int] = []
        self._misses: list[int] = []
        self._merged: list[int] = []  # consecutive frames spent inside a shared (merged) candidate
        self._ages: list[int] = []
        self._scores: list[float] = []
        self._trails: list[deque] = []
        self.frames = 0

    # ---------------------------------------------------------------- public API
    def update(self, detections: Sequence[Any], t: float, frame_size: tuple[int, int] | None = None
               ) -> list[Detection]:
        """Feed one frame's candidates (Detections, Peaks or ``(box, score)``) at time ``t`` (s)."""
        cfg = self.config
        dt = 0.0 if self._t is None else float(t) - self._t
        if dt < 0:
            raise ValueError(f"Stabilizer.update: time went backwards ({self._t} -> {t})")
        self._t = float(t)
        self.frames += 1
        boxes, scores, labels = _as_candidates(detections, cfg.default_label)
        keep = scores >= cfg.score_leave
        if not keep.all():
            boxes, scores = boxes[keep], scores[keep]
            labels = [lb for lb, k in zip(labels, keep) if k]
        raw_boxes, boxes = boxes, cfg.box_correction.apply(boxes)
        self._x, self._p = kalman.predict(self._x, self._p, dt, cfg.kalman)
        n, m = len(self._ids), len(scores)
        merged, consumed = self._merges(raw_boxes, labels) if n > 1 and m and cfg.max_merged > 0 else (None, None)
        if merged is not None and cfg.merge_keeps_own:
            # A blob is no track's candidate: the tracks are associated with the other candidates
            # only, so a track hidden in a blob that is also seen on its own keeps to its own box
            # (left unmatched, that box would start a second track on the same person).
            free = np.flatnonzero(~consumed)
            matched_t, j = self._associate(boxes[free], [labels[k] for k in free]) if free.size else (
                np.zeros(0, int), np.zeros(0, int))
            matched_d = free[j]
            merged[matched_t] = False  # seen on its own: not hidden
        else:
            matched_t, matched_d = self._associate(boxes, labels) if n and m else (np.zeros(0, int), np.zeros(0, int))
            if merged is not None:
                ok = ~merged[matched_t] & ~consumed[matched_d]
                matched_t, matched_d = matched_t[ok], matched_d[ok]
        merged_l = merged.tolist() if merged is not None else [False] * n
        # Kalman correction of the matched tracks, all at once.
        if matched_t.size:
            z = kalman.box_to_z(boxes[matched_d])
            xs, ps = kalman.update(self._x[matched_t], self._p[matched_t], z, cfg.kalman)
            self._x[matched_t], self._p[matched_t] = xs, ps
        hit = np.zeros(n, bool)
        hit[matched_t] = True
        det_of = dict(zip(matched_t.tolist(), matched_d.tolist()))
        dead = []
        for i in range(n):
            self._ages[i] += 1
            state = self._states[i]
            if hit[i]:
                s = float(scores[det_of[i]])
                if not cfg.gate_labels:
                    self._labels[i] = labels[det_of[i]]
                a = cfg.score_smoothing
                self._scores[i] = a * s + (1 - a) * self._scores[i]
                if state == TENTATIVE and s < cfg.score_enter:
                    self._misses[i] += 1  # weak evidence cannot build a new track
                    if self._misses[i] > cfg.max_tentative_misses:
                        dead.append(i)
                    continue
                self._hits[i] += 1
                self._misses[i] = 0
                self._merged[i] = 0
                if state == COASTING or (state == TENTATIVE and self._hits[i] >= cfg.hits_to_confirm):
                    self._states[i] = CONFIRMED
            elif merged_l[i] and self._merged[i] < cfg.max_merged:
                # Hidden in a blob shared with other tracks: ride on the prediction, not a miss.
                self._merged[i] += 1
                self._states[i] = COASTING
            else:
                self._misses[i] += 1
                if state == TENTATIVE:
                    if self._misses[i] > cfg.max_tentative_misses:
                        dead.append(i)
                else:
                    self._states[i] = COASTING
                    if self._misses[i] > cfg.max_misses:
                        dead.append(i)
        # Smooth the published box of every surviving track (one vectorised one-euro step).
        if n and dt > 0:
            self._f, self._df = one_euro_step(self._x[:, :4], self._f, self._df, dt, cfg.one_euro_min_cutoff,
                                              cfg.one_euro_beta, cfg.one_euro_d_cutoff)
        if dead:
            self._remove(dead)
        # New tentative tracks from strong unmatched candidates.
        new = np.ones(m, bool) if consumed is None else ~consumed
        new[matched_d] = False
        new &= scores >= cfg.score_enter
        if new.any():
            self._add(boxes[new], scores[new], [lb for lb, k in zip(labels, new) if k])
        return self._publish(frame_size)

    def predict(self, t: float, frame_size: tuple[int, int] | None = None) -> list[Detection]:
        """The tracks at time ``t`` (s) by their motion alone, for a frame the detector did not see
        (a detect rate below the frame rate): no association, no hit or miss counted, no track born
        or ended; the published boxes move on their Kalman prediction, smoothed as usual."""
        dt = 0.0 if self._t is None else float(t) - self._t
        if dt < 0:
            raise ValueError(f"Stabilizer.predict: time went backwards ({self._t} -> {t})")
        self._t = float(t)
        if self._ids and dt > 0:
            cfg = self.config
            self._x, self._p = kalman.predict(self._x, self._p, dt, cfg.kalman)
            self._f, self._df = one_euro_step(self._x[:, :4], self._f, self._df, dt, cfg.one_euro_min_cutoff,
                                              cfg.one_euro_beta, cfg.one_euro_d_cutoff)
        return self._publish(frame_size)

    @property
    def tracks(self) -> list[Track]:
        """All live tracks (tentative included), by id."""
        out = []
        for i, tid in enumerate(self._ids):
            out.append(Track(tid, self._states[i], self._labels[i], self._ages[i], self._hits[i], self._misses[i],
                             tuple(float(v) for v in kalman.z_to_box(self._f[i])), self._published_score(i),
                             (float(self._x[i, 4]), float(self._x[i, 5])), tuple(self._trails[i])))
        return out

    def trails(self) -> list[dict[str, Any]]:
        """The published tracks as a result message carries them: id, state and the trail rounded to
        0.1 px, tentative tracks left out. The same as :func:`trails_reference` on :attr:`tracks`
        (tests compare them) without making each track's snapshot (its box, score and velocity),
        which the message does not carry: the processor calls this for every frame of every stream."""
        return [{"id": tid, "state": state, "trail": [[round(x, 1), round(y, 1)] for x, y in trail]}
                for tid, state, trail in zip(self._ids, self._states, self._trails) if state != TENTATIVE]

    # ---------------------------------------------------------------- internals
    def _associate(self, boxes: np.ndarray, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        pz = self._x[:, :4]
        dz = kalman.box_to_z(boxes)
        w = np.maximum((pz[:, None, 2] + dz[None, :, 2]) / 2, 1.0)
        h = np.maximum((pz[:, None, 3] + dz[None, :, 3]) / 2, 1.0)
        d = np.hypot((pz[:, None, 0] - dz[None, :, 0]) / w, (pz[:, None, 1] - dz[None, :, 1]) / h)
        iou = iou_matrix(kalman.z_to_box(pz), boxes)
        cost = d + cfg.iou_weight * (1.0 - iou)
        gated = (d > cfg.max_distance) | (iou < cfg.min_iou)
        if cfg.gate_labels and (len(set(labels)) > 1 or len(set(self._labels)) > 1
                                or (labels and labels[0] != self._labels[0])):
            gated |= np.asarray(self._labels, dtype=object)[:, None] != np.asarray(labels, dtype=object)[None, :]
        cost = np.where(gated, _GATED, cost)
        rows, cols = linear_sum_assignment(cost)
        ok = cost[rows, cols] < _GATED
        return rows[ok], cols[ok]

    def _merges(self, boxes: np.ndarray, labels: list[str]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Tracks hidden in a merged candidate, and the candidates that merge them (None: no merge).

        A candidate (uncorrected box) that holds the predicted centres of two or more
        published tracks of its label, each with at least ``merge_min_hits`` hits (or
        already hidden), is one blob of several objects: its box fits none of them, so
        none is updated with it and it starts no track.
        """
        cfg = self.config
        pz = self._x[:, :2]
        inside = ((pz[:, None, 0] >= boxes[None, :, 0]) & (pz[:, None, 0] <= boxes[None, :, 2])
                  & (pz[:, None, 1] >= boxes[None, :, 1]) & (pz[:, None, 1] <= boxes[None, :, 3]))
        counts = inside.sum(axis=0)
        if counts.max() < 2:  # the common case: no box holds two centres
            return None, None
        rows = np.flatnonzero(inside[:, counts >= 2].any(axis=1)).tolist()
        states, hits, hidden = self._states, self._hits, self._merged
        dead = [i for i in rows if states[i] == TENTATIVE or (hits[i] < cfg.merge_min_hits and hidden[i] == 0)]
        inside[dead] = False
        if cfg.gate_labels and (len(set(labels)) > 1 or len(set(self._labels)) > 1 or labels[0] != self._labels[0]):
            inside &= np.asarray(self._labels, dtype=object)[:, None] == np.asarray(labels, dtype=object)[None, :]
        consumed = inside.sum(axis=0) >= 2
        if not consumed.any():
            return None, None
        merged = inside[:, consumed].any(axis=1)
        return merged, consumed

    def _add(self, boxes: np.ndarray, scores: np.ndarray, labels: list[str]) -> None:
        cfg = self.config
        x, p = kalman.initiate(kalman.box_to_z(boxes), cfg.kalman)
        self._x = np.concatenate([self._x, x])
        self._p = np.concatenate([self._p, p])
        self._f = np.concatenate([self._f, x[:, :4]])
        self._df = np.concatenate([self._df, np.zeros((len(scores), 4))])
        confirmed = cfg.hits_to_confirm <= 1
        for s, lb in zip(scores.tolist(), labels):
            self._ids.append(self._next_id)
            self._next_id += 1
            self._labels.append(lb)
            self._states.append(CONFIRMED if confirmed else TENTATIVE)
            self._hits.append(1)
            self._misses.append(0)
            self._merged.append(0)
            self._ages.append(1)
            self._scores.append(float(s))
            self._trails.append(deque(maxlen=cfg.trail_length))

    def _remove(self, dead: list[int]) -> None:
        keep = np.ones(len(self._ids), bool)
        keep[dead] = False
        self._x, self._p, self._f, self._df = self._x[keep], self._p[keep], self._f[keep], self._df[keep]
        for name in ("_ids", "_labels", "_states", "_hits", "_misses", "_merged", "_ages", "_scores", "_trails"):
            lst = getattr(self, name)
            setattr(self, name, [v for v, k in zip(lst, keep) if k])

    def _published_score(self, i: int) -> float:
        return self._scores[i] * self.config.coast_score_decay ** self._misses[i]

    def _publish(self, frame_size: tuple[int, int] | None) -> list[Detection]:
        out: list[Detection] = []
        if not self._ids:
            return out
        cfg = self.config
        boxes = kalman.z_to_box(self._f)
        if frame_size is not None:
            fw, fh = float(frame_size[0]), float(frame_size[1])
            inside = ((self._f[:, 0] >= 0) & (self._f[:, 0] < fw) & (self._f[:, 1] >= 0) & (self._f[:, 1] < fh))
            np.clip(boxes, 0.0, [fw, fh, fw, fh], out=boxes)
            inside = inside.tolist()
        else:
            inside = [True] * len(self._ids)
        # Plain Python lists from here on: per-element numpy indexing is slower than the work it does.
        box_list = boxes.tolist()
        centres = self._f[:, :2].tolist()
        decay = cfg.coast_score_decay
        for i, tid in enumerate(self._ids):
            state = self._states[i]
            self._trails[i].append(tuple(centres[i]))
            if state == TENTATIVE or (state == COASTING and (self._misses[i] > cfg.coast_publish or (
                    not inside[i] and not cfg.publish_outside))):
                continue
            out.append(Detection(tuple(box_list[i]), self._scores[i] * decay ** self._misses[i],  # type: ignore[arg-type]
                                 self._labels[i], tid))
        return out
