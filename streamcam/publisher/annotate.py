"""Drawing the published frame: CAM heatmap blend, boxes with labels and track ids, a status banner.

Everything here is pure and synchronous (no sockets, no threads) and never writes into
its input: the frame may be a read-only, zero-copy view of a ZeroMQ buffer. The one
new array is made by the heatmap blend (or a copy when there is no heatmap); the
drawing steps then write into that array.

The heatmap blend, per output pixel ``(x, y)`` of an ``H x W`` frame::

    v    = clip(bilinear_upsample(cam)(x, y), 0, 1)         # half-pixel centres, edge clamp
    heat = colormap[rint(255 * v)]                          # BGR lookup table of 256 entries
    out  = rint((1 - alpha) * image(x, y) + alpha * heat)   # saturated to uint8

:func:`heatmap_overlay` computes it with OpenCV (about 1-2 ms at 640x480);
:func:`heatmap_overlay_reference` is the same formula written out in numpy.
"""

from __future__ import annotations

import colorsys
from typing import Optional, Sequence

import cv2
import numpy as np

from ..processor.cam import upsample_reference
from ..protocol import Detection

__all__ = [
    "annotate",
    "decode_jpeg",
    "draw_detections",
    "draw_status",
    "encode_jpeg",
    "heatmap_overlay",
    "heatmap_overlay_reference",
    "to_bgr",
    "track_color",
]

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_NO_TRACK_COLOR = (255, 255, 255)


def to_bgr(image: np.ndarray) -> np.ndarray:
    """A *new* uint8 BGR ``[H, W, 3]`` array from a grey ``[H, W]`` / ``[H, W, 1]`` or BGR frame."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError(f"image: expected a uint8 array, got {getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image.copy()
    raise ValueError(f"image: expected shape [H, W] or [H, W, 3], got {list(image.shape)}")


def _check_cam(cam: np.ndarray) -> np.ndarray:
    cam = np.asarray(cam)
    if cam.ndim != 2 or cam.size == 0:
        raise ValueError(f"cam: expected a non-empty [h, w] map, got shape {list(cam.shape)}")
    if cam.dtype != np.float32:
        cam = cam.astype(np.float32)
    return cam


def _check_alpha(alpha: float) -> float:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected 0 <= alpha <= 1, got {alpha}")
    return float(alpha)


def heatmap_overlay(
    image: np.ndarray, cam: np.ndarray, alpha: float = 0.4, colormap: int = cv2.COLORMAP_JET
) -> np.ndarray:
    """Blend the colour-mapped CAM (values in [0, 1], any size) into ``image``; a new BGR uint8 frame.

    The CAM is upsampled with ``cv2.resize(INTER_LINEAR)`` to the frame size. See the
    module docstring for the formula, and :func:`heatmap_overlay_reference`.
    """
    alpha = _check_alpha(alpha)
    cam = _check_cam(cam)
    bgr = image if image.ndim == 3 and image.shape[2] == 3 else to_bgr(image)
    if bgr.dtype != np.uint8:
        raise ValueError(f"image: expected a uint8 array, got {bgr.dtype}")
    h, w = bgr.shape[:2]
    up = cam if cam.shape == (h, w) else cv2.resize(cam, (w, h), interpolation=cv2.INTER_LINEAR)
    # convertScaleAbs: |255 * v| rounded and saturated to uint8 (so v > 1 gives 255, as clipped);
    # only negatives need clipping first, and bilinear interpolation (a convex combination) has none
    # where the map has none: a normalised map skips a full-frame pass.
    if float(cam.min()) < 0.0:
        up = np.maximum(up, 0.0, out=up if up is not cam else None)
    index = cv2.convertScaleAbs(up, alpha=255.0)
    heat = cv2.applyColorMap(index, colormap)
    return cv2.addWeighted(bgr, 1.0 - alpha, heat, alpha, 0.0)


def colormap_lut(colormap: int = cv2.COLORMAP_JET) -> np.ndarray:
    """The colour map as a contiguous uint8 ``[256, 3]`` BGR table (entry i colours grey level i): the
    publisher's overlay, its reference and the GPU path's fused kernel all colour with this one table."""
    ramp = np.arange(256, dtype=np.uint8).reshape(256, 1)
    return np.ascontiguousarray(cv2.applyColorMap(ramp, colormap).reshape(256, 3))


def heatmap_overlay_reference(
    image: np.ndarray, cam: np.ndarray, alpha: float = 0.4, colormap: int = cv2.COLORMAP_JET
) -> np.ndarray:
    """Slow, obvious numpy version of :func:`heatmap_overlay` (float64 throughout), for tests."""
    alpha = _check_alpha(alpha)
    cam = _check_cam(cam)
    bgr = to_bgr(image).astype(np.float64)
    h, w = bgr.shape[:2]
    v = np.clip(upsample_reference(cam, (h, w)), 0.0, 1.0)
    heat = colormap_lut(colormap)[np.rint(255.0 * v).astype(np.int64)].astype(np.float64)
    out = (1.0 - alpha) * bgr + alpha * heat
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def track_color(track_id: Optional[int]) -> tuple[int, int, int]:
    """A distinct, stable BGR colour per track id (golden-ratio hue steps); white without an id."""
    if track_id is None:
        return _NO_TRACK_COLOR
    hue = (track_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 1.0)
    return (int(b * 255), int(g * 255), int(r * 255))


def _writable_bgr(image: np.ndarray, copy: bool) -> np.ndarray:
    if copy or not (image.ndim == 3 and image.shape[2] == 3) or not image.flags.writeable:
        return to_bgr(image)
    return image


def _text_with_background(
    img: np.ndarray, text: str, org: tuple[int, int], color: tuple[int, int, int], scale: float = 0.45
) -> None:
    """Text with a filled box behind it; ``org`` is the box's bottom-left corner."""
    (tw, th), base = cv2.getTextSize(text, _FONT, scale, 1)
    x, y = org
    x = max(0, min(x, img.shape[1] - tw - 2))
    y = max(th + base + 2, y)
    cv2.rectangle(img, (x, y - th - base - 2), (x + tw + 2, y), color, thickness=-1)
    ink = (0, 0, 0) if sum(color) > 384 else (255, 255, 255)
    cv2.putText(img, text, (x + 1, y - base - 1), _FONT, scale, ink, 1, cv2.LINE_AA)


