"""The processing core shared by the live processor, `streamcam detect` and `streamcam eval`.

Pure and synchronous: frame in, result out. preprocess → engine → CAM of the chosen
classes → normalised map → boxes by the model's box rule. No sockets, no threads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..errors import ModelError
from ..protocol import Detection
from .boxes import BoxRule, boxes_from_cam
from .peak_boxes import PeakBoxRule
from .cam import class_activation_map, normalize_ivr, normalize_minmax
from .engines import Engine
from .preprocess import crop_to_frame, preprocess


@dataclass(frozen=True)
class FrameResult:
    """What the processor knows about one frame."""

    detections: list[Detection]
    cam: np.ndarray | None
    """Low-resolution normalised CAM ``[h, w]`` in [0, 1] of the first chosen class (None when no class is present)."""
    probs: np.ndarray
    """Softmax class probabilities ``[C]``."""
    timings_ms: dict[str, float] = field(default_factory=dict)


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Detector:
    """Turns frames into CAM boxes with one engine. ``detect(image, pixel_format) -> FrameResult``."""

    def __init__(
        self,
        engine: Engine,
        classes: Sequence[str] = (),
        cam_threshold: float | None = None,
        min_score: float = 0.5,
    ) -> None:
        self.engine = engine
        meta = engine.metadata
        self.meta = meta
        names = tuple(classes) or meta.positive_classes or meta.classes
        self.class_names = tuple(names)
        self.class_indices = [meta.class_index(n) for n in names]
        self.threshold = cam_threshold if cam_threshold is not None else meta.cam_threshold
        if not 0.0 < self.threshold < 1.0:
            raise ModelError(f"cam_threshold: expected a fraction in (0, 1), got {self.threshold}")
        self.min_score = min_score
        self.rule = meta.box_rule
        self.peak_rule = PeakBoxRule.from_dict(meta.peak_boxes) if meta.peak_boxes is not None else None

    def maps(self, image: np.ndarray, pixel_format: str = "GRAY8") -> tuple[np.ndarray, np.ndarray, tuple[int, int], dict]:
        """Raw CAMs ``[len(classes), h, w]`` of the chosen classes (cropped to the frame), probabilities, frame size."""
        t0 = time.perf_counter()
        x, geom = preprocess(image, pixel_format, self.meta)
        t1 = time.perf_counter()
        out = self.engine.infer(x)
        t2 = time.perf_counter()
        if self.meta.presence == "peak":
            cams, probs = self._peak_presence(crop_to_frame(
                class_activation_map(out.features, self.meta.cam_weights)[0], geom, self.meta))
        else:
            probs = softmax(out.logits[0].astype(np.float64))
            cams = class_activation_map(out.features, self.meta.cam_weights, self.class_indices)[0]
            cams = crop_to_frame(cams, geom, self.meta)
        timings = {"preprocess": (t1 - t0) * 1e3, "engine": (t2 - t1) * 1e3}
        return cams, probs, (geom.frame_width, geom.frame_height), timings

    def shown_map(self, cam: np.ndarray) -> np.ndarray:
        """The map as the heatmap shows it, in [0, 1], from the floor the boxes count from: min-max
        for a GAP model's map; the IVR percentile when calibrated so; zero for a multiple-instance
        model, whose negative cells are "no person here" and would otherwise tint the whole frame."""
        if self.meta.cam_floor == "ivr":
            return normalize_ivr(cam)
        if self.meta.presence == "peak":
            return normalize_minmax(np.maximum(cam, 0.0)).astype(np.float32)
        return normalize_minmax(cam).astype(np.float32)

    def _peak_presence(self, all_cams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``presence: peak``: each chosen class's map as its margin over the best other class (logit
        units: > 0 where a window there is more likely this class), and the class probabilities at
        the cell where the first chosen class leads most: the multiple-instance decision."""
        margins = []
        for c in self.class_indices:
            others = np.delete(all_cams, c, axis=0)
            margins.append(all_cams[c] - (others.max(axis=0) if len(others) else 0.0))
        cams = np.stack(margins).astype(np.float32)
        y, x = np.unravel_index(int(np.argmax(cams[0])), cams[0].shape)
        return cams, softmax(all_cams[:, y, x].astype(np.float64))

    def boxes(self, cam: np.ndarray, prob: float, label: str, frame_size: tuple[int, int],
              threshold: float | None = None, rule: BoxRule | None = None) -> list[Detection]:
        """Boxes of one raw class map by the model's box rule; score = probability × relative peak.

        ``rule`` overrides the model's calibrated :class:`BoxRule` (margins, aspect).
        """
        # The rule runs on the raw (ReLU'd) map, as the CAM paper thresholds it.
        top = float(cam.max())
        if self.peak_rule is not None and threshold is None and rule is None:
            # a peak's own margin is its score: sigmoid(logit margin), the probability a window there holds one
            return [Detection(tuple(float(v) for v in box), float(1.0 / (1.0 + np.exp(-peak))), label)  # type: ignore[arg-type]
                    for box, peak in self.peak_rule.boxes(cam, frame_size)]
        if top <= 0.0:
            return []
        found = boxes_from_cam(cam, frame_size, self.threshold if threshold is None else threshold,
                               floor=self.meta.cam_floor)
        rule = self.rule if rule is None else rule
        if not rule.is_identity:
            cw, ch = frame_size[0] / cam.shape[-1], frame_size[1] / cam.shape[-2]
            found = [(rule.apply(box, cw, ch), peak) for box, peak in found]
        return [Detection(tuple(float(v) for v in box), prob * float(peak) / top, label)  # type: ignore[arg-type]
                for box, peak in found]

    def detect(self, image: np.ndarray, pixel_format: str = "GRAY8", min_score: float | None = None,
               stream: str = "") -> FrameResult:
        """Boxes of every chosen class whose probability is at least ``min_score`` (default: the detector's).

        ``stream`` names the video the frame belongs to; a frame-by-frame detector ignores it, a
        detector with per-video state (face tracking) keeps one state per stream."""
        gate = self.min_score if min_score is None else min_score
        t0 = time.perf_counter()
        cams, probs, frame_size, timings = self.maps(image, pixel_format)
        t2 = time.perf_counter()
        detections: list[Detection] = []
        for j, (name, c) in enumerate(zip(self.class_names, self.class_indices)):
            p = float(probs[c])
            if p >= gate:
                detections += self.boxes(cams[j], p, name, frame_size)
        shown = self.shown_map(cams[0]) if len(cams) else None
        timings["cam"] = (time.perf_counter() - t2) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        return FrameResult(detections, shown, probs.astype(np.float32), timings)
