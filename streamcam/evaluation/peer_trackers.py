"""Other people's trackers, fed the same boxes as the stabilizer in ``eval --tracking``.

Each is ``update(boxes, scores) -> [(id, box), ...]`` for one frame, boxes ``(x0, y0, x1, y1)``:

* :class:`NorfairBoxes`: norfair's ``Tracker`` (two points per box, IoU distance, its own Kalman filter);
* :class:`RoboflowTracker`: roboflow's ``trackers`` package (Apache-2.0): ``sort`` (Bewley et al. 2016),
  ``bytetrack`` (Zhang et al. 2022: low-score boxes get a second association), ``ocsort`` (Cao et al.
  2023: observation-centric re-update and direction consistency), at their default settings and the
  clip's frame rate. Only confirmed tracks (``tracker_id >= 0``) are returned.

Both are optional (``make setup-train`` installs them); :func:`available` says which can run here.
"""

from __future__ import annotations

import importlib.util
from typing import Sequence

import numpy as np

Box = Sequence[float]
Tracked = list[tuple[int, Box]]

ROBOFLOW = {"sort": "SORTTracker", "bytetrack": "ByteTrackTracker", "ocsort": "OCSORTTracker"}


def available() -> dict[str, str | None]:
    """``{peer: None if it can run here, else why not}`` for norfair and the roboflow trackers."""
    out: dict[str, str | None] = {"norfair": None if importlib.util.find_spec("norfair") else
                                  "norfair not installed (make setup-train)"}
    why = None if importlib.util.find_spec("trackers") and importlib.util.find_spec("supervision") else \
        "roboflow's trackers not installed (make setup-train)"
    out.update({name: why for name in ROBOFLOW})
    return out


class NorfairBoxes:
    """norfair's Tracker on boxes (two points, IoU distance), for the side-by-side."""

    def __init__(self, distance_threshold: float = 0.8, initialization_delay: int = 2, hit_counter_max: int = 10):
        from norfair import Tracker

        self.tracker = Tracker(distance_function="iou", distance_threshold=distance_threshold,
                               initialization_delay=initialization_delay, hit_counter_max=hit_counter_max)

    def update(self, boxes: Sequence[Box], scores: Sequence[float]) -> Tracked:
        from norfair import Detection as NDet

        dets = [NDet(np.array([[b[0], b[1]], [b[2], b[3]]], float), scores=np.array([s, s], float))
                for b, s in zip(boxes, scores)]
        out: Tracked = []
        for obj in self.tracker.update(dets):
            e = obj.estimate
            x0, x1 = sorted((float(e[0, 0]), float(e[1, 0])))
            y0, y1 = sorted((float(e[0, 1]), float(e[1, 1])))
            out.append((int(obj.id), (x0, y0, x1, y1)))
        return out


class RoboflowTracker:
    """One of roboflow's ``trackers`` (``sort``, ``bytetrack``, ``ocsort``) on boxes and scores."""

    def __init__(self, name: str, fps: float = 30.0) -> None:
        if name not in ROBOFLOW:
            raise ValueError(f"RoboflowTracker: expected one of {sorted(ROBOFLOW)}, got {name!r}")
        import trackers

        self.name = name
        self.tracker = getattr(trackers, ROBOFLOW[name])(frame_rate=fps)

    def update(self, boxes: Sequence[Box], scores: Sequence[float]) -> Tracked:
        import supervision as sv

        xyxy = np.asarray(boxes, float).reshape(-1, 4)
        det = sv.Detections(xyxy=xyxy, confidence=np.asarray(scores, float).reshape(-1),
                            class_id=np.zeros(len(xyxy), int))
        out = self.tracker.update(det)
        ids = out.tracker_id if out.tracker_id is not None else np.full(len(out), -1)
        return [(int(t), tuple(float(v) for v in b)) for b, t in zip(out.xyxy, ids) if t >= 0]


def peer_methods() -> tuple[list[str], dict[str, str]]:
    """The peer methods that can run here (each plain and ``_corrected``), and why the others cannot."""
    ok, missing = [], {}
    for name, why in available().items():
        if why is None:
            ok += [name, f"{name}_corrected"]
        else:
            missing[name] = why
    return ok, missing


def peer_method(name: str, fps: float):
    """A fresh tracker for peer method ``name`` (``<peer>`` or ``<peer>_corrected``) at ``fps``."""
    base = name.removesuffix("_corrected")
    return NorfairBoxes() if base == "norfair" else RoboflowTracker(base, fps)
