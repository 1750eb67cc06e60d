"""Weakly-supervised object localization (WSOL) metrics, after Choe et al. (CVPR 2020) and Zhang et al. (2016).

Protocol (Choe, Oh, Lee, Chun, Akata, Shim, "Evaluating Weakly Supervised Object Localization
Methods Right", CVPR 2020), per image with the map of the ground-truth class ("GT-known"):

1. min-max normalise the map (at image resolution) to [0, 1];
2. for every threshold ``t`` of a sweep (default 0, 0.01, ..., 0.99): the mask ``map > t``;
3. the box of the *largest* connected component (outer contour by area; with
   ``multi_contour=True`` every contour's box is a candidate and the best one counts, as in
   MaxBoxAccV2);
4. a hit at ``(t, delta)`` when the box's IoU with some GT box is >= ``delta``;
5. ``BoxAcc(t, delta)`` = fraction of images hit; **GT-known loc accuracy** is BoxAcc at a fixed
   threshold and delta = 0.5 (the CAM paper: t = 0.2); **MaxBoxAcc(delta)** = max over t;
   **MaxBoxAccV2** = mean of MaxBoxAcc at delta in {0.3, 0.5, 0.7} (multi-contour).

Pointing game (Zhang, Lin, Brandt, Shen, Sclaroff, "Top-down Neural Attention by Excitation
Backprop", ECCV 2016): a hit when the map's maximum lies inside a GT box or within ``tolerance``
(15 px) of one.

Boxes are ``(x0, y0, x1, y1)`` with x1/y1 exclusive (streamcam's convention), so a mask covering
pixels 10..19 gives ``(10, ., 20, .)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

from ..processor.cam import normalize_minmax
from .localization import iou

Box = tuple[float, float, float, float]
DEFAULT_THRESHOLDS = tuple(float(t) for t in np.round(np.arange(0.0, 1.0, 0.01), 2))
IOU_DELTAS = (0.3, 0.5, 0.7)


def contour_boxes(mask: np.ndarray) -> list[tuple[Box, float]]:
    """Boxes and areas of the outer contours of a binary mask, largest area first."""
    contours, _ = cv2.findContours(np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        x, y, w, h = cv2.boundingRect(c)
        # Area by pixel count of the component's box region is not what we want: use the contour area,
        # plus the box area to break ties between degenerate (1-pixel-thin) contours.
        out.append(((float(x), float(y), float(x + w), float(y + h)), float(cv2.contourArea(c)) + 1e-3 * w * h))
    out.sort(key=lambda ba: -ba[1])
    return out


def boxes_at_thresholds(cam: np.ndarray, thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
                        multi_contour: bool = False, normalized: bool = False) -> list[list[Box]]:
    """Per threshold: ``[largest-contour box]`` (or every contour's box); ``[]`` when the mask is empty."""
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise ValueError(f"boxes_at_thresholds: expected a 2-D map [H, W], got shape {list(cam.shape)}")
    m = cam if normalized else normalize_minmax(cam)
    out = []
    for t in thresholds:
        found = contour_boxes(m > float(t))
        boxes = [b for b, _ in found]
        out.append(boxes if multi_contour else boxes[:1])
    return out


def best_iou(boxes: Sequence[Box], gt_boxes: Sequence[Box]) -> float:
    """Max IoU over candidate boxes x GT boxes (0 when either is empty)."""
    return max((iou(b, g) for b in boxes for g in gt_boxes), default=0.0)


def pointing_hit(cam: np.ndarray, gt_boxes: Sequence[Box], tolerance: float = 15.0) -> bool:
    """Whether the map's (first) maximum lies within ``tolerance`` px of a GT box (inside counts as 0 px)."""
    cam = np.asarray(cam)
    y, x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    px, py = x + 0.5, y + 0.5  # the pixel's centre, in the exclusive-box convention
    for x0, y0, x1, y1 in gt_boxes:
        dx = max(x0 - px, 0.0, px - x1)
        dy = max(y0 - py, 0.0, py - y1)
        if dx * dx + dy * dy <= tolerance * tolerance:
            return True
    return False


@dataclass
class WSOLEvaluator:
    """Accumulates images (map at image resolution + GT boxes); ``result()`` gives every metric.

    ``update(cam, gt_boxes)`` per image; ``cam`` is the map of the ground-truth class (any range;
    it is min-max normalised here), upsampled to the image the boxes are in.
    """

    thresholds: Sequence[float] = DEFAULT_THRESHOLDS
    deltas: Sequence[float] = IOU_DELTAS
    fixed_threshold: float = 0.2
    """Threshold of the GT-known loc accuracy (the CAM paper's 20 % of the max)."""
    tolerance: float = 15.0
    """Pointing game tolerance in pixels (Zhang et al. 2016)."""
    ious: list = field(default_factory=list)
    """Per image: IoU per threshold, largest contour ``[T]``."""
    ious_multi: list = field(default_factory=list)
    """Per image: best IoU over all contours per threshold ``[T]``."""
    ious_fixed: list = field(default_factory=list)
    pointing: list = field(default_factory=list)

    def update(self, cam: np.ndarray, gt_boxes: Sequence[Box]) -> None:
        gt = [tuple(float(v) for v in g) for g in gt_boxes]
        m = normalize_minmax(np.asarray(cam, dtype=np.float32))
        per_t = boxes_at_thresholds(m, self.thresholds, multi_contour=True, normalized=True)
        self.ious.append([best_iou(b[:1], gt) for b in per_t])
        self.ious_multi.append([best_iou(b, gt) for b in per_t])
        fixed = boxes_at_thresholds(m, [self.fixed_threshold], normalized=True)[0]
        self.ious_fixed.append(best_iou(fixed, gt))
        self.pointing.append(pointing_hit(m, gt, self.tolerance))

    def __len__(self) -> int:
        return len(self.ious)

    def box_acc(self, delta: float = 0.5, multi_contour: bool = False) -> np.ndarray:
        """BoxAcc per threshold ``[T]``: fraction of images whose box has IoU >= delta."""
        a = np.asarray(self.ious_multi if multi_contour else self.ious, dtype=np.float64)
        if a.size == 0:
            return np.full(len(self.thresholds), np.nan)
        return (a >= delta).mean(axis=0)

    def result(self) -> dict:
        if not self.ious:
            raise ValueError("WSOLEvaluator.result: no images were added")
        acc = self.box_acc(0.5)
        best = int(np.argmax(acc))
        max_box = {f"{d:g}": float(self.box_acc(d).max()) for d in self.deltas}
        max_box_multi = {f"{d:g}": float(self.box_acc(d, True).max()) for d in self.deltas}
        return {
            "images": len(self.ious),
            "gt_known_loc_acc": float(np.mean(np.asarray(self.ious_fixed) >= 0.5)),
            "gt_known_threshold": self.fixed_threshold,
            "max_box_acc": float(acc[best]),
            "max_box_acc_threshold": float(self.thresholds[best]),
            "max_box_acc_by_iou": max_box,
            "max_box_acc_v2": float(np.mean(list(max_box_multi.values()))),
            "max_box_acc_v2_by_iou": max_box_multi,
            "pointing_game": float(np.mean(self.pointing)),
            "pointing_tolerance_px": self.tolerance,
        }


def evaluate_maps(cams: Sequence[np.ndarray], gt_boxes: Sequence[Sequence[Box]], **kwargs) -> dict:
    """All WSOL metrics of a list of maps (image resolution) and their GT boxes."""
    if len(cams) != len(gt_boxes):
        raise ValueError(f"evaluate_maps: expected as many maps as GT lists, got {len(cams)} and {len(gt_boxes)}")
    ev = WSOLEvaluator(**kwargs)
    for c, g in zip(cams, gt_boxes):
        ev.update(c, g)
    return ev.result()


__all__ = ["DEFAULT_THRESHOLDS", "IOU_DELTAS", "WSOLEvaluator", "best_iou", "boxes_at_thresholds", "contour_boxes",
           "evaluate_maps", "pointing_hit"]
