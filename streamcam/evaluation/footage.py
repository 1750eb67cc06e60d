"""Boxes from a fixed camera's own footage: calibrating a peak model without drawing one.

A peak model's box rule (:mod:`streamcam.processor.peak_boxes`) needs people's boxes only to learn
the camera's geometry: how tall a person is at each image row, where the box sits around the peak.
A fixed camera's footage shows that by itself. Against the footage's temporal median (the empty
plate, :func:`streamcam.training.data.empty_plate`) a person walking alone is a foreground blob,
and its bounding box is their box: the self-calibration of surveillance cameras from walking
people (Lv, Zhao & Nevatia, "Self-calibration of a camera from video of a walking human", ICPR 2002;
Krahnstoever & Mendonca, "Bayesian autocalibration for surveillance", ICCV 2005).

Only a blob that is plainly one whole person counts (:func:`walker_boxes`): upright, mostly filled,
clear of the frame's edge, with the model's peaks on its vertical axis. Every other blob (a group,
a person cut by the edge, a fragment, a shadow, a moved car) is an *ignore* region, as MOTChallenge
treats its flag-0 boxes: a box drawn there is neither a hit nor a false box when the calibration
scores a rule, since nobody labelled who is in it.

Measured on the shared real sequences' first halves (docs/benchmarks.md, "Stop 31"): 81-100 % of
the blobs kept overlap a labelled person at IoU >= 0.5.

Pure numpy and OpenCV.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ConfigError
from ..processor.background import THRESHOLD, foreground_mask

Box = tuple[float, float, float, float]

MIN_ASPECT, MAX_ASPECT = 1.6, 4.5
"""A lone walker's box height / width: pedestrians are 2-3 (:data:`~streamcam.processor.peak_boxes.PERSON_ASPECT`
2.44); a wider blob is a group or a car, a narrower one a fragment or a pole's shadow."""
MIN_FILL = 0.35
"""Foreground share of the blob's box: a walker's silhouette fills about half of it."""
AXIS = 0.35
"""Every peak inside the blob within this many box widths of its centre line (one person's head,
torso and legs), else it is two people side by side."""


def walker_boxes(mask: np.ndarray, peaks: Sequence[tuple[float, float, float]], min_area: float | None = None
                 ) -> tuple[list[Box], list[Box]]:
    """``(boxes, ignore)`` from a foreground mask and the model's peaks ``(value, x, y)`` in frame
    pixels: the bounding boxes of blobs that are one whole person (see the module), and those of the
    other blobs. ``min_area``: blobs smaller than this are noise, in neither list (default: 0.1 % of
    the frame)."""
    import cv2

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ConfigError(f"walker boxes: expected a 2-D mask, got shape {mask.shape}")
    fh, fw = mask.shape
    min_area = float(min_area) if min_area is not None else 1e-3 * fw * fh
    n, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    boxes: list[Box] = []
    ignore: list[Box] = []
    for x, y, w, h, area in stats[1:].tolist():
        if area < min_area:
            continue
        box = (float(x), float(y), float(x + w), float(y + h))
        inside = [(px, py) for _, px, py in peaks if x <= px < x + w and y <= py < y + h]
        lone = (x > 1 and y > 1 and x + w < fw - 1 and y + h < fh - 1
                and MIN_ASPECT <= h / w <= MAX_ASPECT and area >= MIN_FILL * w * h
                and bool(inside) and all(abs(px - (x + w / 2)) <= AXIS * w for px, _ in inside))
        (boxes if lone else ignore).append(box)
    return boxes, ignore


__all__ = ["THRESHOLD", "foreground_mask", "walker_boxes"]
