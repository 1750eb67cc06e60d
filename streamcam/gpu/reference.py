"""The slow, obvious numpy version of exactly what ``kernels/cam_fused.cu`` computes.

Built from :mod:`streamcam.processor.cam`, step by step, for the tests and the benchmark::

    cam    = class_activation_map(features, weights)[n, classes[n, s]]     [N, S, h, w]
    lowres = normalize_minmax(cam)                  min/max over the low-res map
    v      = clip(upsample(lowres, (H, W)), 0, 1)   bilinear, align_corners=False (cv2 INTER_LINEAR)
    heat   = lut[rint(255 * v)]                     256-entry BGR colour map (JET by default)
    out    = rint((1 - alpha) * frame + alpha * heat), saturated to uint8

Because bilinear interpolation is a convex combination, normalising the low-res map
and then upsampling equals upsampling and then normalising with the low-res min/max.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..processor.cam import class_activation_map, normalize_minmax, upsample


def jet_lut(colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """The colour map as a contiguous uint8 ``[256, 3]`` BGR table (entry i colours grey level i)."""
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    return np.ascontiguousarray(cv2.applyColorMap(ramp, colormap).reshape(256, 3))


def class_table(classes: Sequence[int] | np.ndarray | int, n_frames: int, n_classes: int) -> np.ndarray:
    """``classes`` as an int32 ``[N, S]`` table: an int or ``[S]`` applies to every frame; ``[N, S]`` is per frame."""
    table = np.asarray(classes)
    if table.ndim == 0:
        table = table.reshape(1, 1)
    if table.ndim == 1:
        table = np.broadcast_to(table[None, :], (n_frames, table.shape[0]))
    if table.ndim != 2 or table.shape[0] != n_frames or table.shape[1] == 0:
        raise ValueError(f"classes: expected an int, [S] or [{n_frames}, S] table, got shape {list(np.shape(classes))}")
    if not np.issubdtype(table.dtype, np.integer):
        raise ValueError(f"classes: expected integer class indices, got {table.dtype}")
    if table.min() < 0 or table.max() >= n_classes:
        raise ValueError(f"classes: expected indices in [0, {n_classes}), got {table.min()}..{table.max()}")
    return np.ascontiguousarray(table, dtype=np.int32)


def frames_bgr(frames: np.ndarray) -> np.ndarray:
    """uint8 ``[N, H, W]``, ``[N, H, W, 1]`` or ``[N, H, W, 3]`` → ``[N, H, W, 3]`` BGR (grey replicated)."""
    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or (frames.ndim == 4 and frames.shape[3] not in (1, 3)):
        raise ValueError(f"frames: expected uint8 [N, H, W], [N, H, W, 1] or [N, H, W, 3], got {frames.dtype} {list(frames.shape)}")
    if frames.ndim == 3:
        frames = frames[..., None]
    return np.broadcast_to(frames, frames.shape[:3] + (3,)) if frames.shape[3] == 1 else frames


def lowres_normalized(features: np.ndarray, weights: np.ndarray, classes) -> np.ndarray:
    """The normalised low-res CAM ``[N, S, h, w]`` for the class table (phase 1 of the kernel)."""
    features = np.asarray(features, np.float32)
    cam = class_activation_map(features, weights)                   # [N, C, h, w]
    table = class_table(classes, features.shape[0], cam.shape[1])   # [N, S]
    chosen = np.take_along_axis(cam, table[:, :, None, None].astype(np.intp), axis=1)
    return normalize_minmax(chosen)


def colormap_index(lowres: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(v, index)``: the upsampled, clipped map ``[..., H, W]`` and its LUT index ``rint(255 v)``."""
    v = np.clip(upsample(lowres, size), 0.0, 1.0)
    return v, np.rint(v * np.float32(255.0)).astype(np.intp)


def fused_cam_reference(features: np.ndarray, weights: np.ndarray, classes, frames: np.ndarray,
                        alpha: float = 0.4, lut: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(blended uint8 [N, S, H, W, 3], lowres float32 [N, S, h, w])`` — see the module docstring."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected 0 <= alpha <= 1, got {alpha}")
    bgr = frames_bgr(frames)
    features = np.asarray(features, np.float32)
    if bgr.shape[0] != features.shape[0]:
        raise ValueError(f"frames: expected {features.shape[0]} frames (one per feature map), got {bgr.shape[0]}")
    lut = jet_lut() if lut is None else np.asarray(lut, np.uint8).reshape(256, 3)
    lowres = lowres_normalized(features, weights, classes)
    n, s = lowres.shape[:2]
    height, width = bgr.shape[1:3]
    out = np.empty((n, s, height, width, 3), np.uint8)
    a = np.float32(alpha)
    for i in range(n):
        base = (np.float32(1.0) - a) * bgr[i].astype(np.float32)
        for j in range(s):
            _, index = colormap_index(lowres[i, j], (height, width))
            heat = lut[index].astype(np.float32)
            out[i, j] = np.clip(np.rint(base + a * heat), 0, 255).astype(np.uint8)
    return out, lowres


__all__ = ["class_table", "colormap_index", "frames_bgr", "fused_cam_reference", "jet_lut", "lowres_normalized"]
