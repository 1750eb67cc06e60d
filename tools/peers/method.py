"""A peer as a method of the real-footage evaluation: its boxes at an operating point, raw and stabilized.

The peer runs once per frame (:func:`detect_all`, every box it finds with its low
``min_score``); an operating point is then a score threshold on those boxes:

* **raw**: the boxes with ``score >= threshold``;
* **stabilized**: the boxes fed to streamcam's stabilizer as the processor feeds it CAM
  boxes: the threshold plays the part of ``score_enter`` (scores are rescaled by
  ``score_enter / threshold`` and capped at 1), so boxes down to
  ``threshold * score_leave / score_enter`` still sustain a confirmed track (the
  hysteresis). The stabilizer's size calibration is off (``box_correction`` identity): it
  is fitted to CAM boxes, not to a peer's.

:func:`choose_thresholds` picks the thresholds of raw and stabilized on one part of a
sequence (the first half: its training half) by best MOTA; they are then applied to the
other part unchanged.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from streamcam.evaluation.mot import MotFrame, MotSequence
from streamcam.evaluation.real import MethodFrame, evaluate_sequence
from streamcam.protocol import Detection
from streamcam.stabilizer import BoxCorrection, Stabilizer, StabilizerConfig

from . import BoxDetector, PeerBoxes

GRID = {"yolov3-tiny": (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6, 0.7, 0.8),
        "hog": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.2, 1.5, 2.0)}


def detect_all(peer: BoxDetector, frames: Sequence[MotFrame]) -> dict[Path, PeerBoxes]:
    """The peer's boxes for every frame, by image path."""
    return {f.path: peer.detect(f.path) for f in frames}


class PeerMethod:
    """A peer's cached boxes at thresholds ``(raw, stabilized)``, tracked by the stabilizer."""

    def __init__(self, name: str, boxes: dict[Path, PeerBoxes], threshold_raw: float, threshold_stabilized: float,
                 config: StabilizerConfig | None = None, label: str = "person") -> None:
        self.name = name
        self.boxes = boxes
        self.threshold = {"raw": float(threshold_raw), "stabilized": float(threshold_stabilized)}
        self.config = dataclasses.replace(config or StabilizerConfig(), box_correction=BoxCorrection())
        self.label = label
        self.reset()

    def reset(self) -> None:
        self.stabilizer = Stabilizer(self.config)

    def candidates(self, pb: PeerBoxes) -> list[Detection]:
        """The stabilizer's candidates: the threshold maps to ``score_enter`` (see the module doc)."""
        thr = self.threshold["stabilized"]
        enter = self.config.score_enter
        if thr > 0:
            scores = np.minimum(1.0, pb.scores * (enter / thr))
        else:  # every box found is a strong one
            scores = np.full(len(pb.scores), 1.0)
        return [Detection(tuple(map(float, b)), float(s), self.label) for b, s in zip(pb.boxes, scores)]

    def frame(self, frame: MotFrame, t: float, frame_size: tuple[int, int]) -> MethodFrame:
        pb = self.boxes[frame.path]
        raw = [Detection(tuple(map(float, b)), float(s), self.label)
               for b, s in zip(pb.boxes, pb.scores) if s >= self.threshold["raw"]]
        t0 = time.perf_counter()
        tracked = self.stabilizer.update(self.candidates(pb), t, frame_size)
        track_ms = (time.perf_counter() - t0) * 1e3
        return MethodFrame(raw, tracked, pb.ms, pb.ms + track_ms)


def choose_thresholds(name: str, boxes: dict[Path, PeerBoxes], seq: MotSequence, grid: Sequence[float],
                      config: StabilizerConfig | None = None) -> dict:
    """Thresholds of raw and stabilized with the best MOTA on ``seq`` (ties: the lower threshold), and the sweep."""
    sweep = []
    for thr in grid:
        r = evaluate_sequence(seq, PeerMethod(name, boxes, thr, thr, config))
        sweep.append({"threshold": thr, "raw_mota": r["raw"]["mota"], "stabilized_mota": r["stabilized"]["mota"],
                      "raw_localization": r["raw"]["localization"]})
    best = {k: max(sweep, key=lambda s: (s[f"{k}_mota"], -s["threshold"]))["threshold"] for k in ("raw", "stabilized")}
    return {"chosen_on": f"{seq.name} ({seq.part} half)", "criterion": "best MOTA", **best, "sweep": sweep}
