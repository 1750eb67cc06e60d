"""Box geometry shared by the box rules, the stabilizer and the evaluations: intersection over union.

Boxes are ``(x0, y0, x1, y1)`` in frame pixels, ``x1``/``y1`` exclusive (a box's area is
``(x1 - x0) * (y1 - y0)``). :func:`iou` is the obvious one-pair formula; :func:`iou_matrix` the
vectorised all-pairs one the stabilizer associates with (tests hold them equal). Numpy only: the
config imports the stabilizer's settings, and the stabilizer this.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

Box = Sequence[float]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes; 0 when their union is empty."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU ``[N, M]`` of boxes ``a [N, 4]`` and ``b [M, 4]``: :func:`iou` of every pair, at once."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
