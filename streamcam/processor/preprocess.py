"""Frame → network input, driven entirely by the model's metadata.

:func:`preprocess` is the fast path the stages run; :func:`preprocess_reference` is the slow,
obvious version (convert the channels, resize, ``astype(float32)``, ``(x - mean) / std``, HWC → CHW),
and the tests compare the two for bit equality across models, pixel formats and sizes. The fast
path resizes the uint8 frame as the reference does, then maps each uint8 plane to the float input
through a 256-entry table per channel (``cv2.LUT``: the value ``(v - mean) / std`` computed once
per grey level, in the same float32 operations), written straight into the CHW tensor: the channel
order (BGR → RGB, grey → 3 channels) is the choice of source plane, not a conversion. At 768x576
that is a few ms instead of ~15 (the reference's strided float arithmetic on the transposed view).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

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


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0 \
            or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise ValueError(f"preprocess: expected a non-empty uint8 [H, W] or [H, W, 3] image, got "
                         f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}")


def _resize(img: np.ndarray, meta: ModelMetadata) -> tuple[np.ndarray, Geometry]:
    """The uint8 frame at the network's input size (stretched or letterboxed), and where it landed."""
    h, w = img.shape[:2]
    iw, ih = meta.input_width, meta.input_height
    if meta.resize == "stretch":
        if (w, h) == (iw, ih):
            return img, Geometry(w, h, 1.0, 1.0, 0, 0)
        resized = cv2.resize(img, (iw, ih), interpolation=cv2.INTER_AREA if w > iw else cv2.INTER_LINEAR)
        return resized, Geometry(w, h, iw / w, ih / h, 0, 0)
    s = min(iw / w, ih / h)
    nw, nh = max(1, round(w * s)), max(1, round(h * s))
    px, py = (iw - nw) // 2, (ih - nh) // 2
    inner = img if (nw, nh) == (w, h) else cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    resized = np.zeros((ih, iw) + img.shape[2:], np.uint8)
    resized[py : py + nh, px : px + nw] = inner
    return resized, Geometry(w, h, s, s, px, py)


@lru_cache(maxsize=16)
def _tables(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """``[C, 256]`` float32: entry ``[c, v]`` is ``(v - 255 mean_c) / (255 std_c)`` in the reference's
    float32 operations (so the fast path is bit-equal to it)."""
    m = np.asarray(mean, np.float32).reshape(-1, 1) * 255.0
    sd = np.asarray(std, np.float32).reshape(-1, 1) * 255.0
    t = (np.arange(256, dtype=np.float32)[None] - m) / sd
    t.flags.writeable = False
    return t


def preprocess(image: np.ndarray, pixel_format: str, meta: ModelMetadata) -> tuple[np.ndarray, Geometry]:
    """uint8 ``[H, W]`` (GRAY8) or ``[H, W, 3]`` (BGR8) → float32 ``[1, C, h, w]`` normalised input.

    Resize (``stretch``) or aspect-preserving ``letterbox``; scale to [0, 1]; ``(x - mean) / std``;
    HWC → CHW. The input array is never modified (it may be a read-only wire buffer). The same
    values as :func:`preprocess_reference`, bit for bit (see the module docstring).
    """
    _check_image(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    c = meta.input_channels
    if c == 1 and image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)  # before the resize, as the reference
    resized, geom = _resize(image, meta)
    planes = [resized] if resized.ndim == 2 else cv2.split(resized)  # B, G, R (or the grey plane)
    if c == 1:
        order = [0]
    elif len(planes) == 1:
        order = [0] * c  # grey → every channel the same plane
    else:
        order = [2, 1, 0] if meta.color_order == "RGB" else [0, 1, 2]
    tables = _tables(tuple(meta.mean), tuple(meta.std))  # one per channel (ModelMetadata checks it)
    x = np.empty((1, c, meta.input_height, meta.input_width), np.float32)
    for ch, src in enumerate(order):
        cv2.LUT(planes[src], tables[ch], dst=x[0, ch])  # writes into the tensor's plane, no copy
    return x, geom


def preprocess_reference(image: np.ndarray, pixel_format: str, meta: ModelMetadata) -> tuple[np.ndarray, Geometry]:
    """The slow, obvious :func:`preprocess`: channels, resize, float, ``(x - mean) / std``, CHW."""
    _check_image(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
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