def detection_caption(det: Detection) -> str:
    """``"#<id> label 0.87"`` (the ``#<id>`` only for tracked detections)."""
    tid = f"#{det.track_id} " if det.track_id is not None else ""
    return f"{tid}{det.label} {det.score:.2f}"


def draw_detections(
    image_bgr: np.ndarray, detections: Sequence[Detection], *, thickness: int = 2, copy: bool = True
) -> np.ndarray:
    """Boxes, labels, scores and ``#<track_id>``, one colour per track; returns the drawn frame.

    With ``copy=False`` and a writable BGR input the drawing goes into ``image_bgr`` itself.
    """
    img = _writable_bgr(image_bgr, copy)
    h, w = img.shape[:2]
    for det in detections:
        x0, y0, x1, y1 = (int(round(v)) for v in det.box)
        x0, x1 = max(0, min(x0, w - 1)), max(0, min(x1, w - 1))
        y0, y1 = max(0, min(y0, h - 1)), max(0, min(y1, h - 1))
        color = track_color(det.track_id)
        cv2.rectangle(img, (x0, y0), (x1, y1), color, thickness, cv2.LINE_8)
        _text_with_background(img, detection_caption(det), (x0, y0), color)
    return img


def draw_status(
    image_bgr: np.ndarray,
    stream: str = "",
    fps: Optional[float] = None,
    latency_ms: Optional[float] = None,
    *,
    copy: bool = True,
) -> np.ndarray:
    """A small banner in the top-left corner: ``stream | 29.8 fps | 41 ms``."""
    img = _writable_bgr(image_bgr, copy)
    fields = [stream] if stream else []
    if fps is not None:
        fields.append(f"{fps:.1f} fps")
    if latency_ms is not None:
        fields.append(f"{latency_ms:.0f} ms")
    if not fields:
        return img
    text = " | ".join(fields)
    (tw, th), base = cv2.getTextSize(text, _FONT, 0.45, 1)
    x1, y1 = min(img.shape[1], tw + 8), min(img.shape[0], th + base + 8)
    # Darken the banner area instead of covering it: the frame stays visible underneath.
    img[:y1, :x1] //= 2
    cv2.putText(img, text, (4, th + 4), _FONT, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def annotate(
    image: np.ndarray,
    cam: Optional[np.ndarray],
    detections: Sequence[Detection],
    *,
    heatmap: bool = True,
    alpha: float = 0.4,
    stream: str = "",
    fps: Optional[float] = None,
    latency_ms: Optional[float] = None,
    tracks: Sequence[dict] = (),
) -> np.ndarray:
    """The published frame: heatmap blend (when ``heatmap`` and a CAM are given), trails, boxes, banner.

    ``image`` is uint8 grey or BGR and is never modified; returns a new BGR uint8 array.
    ``tracks``: ``[{"id": int, "trail": [[x, y], ...]}]`` as the processor sends them.
    """
    if heatmap and cam is not None:
        out = heatmap_overlay(image, cam, alpha=alpha)
    else:
        out = to_bgr(image)
    draw_trails(out, tracks)
    draw_detections(out, detections, copy=False)
    draw_status(out, stream, fps, latency_ms, copy=False)
    return out


def draw_trails(image_bgr: np.ndarray, tracks: Sequence[dict]) -> np.ndarray:
    """Draw each track's recent centres as a polyline in its colour (in place)."""
    for t in tracks:
        trail = t.get("trail") or []
        if len(trail) < 2:
            continue
        pts = np.round(np.asarray(trail, np.float32)).astype(np.int32).reshape(-1, 1, 2)
        cv2.polylines(image_bgr, [pts], False, track_color(t.get("id")), 2, cv2.LINE_AA)
    return image_bgr


def encode_jpeg(bgr: np.ndarray, quality: int = 80) -> bytes:
    """JPEG bytes of a uint8 BGR (or grey) frame at ``quality`` 1-100."""
    if not 1 <= int(quality) <= 100:
        raise ValueError(f"quality: expected 1-100, got {quality}")
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cannot encode a {bgr.dtype} {list(bgr.shape)} frame as JPEG")
    return buf.tobytes()


def decode_jpeg(data: bytes) -> Optional[np.ndarray]:
    """A BGR uint8 frame from JPEG bytes, or None when the bytes are not a decodable image."""
    arr = np.frombuffer(data, dtype=np.uint8)
    if arr.size == 0:
        return None
    return cv2.imdecode(arr, cv2.IMREAD_COLOR)
