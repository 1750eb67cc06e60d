"""Frame → network input, driven entirely by the model's metadata."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .model_meta import ModelMetadata


@dataclass(frozen=True)
class Geometry:
    """Where the frame landed inside the network input (for letterbox) so maps can be mapped back."""

    frame_width: int
    frame_height: int
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int


def _to_channels(image: np.ndarray, pixel_format: str, meta: ModelMetadata) -> np.ndarray:
    if meta.input_channels == 1:
        return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB) if meta.color_order == "RGB" else image


def preprocess(image: np.ndarray, pixel_format: str, meta: ModelMetadata) -> tuple[np.ndarray, Geometry]:
    """uint8 ``[H, W]`` (GRAY8) or ``[H, W, 3]`` (BGR8) → float32 ``[1, C, h, w]`` normalised input.

    Resize (``stretch``) or aspect-preserving ``letterbox``; scale to [0, 1]; ``(x - mean) / std``;
    HWC → CHW. The input array is never modified (it may be a read-only wire buffer).
    """
    if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"preprocess: expected a non-empty uint8 [H, W] or [H, W, 3] image, got {image.dtype} {image.shape}")
    h, w = image.shape[:2]
    iw, ih = meta.input_width, meta.input_height
    img = _to_channels(image, pixel_format, meta)
    if meta.resize == "stretch":
        resized = cv2.resize(img, (iw, ih), interpolation=cv2.INTER_AREA if w > iw else cv2.INTER_LINEAR)
        geom = Geometry(w, h, iw / w, ih / h, 0, 0)
    else:
        s = min(iw / w, ih / h)
        nw, nh = max(1, round(w * s)), max(1, round(h * s))
        px, py = (iw - nw) // 2, (ih - nh) // 2
        inner = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
        resized = np.zeros((ih, iw) + img.shape[2:], np.uint8)
        resized[py : py + nh, px : px + nw] = inner
        geom = Geometry(w, h, s, s, px, py)
    x = resized.astype(np.float32)
    if x.ndim == 2:
        x = x[None]
    else:
        x = x.transpose(2, 0, 1)
    mean = np.asarray(meta.mean, np.float32).reshape(-1, 1, 1) * 255.0
    std = np.asarray(meta.std, np.float32).reshape(-1, 1, 1) * 255.0
    x = (x - mean) / std
    return np.ascontiguousarray(x[None]), geom


def crop_to_frame(cam: np.ndarray, geom: Geometry, meta: ModelMetadata) -> np.ndarray:
    """The part of a low-res map ``[..., h, w]`` that covers the frame (drops letterbox padding)."""
    if geom.pad_x == 0 and geom.pad_y == 0:
        return cam
    h, w = cam.shape[-2:]
    fx, fy = w / meta.input_width, h / meta.input_height
    x0, y0 = int(round(geom.pad_x * fx)), int(round(geom.pad_y * fy))
    x1 = int(round((meta.input_width - geom.pad_x) * fx))
    y1 = int(round((meta.input_height - geom.pad_y) * fy))
    return cam[..., y0:max(y1, y0 + 1), x0:max(x1, x0 + 1)]
