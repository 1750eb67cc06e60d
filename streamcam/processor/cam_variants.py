"""CAM variants on top of the numpy reference (:mod:`streamcam.processor.cam`): top-k, one class, a difference.

All maps are *raw* (no bias, no ReLU, feature resolution); upsample / normalise with
:func:`~streamcam.processor.cam.upsample` and :func:`~streamcam.processor.cam.normalize_minmax`.
For a GAP + linear head with weights ``W [C, K]`` and bias ``b [C]``:

    M_c       = sum_k W[c, k] f_k                 mean(M_c) + b_c = logit_c
    M_a - M_b = sum_k (W[a, k] - W[b, k]) f_k      mean(M_a - M_b) = (logit_a - logit_b) - (b_a - b_b)

The difference map answers "where does the evidence for ``a`` *rather than* ``b`` lie" (positive
where the image looks more like ``a``); one matmul with the weight difference, not two maps.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .cam import class_activation_map


def _check(features: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    if features.ndim != 4:
        raise ValueError(f"expected features [N, K, h, w], got shape {list(features.shape)}")
    if weights.ndim != 2 or weights.shape[1] != features.shape[1]:
        raise ValueError(f"expected weights [C, {features.shape[1]}], got shape {list(weights.shape)}")
    return features, weights


def _class_index(c: int, n: int, what: str) -> int:
    c = int(c)
    if not -n <= c < n:
        raise ValueError(f"{what}: expected a class index in [0, {n}), got {c}")
    return c % n


def top_k_classes(logits: np.ndarray, k: int) -> np.ndarray:
    """Indices ``[N, k]`` of the k largest logits per sample, best first (ties: lower index first)."""
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"top_k_classes: expected logits [N, C], got shape {list(logits.shape)}")
    k = min(int(k), logits.shape[1])
    if k < 1:
        raise ValueError(f"top_k_classes: expected k >= 1, got {k}")
    return np.argsort(-logits, axis=1, kind="stable")[:, :k]


def top_k_cams(logits: np.ndarray, features: np.ndarray, weights: np.ndarray, k: int = 5
               ) -> tuple[np.ndarray, np.ndarray]:
    """``(classes [N, k], cams [N, k, h, w])``: the raw CAMs of each sample's k best classes."""
    features, weights = _check(features, weights)
    idx = top_k_classes(logits, k)
    n, kk = idx.shape
    _, K, h, w = features.shape
    # Gather the k weight rows per sample and do one batched matmul: [N, k, K] @ [N, K, h*w].
    wk = weights[idx]  # [N, k, K]
    cams = np.matmul(wk, features.reshape(n, K, h * w)).reshape(n, kk, h, w)
    return idx, cams


def class_cam(features: np.ndarray, weights: np.ndarray, class_index: int) -> np.ndarray:
    """Raw CAM ``[N, h, w]`` of one chosen class."""
    features, weights = _check(features, weights)
    c = _class_index(class_index, weights.shape[0], "class_cam")
    return class_activation_map(features, weights, [c])[:, 0]


def difference_cam(features: np.ndarray, weights: np.ndarray, class_a: int, class_b: int) -> np.ndarray:
    """``M_a - M_b`` ``[N, h, w]`` = ``sum_k (W[a, k] - W[b, k]) f_k``: evidence for ``a`` rather than ``b``."""
    features, weights = _check(features, weights)
    a = _class_index(class_a, weights.shape[0], "difference_cam class_a")
    b = _class_index(class_b, weights.shape[0], "difference_cam class_b")
    return class_activation_map(features, (weights[a] - weights[b])[None], None)[:, 0]


def cams_for(features: np.ndarray, weights: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Raw CAMs ``[N, len(classes), h, w]`` of a chosen list of classes."""
    features, weights = _check(features, weights)
    idx = [_class_index(c, weights.shape[0], "cams_for") for c in classes]
    return class_activation_map(features, weights, idx)


__all__ = ["cams_for", "class_cam", "difference_cam", "top_k_cams", "top_k_classes"]
