"""Frame sequences on disk: 16-bit thermal arrays/TIFFs (AGC to 8 bit) and image folders."""

from __future__ import annotations

import glob
import logging
import os
import re
import time
from typing import Callable, Iterator, Optional

import cv2
import numpy as np

from ..errors import SourceError
from .frames import IMAGE_SUFFIXES, THERMAL_SUFFIXES, SourceFrame, to_image

log = logging.getLogger(__name__)


def _natural_key(path: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path)]


def list_files(pattern: str, suffixes: tuple[str, ...]) -> list[str]:
    """Files of a folder (with one of ``suffixes``), or matching a glob, in natural order."""
    if os.path.isdir(pattern):
        paths = [os.path.join(pattern, n) for n in os.listdir(pattern)]
    else:
        paths = glob.glob(pattern)
    files = [p for p in paths if os.path.isfile(p) and p.lower().endswith(suffixes)]
    return sorted(files, key=_natural_key)


def to_uint16(data: np.ndarray, what: str) -> np.ndarray:
    """Radiometric counts as uint16; SourceError for NaN/inf, fractional, negative or >65535 values."""
    if data.dtype == np.uint16:
        return data
    kind = data.dtype.kind
    if kind == "f":
        finite = np.isfinite(data)
        if not finite.all():
            raise SourceError(f"{what}: {int(data.size - np.count_nonzero(finite))} NaN/inf value(s) in a {data.dtype} frame")
        if not np.array_equal(data, np.round(data)):
            raise SourceError(f"{what}: non-integer values in a {data.dtype} frame (expected integer counts)")
    elif kind not in "ui":
        raise SourceError(f"{what}: expected integer counts (uint16), got dtype {data.dtype}")
    lo, hi = (data.min(), data.max()) if data.size else (0, 0)
    if lo < 0 or hi > 65535:
        raise SourceError(f"{what}: values {lo}..{hi} out of the uint16 range 0..65535")
    return data.astype(np.uint16)


class _Sequence:
    """Frames from a list of files, each file giving one or more frames, with looping."""

    def __init__(self, files: list[str], fps: Optional[float], loop: bool) -> None:
        self.files = files
        self.fps = fps
        self.loop = loop
        self._iter: Optional[Iterator[tuple[np.ndarray, str]]] = None
        self._index = 0
        self._closed = False

    def _frames_of(self, path: str) -> Iterator[tuple[np.ndarray, str]]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _all(self) -> Iterator[tuple[np.ndarray, str]]:
        while True:
            produced = 0
            for path in self.files:
                for item in self._frames_of(path):
                    produced += 1
                    yield item
            if not self.loop or produced == 0:
                return

    def _next(self) -> Optional[tuple[np.ndarray, str]]:
        if self._closed:
            raise SourceError(f"{self!r}: read after close")
        if self._iter is None:
            self._iter = self._all()
        return next(self._iter, None)

    def close(self) -> None:
        self._closed = True
        self._iter = None


class ThermalSequenceSource(_Sequence):
    """16-bit thermal frames from ``.npy`` files (``[H, W]`` or stacks ``[T, H, W]``) and 16-bit TIFFs.

    ``pattern`` is a folder (all ``.npy``/``.tif``/``.tiff`` in natural order) or a glob.
    Each frame is checked (finite, integer counts within uint16), kept as ``raw`` and
    mapped to GRAY8 by a temporally smoothed :class:`~streamcam.agc.AGC`.
    """

    def __init__(self, pattern: str, fps: Optional[float] = 30.0, loop: bool = True) -> None:
        files = list_files(str(pattern), THERMAL_SUFFIXES)
        if not files:
            raise SourceError(f"thermal: no .npy/.tif/.tiff files match {pattern!r}")
        super().__init__(files, fps, loop)
        self.pattern = str(pattern)
        from ..agc import AGC

        self._agc = AGC()

    def __repr__(self) -> str:
        return f"ThermalSequenceSource({self.pattern!r})"

    def _frames_of(self, path: str) -> Iterator[tuple[np.ndarray, str]]:
        if path.lower().endswith(".npy"):
            try:
                data = np.load(path, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise SourceError(f"thermal: cannot load {path}: {exc}") from None
            if data.ndim == 2:
                yield np.array(data), path
            elif data.ndim == 3:
                for t in range(data.shape[0]):
                    yield np.array(data[t]), f"{path}[{t}]"  # copies one frame out of the map
            else:
                raise SourceError(f"thermal: {path}: expected [H, W] or [T, H, W], got shape {list(data.shape)}")
            return
        ok, pages = cv2.imreadmulti(path, flags=cv2.IMREAD_UNCHANGED)
        if not ok or not pages:
            raise SourceError(f"thermal: cannot read TIFF {path}")
        for i, page in enumerate(pages):
            yield page, path if len(pages) == 1 else f"{path}[page {i}]"

    def read(self) -> Optional[SourceFrame]:
        item = self._next()
        if item is None:
            return None
        data, what = item
        t = time.time_ns()
        what = f"thermal: {what}"
        if data.ndim == 3 and data.shape[2] == 1:
            data = data[:, :, 0]
        if data.ndim != 2:
            raise SourceError(f"{what}: expected a single-channel [H, W] frame, got shape {list(data.shape)}")
        if data.size == 0:
            raise SourceError(f"{what}: zero-size frame (shape {list(data.shape)})")
        raw = np.ascontiguousarray(to_uint16(data, what))
        image = np.ascontiguousarray(self._agc(raw))
        out = SourceFrame(image, "GRAY8", t, raw=raw, index=self._index)
        self._index += 1
        return out


class ImageFolderSource(_Sequence):
    """Ordinary images from a folder (or a glob), in natural order, delivered at ``fps``.

    8-bit grey images give GRAY8, colour (and BGRA) images BGR8; 16-bit single-channel
    images are treated as thermal (raw kept, AGC to GRAY8).
    """

    def __init__(self, folder: str, fps: Optional[float] = 30.0, loop: bool = True) -> None:
        files = list_files(str(folder), IMAGE_SUFFIXES)
        if not files:
            raise SourceError(f"images: no image files ({', '.join(IMAGE_SUFFIXES)}) match {folder!r}")
        super().__init__(files, fps, loop)
        self.folder = str(folder)
        self._agc: Optional[Callable[[np.ndarray], np.ndarray]] = None

    def __repr__(self) -> str:
        return f"ImageFolderSource({self.folder!r})"

    def _frames_of(self, path: str) -> Iterator[tuple[np.ndarray, str]]:
        img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise SourceError(f"images: cannot read {path} (missing or not an image)")
        yield img, path

    def read(self) -> Optional[SourceFrame]:
        item = self._next()
        if item is None:
            return None
        img, path = item
        t = time.time_ns()
        if img.dtype == np.uint16 and self._agc is None:
            from ..agc import AGC

            self._agc = AGC()
        image, fmt, raw = to_image(img, f"images: {path}", self._agc)
        out = SourceFrame(image, fmt, t, raw=raw, index=self._index)
        self._index += 1
        return out
