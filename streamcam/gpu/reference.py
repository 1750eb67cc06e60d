"""The slow, obvious numpy version of exactly what ``kernels/cam_fused.cu`` computes.

Built from :mod:`streamcam.processor.cam`, step by step, for the tests and the benchmark::

    cam    = class_activation_map(features, weights)[n, classes[n, s]]     [N, S, h, w]
    lowres = normalize_minmax(cam)                  min/max over the low-res map
    v      = clip(upsample(lowres, (H, W)), 0, 1)   bilinear, align_corners=False (cv2 INTER_LINEAR)
    heat   = lut[rint(255 * v)]                     256-entry BGR colour map (JET by default)
    out    = rint((1 - alpha) * frame + alpha * heat), saturated to uint8

Because bilinear interpolation is a convex combination, normalising the low-res map
and then upsampling equals upsampling and then normalising with the low-res min/max.

``window`` (x0, y0, x1, y1 in feature cells) restricts all of it to the part of the map
that covers the frame: :func:`feature_window` gives the cells
:func:`streamcam.processor.preprocess.crop_to_frame` keeps (a letterboxed input's map
without its padding), so the blend shows the same map the CPU path publishes.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..processor.cam import class_activation_map, normalize_minmax, upsample
from ..processor.model_meta import ModelMetadata
from ..processor.preprocess import Geometry
from ..publisher.annotate import colormap_lut


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


def feature_window(geom: Geometry, meta: ModelMetadata, fh: int, fw: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the cells of an ``fh x fw`` feature map that ``crop_to_frame`` keeps."""
    if geom.pad_x == 0 and geom.pad_y == 0:
        return 0, 0, fw, fh
    sx, sy = fw / meta.input_width, fh / meta.input_height
    x0, y0 = int(round(geom.pad_x * sx)), int(round(geom.pad_y * sy))
    x1 = int(round((meta.input_width - geom.pad_x) * sx))
    y1 = int(round((meta.input_height - geom.pad_y) * sy))
    return x0, y0, min(fw, max(x1, x0 + 1)), min(fh, max(y1, y0 + 1))


def _crop(features: np.ndarray, window: tuple[int, int, int, int] | None) -> np.ndarray:
    if window is None:
        return features
    x0, y0, x1, y1 = window
    fh, fw = features.shape[-2:]
    if not (0 <= x0 < x1 <= fw and 0 <= y0 < y1 <= fh):
        raise ValueError(f"window: expected 0 <= x0 < x1 <= {fw} and 0 <= y0 < y1 <= {fh}, got {window!r}")
    return features[..., y0:y1, x0:x1]


def raw_maps(features: np.ndarray, weights: np.ndarray, classes, window=None) -> np.ndarray:
    """The raw low-res CAM ``[N, S, h, w]`` of the class table over ``window`` (the kernel's ``raw_out``)."""
    features = np.asarray(features, np.float32)
    cam = _crop(class_activation_map(features, weights), window)    # [N, C, h, w]
    table = class_table(classes, features.shape[0], cam.shape[1])   # [N, S]
    return np.take_along_axis(cam, table[:, :, None, None].astype(np.intp), axis=1)


def lowres_normalized(features: np.ndarray, weights: np.ndarray, classes, window=None) -> np.ndarray:
    """The normalised low-res CAM ``[N, S, h, w]`` for the class table (phase 1 of the kernel)."""
    return normalize_minmax(raw_maps(features, weights, classes, window))


def colormap_index(lowres: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(v, index)``: the upsampled, clipped map ``[..., H, W]`` and its LUT index ``rint(255 v)``."""
    v = np.clip(upsample(lowres, size), 0.0, 1.0)
    return v, np.rint(v * np.float32(255.0)).astype(np.intp)


def blend_reference(frame: np.ndarray, lowres: np.ndarray, alpha: float = 0.4,
                    lut: np.ndarray | None = None) -> np.ndarray:
    """Phase 2 of the kernel for one frame and one normalised map: uint8 ``[H, W, 3]`` BGR."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected 0 <= alpha <= 1, got {alpha}")
    bgr = frames_bgr(np.asarray(frame)[None])[0]
    lut = colormap_lut() if lut is None else np.asarray(lut, np.uint8).reshape(256, 3)
    a = np.float32(alpha)
    base = (np.float32(1.0) - a) * bgr.astype(np.float32)
    _, index = colormap_index(lowres, bgr.shape[:2])
    return np.clip(np.rint(base + a * lut[index].astype(np.float32)), 0, 255).astype(np.uint8)


def fused_cam_reference(features: np.ndarray, weights: np.ndarray, classes, frames: np.ndarray,
                        alpha: float = 0.4, lut: np.ndarray | None = None,
                        window: tuple[int, int, int, int] | None = None, raw: bool = False):
    """``(blended uint8 [N, S, H, W, 3], lowres float32 [N, S, h, w])`` — see the module docstring;
    with ``raw=True`` also the raw window maps ``[N, S, h, w]`` (as :class:`.fused_cam.FusedCam`)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected 0 <= alpha <= 1, got {alpha}")
    bgr = frames_bgr(frames)
    features = np.asarray(features, np.float32)
    if bgr.shape[0] != features.shape[0]:
        raise ValueError(f"frames: expected {features.shape[0]} frames (one per feature map), got {bgr.shape[0]}")
    maps = raw_maps(features, weights, classes, window)
    lowres = normalize_minmax(maps)
    n, s = lowres.shape[:2]
    height, width = bgr.shape[1:3]
    out = np.empty((n, s, height, width, 3), np.uint8)
    for i in range(n):
        for j in range(s):
            out[i, j] = blend_reference(bgr[i], lowres[i, j], alpha, lut)
    return (out, lowres, maps) if raw else (out, lowres)


__all__ = ["blend_reference", "class_table", "colormap_index", "feature_window", "frames_bgr", "fused_cam_reference",
           "colormap_lut", "lowres_normalized", "raw_maps"]
