"""Class Activation Maps (Zhou et al., CVPR 2016): the numpy reference.

For a network ending ``features f [K, h, w] -> global average pooling -> linear (W, b)``:

    M_c(x, y) = sum_k W[c, k] * f_k(x, y)          (raw CAM: no bias, no ReLU)
    logit_c   = mean_{x, y} M_c(x, y) + b_c         (why M_c explains class c)

Upsampling uses bilinear interpolation with ``align_corners=False`` semantics
(pixel centres at ``i + 0.5``; source coordinate ``(dst + 0.5) * in / out - 0.5``,
clamped at the borders): exactly what ``cv2.resize(..., INTER_LINEAR)`` and
``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` compute
for upsampling. :func:`upsample` uses cv2 (fast path); :func:`upsample_reference`
is the slow obvious version the tests compare it with.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def class_activation_map(features: np.ndarray, weights: np.ndarray,
                         classes: Sequence[int] | None = None) -> np.ndarray:
    """Raw CAM ``[N, len(classes), h, w]`` = ``einsum('ck,nkhw->nchw', W[classes], features)``."""
    features = np.asarray(features, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    if features.ndim != 4:
        raise ValueError(f"class_activation_map: expected features [N, K, h, w], got shape {list(features.shape)}")
    if weights.ndim != 2 or weights.shape[1] != features.shape[1]:
        raise ValueError(f"class_activation_map: expected weights [C, {features.shape[1]}], "
                         f"got shape {list(weights.shape)}")
    w = weights if classes is None else weights[np.asarray(list(classes), dtype=np.intp)]
    n, k, h, wd = features.shape
    # One matmul: [C, K] @ [N, K, h*w] -> [N, C, h*w].
    cam = np.matmul(w[None], features.reshape(n, k, h * wd))
    return cam.reshape(n, w.shape[0], h, wd)


def _bilinear_coords(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0, n_in - 1)
    i0 = np.floor(src).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def upsample_reference(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of the last two axes to ``size=(H, W)`` (align_corners=False), plain numpy in float64.

    Source coordinate of output pixel ``i``: ``(i + 0.5) * n_in / n_out - 0.5``, clamped to the
    edges (OpenCV's INTER_LINEAR and torch's ``align_corners=False``)."""
    cam = np.asarray(cam, dtype=np.float64)
    out_h, out_w = size
    y0, y1, fy = _bilinear_coords(cam.shape[-2], out_h)
    x0, x1, fx = _bilinear_coords(cam.shape[-1], out_w)
    rows = cam[..., y0, :] * (1 - fy)[:, None] + cam[..., y1, :] * fy[:, None]
    return rows[..., x0] * (1 - fx) + rows[..., x1] * fx


def upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``cam [..., h, w]`` to ``[..., H, W]`` with ``size=(H, W)``: cv2 INTER_LINEAR."""
    cam = np.asarray(cam, dtype=np.float32)
    out_h, out_w = size
    lead = cam.shape[:-2]
    h, w = cam.shape[-2:]
    flat = cam.reshape(-1, h, w)
    out = np.empty((flat.shape[0], out_h, out_w), np.float32)
    for i, m in enumerate(flat):
        out[i] = cv2.resize(m, (out_w, out_h), interpolation=cv2.INTER_LINEAR)
    return out.reshape(*lead, out_h, out_w)


def normalize_minmax(cam: np.ndarray) -> np.ndarray:
    """Scale each map (last two axes) to [0, 1]: ``(M - min) / (max - min)``; a constant map gives zeros."""
    cam = np.asarray(cam, dtype=np.float32)
    lo = cam.min(axis=(-2, -1), keepdims=True)
    span = cam.max(axis=(-2, -1), keepdims=True) - lo
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, (cam - lo) / safe, 0.0).astype(np.float32)


IVR_PERCENTILE = 45.0
"""Kim et al. (ICCV 2021, "Normalization matters in weakly supervised object localization"): the
best CAM floor on ImageNet and CUB is the map's 45th percentile, not its minimum."""


def normalize_ivr(cam: np.ndarray, percentile: float = IVR_PERCENTILE) -> np.ndarray:
    """Scale each map to [0, 1] from its ``percentile`` up: ``max(M - p, 0) / (max - p)``
    (IVR, Kim et al., ICCV 2021); a map flat above its percentile gives zeros.

    Min-max lets the map's most negative cell set the zero, so a frame with strong evidence
    *against* the class lifts every background cell towards the threshold; a percentile floor
    ignores the tail."""
    cam = np.asarray(cam, dtype=np.float32)
    flat = cam.reshape(-1, cam.shape[-2] * cam.shape[-1])
    lo = np.percentile(flat, percentile, axis=1).reshape(cam.shape[:-2] + (1, 1)).astype(np.float32)
    span = cam.max(axis=(-2, -1), keepdims=True) - lo
    safe = np.where(span > 0, span, 1.0)
    return np.where(span > 0, np.maximum(cam - lo, 0.0) / safe, 0.0).astype(np.float32)
