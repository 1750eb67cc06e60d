"""The frame a source delivers (validated on construction) and the Source protocol."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional, Protocol, Union

import cv2
import numpy as np

from ..errors import SourceError

log = logging.getLogger(__name__)


PIXEL_FORMATS = {"BGR8": 3, "GRAY8": 1}
"""Pixel formats a source may deliver, with their channel counts."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
THERMAL_SUFFIXES = (".npy", ".tif", ".tiff")
_URL_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


@dataclass(frozen=True)


class SourceFrame:
    """One frame as a source delivers it, validated on construction."""

    image: np.ndarray
    """uint8, BGR ``[H, W, 3]`` or GRAY ``[H, W]``; C-contiguous."""
    pixel_format: str
    """"BGR8" or "GRAY8"; must match the image's channel count."""
    t_capture_ns: int
    """``time.time_ns()`` when the frame was captured or rendered."""
    raw: Optional[np.ndarray] = None
    """uint16 ``[H, W]`` radiometric frame behind the image (thermal sources only)."""
    truth: Optional[tuple] = None
    """Ground-truth objects (the synthetic scene only)."""
    index: int = 0
    """Frame index within the source (keeps counting across loops and reconnects)."""

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray):
            raise SourceError(f"SourceFrame.image: expected a numpy array, got {type(img).__name__}")
        if self.pixel_format not in PIXEL_FORMATS:
            raise SourceError(f"SourceFrame.pixel_format: expected one of {sorted(PIXEL_FORMATS)}, got {self.pixel_format!r}")
        if img.dtype != np.uint8:
            raise SourceError(f"SourceFrame.image: expected dtype uint8, got {img.dtype}")
        want = (2,) if self.pixel_format == "GRAY8" else (3,)
        if img.ndim not in want or (img.ndim == 3 and img.shape[2] != 3):
            expected = "[H, W]" if self.pixel_format == "GRAY8" else "[H, W, 3]"
            raise SourceError(f"SourceFrame.image: expected {expected} for {self.pixel_format}, got shape {list(img.shape)}")
        if img.size == 0:
            raise SourceError(f"SourceFrame.image: expected a non-empty image, got shape {list(img.shape)}")
        if not img.flags.c_contiguous:
            raise SourceError("SourceFrame.image: expected a C-contiguous array, got a strided view")
        if self.raw is not None:
            raw = self.raw
            if not isinstance(raw, np.ndarray) or raw.dtype != np.uint16 or raw.ndim != 2:
                got = f"{raw.dtype} {list(raw.shape)}" if isinstance(raw, np.ndarray) else type(raw).__name__
                raise SourceError(f"SourceFrame.raw: expected uint16 [H, W], got {got}")
            if raw.shape != img.shape[:2]:
                raise SourceError(f"SourceFrame.raw: expected shape {list(img.shape[:2])} (the image's), got {list(raw.shape)}")

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.image.shape[0]), int(self.image.shape[1])


class Source(Protocol):
    """What the capture stage reads frames from."""

    fps: Optional[float]
    """Native frame rate if known (files, sequences, synthetic), else None."""

    def read(self) -> Optional[SourceFrame]:
        """The next frame; None at the end of a finite stream; raises SourceError on failure."""
        ...

    def close(self) -> None:
        ...


def is_grey(image: np.ndarray, tolerance: int = 0) -> bool:
    """Whether ``image`` holds one grey level per pixel: one channel, or three that differ by at most
    ``tolerance`` levels. 0 (exactly equal) where the frame is collapsed to one channel, which must lose
    nothing (a grey JPEG or PNG stored as BGR); a few levels where footage is only classified, since a
    grey video decoded through YUV comes back as three channels within a few levels of each other."""
    if image.ndim == 2 or image.shape[2] == 1:
        return True
    if image.shape[2] < 3:
        return False
    if tolerance <= 0:
        return bool(np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1], image[..., 2]))
    return int(np.abs(image[..., :1].astype(np.int32) - image[..., 1:3]).max()) <= tolerance


def to_image(frame: Any, what: str, agc: Optional[Callable[[np.ndarray], np.ndarray]] = None) -> tuple[np.ndarray, str, Optional[np.ndarray]]:
    """Validate a decoded frame and convert it to ``(image, pixel_format, raw)``.

    Accepts uint8 GRAY ``[H, W]`` / ``[H, W, 1]``, BGR ``[H, W, 3]`` and BGRA
    ``[H, W, 4]`` (converted to BGR), and uint16 ``[H, W]`` (Y16 thermal: kept as
    ``raw`` and mapped to GRAY8 by ``agc``). Anything else raises SourceError naming
    ``what`` and the problem.
    """
    if not isinstance(frame, np.ndarray):
        raise SourceError(f"{what}: expected an image array, got {type(frame).__name__}")
    if frame.size == 0:
        raise SourceError(f"{what}: zero-size frame (shape {list(frame.shape)})")
    if frame.ndim == 3 and frame.shape[2] == 1:
        frame = frame[:, :, 0]
    if frame.ndim not in (2, 3):
        raise SourceError(f"{what}: expected a 2-D or 3-D image, got shape {list(frame.shape)}")
    if frame.dtype == np.uint16:
        if frame.ndim != 2:
            raise SourceError(f"{what}: expected 16-bit frames to have 1 channel, got {frame.shape[2]} channels")
        if agc is None:
            from ..agc import AGC

            agc = AGC()
        raw = np.ascontiguousarray(frame)
        return np.ascontiguousarray(agc(raw)), "GRAY8", raw
    if frame.dtype != np.uint8:
        raise SourceError(f"{what}: expected dtype uint8 (or uint16 for Y16), got {frame.dtype}")
    if frame.ndim == 2:
        return np.ascontiguousarray(frame), "GRAY8", None
    channels = frame.shape[2]
    if channels == 3:
        return np.ascontiguousarray(frame), "BGR8", None
    if channels == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR), "BGR8", None
    raise SourceError(f"{what}: expected 1, 3 or 4 channels, got {channels} channels (shape {list(frame.shape)})")


def _is_url(uri: str) -> bool:
    return bool(_URL_RE.match(uri))


def _camera_index(uri: Union[int, str]) -> Optional[int]:
    if isinstance(uri, int):
        return uri
    return int(uri) if uri.isdigit() else None
