"""Frames by index: random access into a video file, an image folder or a thermal sequence.

The capture sources (:mod:`.sources`) deliver frames in order, for a live pipeline. Labelling
and training need frame *i* of a recording instead: :class:`IndexedFrames` opens the same
recordings and returns frame ``i`` as it is stored (uint8 BGR/grey, or uint16 thermal counts),
and :meth:`IndexedFrames.display` gives an 8-bit picture of it (stateless percentile AGC for
16-bit frames, as :func:`~streamcam.agc.agc_frame` maps one thermal frame).

* a **video file**: ``cv2.VideoCapture``; reading on from the last frame read is sequential, any
  other index seeks (``CAP_PROP_POS_FRAMES``, as :func:`streamcam.training.data.load_labelled_video`
  does); the frame count is checked by reading the last frame, and counted when that fails;
* an **image folder** (or glob): one frame per image, in natural order;
* a **thermal sequence**: ``.npy`` frames or ``[T, H, W]`` stacks and (multi-page) 16-bit TIFFs,
  a folder of them or a glob, in natural order.

Decoded frames are kept in a small LRU cache (:data:`CACHE_FRAMES`), so scrubbing back and forth
does not decode twice. Thread-safe: one lock around the decoder.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, Optional

import cv2
import numpy as np

from ..errors import SourceError
from .frames import IMAGE_SUFFIXES, THERMAL_SUFFIXES, is_grey
from .sequences import list_files, to_uint16

CACHE_FRAMES = 32
"""Decoded frames kept (an HD frame is 6 MB: 32 of them ~200 MB at most)."""


def recording_kind(path: str) -> str:
    """``"thermal"`` (a .npy/TIFF sequence: a file, a glob, or a folder holding any), ``"images"`` (another
    folder) or ``"video"``; :class:`SourceError` for a path that does not exist."""
    if os.path.isdir(path):
        names = os.listdir(path)
        return "thermal" if any(n.lower().endswith(THERMAL_SUFFIXES) for n in names) else "images"
    if path.lower().endswith(THERMAL_SUFFIXES) or any(ch in path for ch in "*?["):
        return "thermal"
    if not os.path.isfile(path):
        raise SourceError(f"{path}: does not exist (expected a video file, an image folder or a thermal sequence)")
    return "video"


class IndexedFrames:
    """Frame ``i`` of a recording (video file, image folder, thermal sequence); see the module doc."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        self.kind = recording_kind(self.path)
        self.fps: Optional[float] = None
        self._lock = threading.Lock()
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cap: Any = None
        self._next = 0  # the index the open VideoCapture reads next
        self._items: list[tuple[str, int]] = []  # (file, page or stack index) per frame
        if self.kind == "video":
            self.count = self._open_video()
        else:
            self._items = self._list_items()
            self.count = len(self._items)
        first = self.frame(0)
        self.height, self.width = int(first.shape[0]), int(first.shape[1])

    def __repr__(self) -> str:
        return f"IndexedFrames({self.path!r}, {self.kind}, {self.count} frames)"

    def __len__(self) -> int:
        return self.count

    # --- opening ---------------------------------------------------------------------
    def _open_video(self) -> int:
        cap = cv2.VideoCapture(self.path)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self.path}: cannot open the video (no OpenCV backend could read it)")
        self._cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else None
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        if n > 0 and self._read_video(n - 1) is not None:
            return n
        # The container's count is missing or wrong: count by decoding (exact, slower).
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        n = 0
        while cap.grab():
            n += 1
        cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
        self._next = 0
        if n == 0:
            raise SourceError(f"{self.path}: the video has no frames OpenCV can decode")
        return n

    def _list_items(self) -> list[tuple[str, int]]:
        if self.kind == "images":
            files = list_files(self.path, IMAGE_SUFFIXES)
            if not files:
                raise SourceError(f"{self.path}: no image files ({', '.join(IMAGE_SUFFIXES)})")
            return [(f, 0) for f in files]
        files = list_files(self.path, THERMAL_SUFFIXES)
        if not files:
            raise SourceError(f"{self.path}: no .npy/.tif/.tiff thermal frames")
        items: list[tuple[str, int]] = []
        for f in files:
            if f.lower().endswith(".npy"):
                try:
                    shape = np.load(f, mmap_mode="r", allow_pickle=False).shape
                except (OSError, ValueError) as exc:
                    raise SourceError(f"thermal: cannot load {f}: {exc}") from None
                if len(shape) not in (2, 3):
                    raise SourceError(f"thermal: {f}: expected [H, W] or [T, H, W], got shape {list(shape)}")
                items += [(f, t) for t in range(shape[0] if len(shape) == 3 else 1)]
            else:
                pages = cv2.imcount(f, cv2.IMREAD_UNCHANGED)
                if pages < 1:
                    raise SourceError(f"thermal: cannot read TIFF {f}")
                items += [(f, p) for p in range(pages)]
        return items

    # --- reading ---------------------------------------------------------------------
    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as stored: uint8 ``[H, W, 3]`` BGR / ``[H, W]`` grey, or uint16 ``[H, W]`` counts."""
        if not isinstance(i, (int, np.integer)) or not 0 <= i < self.count:
            raise IndexError(f"frame index: expected 0 <= i < {self.count}, got {i!r}")
        i = int(i)
        with self._lock:
            hit = self._cache.get(i)
            if hit is not None:
                self._cache.move_to_end(i)
                return hit
            img = self._read_video(i) if self.kind == "video" else self._read_item(i)
            if img is None:
                raise SourceError(f"{self.path}: cannot decode frame {i} of {self.count}")
            size = getattr(self, "width", None), getattr(self, "height", None)
            if size[0] is not None and (img.shape[1], img.shape[0]) != size:
                raise SourceError(f"{self.path}: frame {i} is {img.shape[1]}x{img.shape[0]}, frame 0 is "
                                  f"{size[0]}x{size[1]}: expected frames of one size")
            self._cache[i] = img
            while len(self._cache) > CACHE_FRAMES:
                self._cache.popitem(last=False)
            return img

    def display(self, i: int) -> np.ndarray:
        """Frame ``i`` as an 8-bit picture: 16-bit counts through the stateless AGC (1-99 % percentiles)."""
        img = self.frame(i)
        if img.dtype == np.uint8:
            return img
        from ..agc import agc_frame

        return agc_frame(img)

    def jpeg(self, i: int, quality: int = 90) -> bytes:
        """:meth:`display` of frame ``i`` encoded as JPEG."""
        ok, buf = cv2.imencode(".jpg", self.display(i), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise SourceError(f"{self.path}: cannot encode frame {i} as JPEG")
        return buf.tobytes()

    def _read_video(self, i: int) -> Optional[np.ndarray]:
        cap = self._cap
        if cap is None:
            raise SourceError(f"{self!r}: read after close")
        if i != self._next:
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
        ok, img = cap.read()
        if not ok or img is None:
            self._next = -1  # position unknown: seek next time
            return None
        self._next = i + 1
        return self._normalise(img, f"frame {i}")

    def _read_item(self, i: int) -> np.ndarray:
        path, sub = self._items[i]
        what = f"{path}" + (f"[{sub}]" if sub else "")
        if path.lower().endswith(".npy"):
            data = np.load(path, mmap_mode="r", allow_pickle=False)
            img = np.array(data[sub] if data.ndim == 3 else data)
            return np.ascontiguousarray(to_uint16(img, f"thermal: {what}"))
        if self.kind == "thermal":
            ok, pages = cv2.imreadmulti(path, start=sub, count=1, flags=cv2.IMREAD_UNCHANGED)
            img = pages[0] if ok and pages else None
        else:
            img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
        if img is None:
            raise SourceError(f"{what}: cannot read the image")
        return self._normalise(img, what)

    @staticmethod
    def _normalise(img: np.ndarray, what: str) -> np.ndarray:
        if img.ndim == 3 and img.shape[2] == 1:
            img = img[:, :, 0]
        if img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        if img.dtype == np.uint16:
            if img.ndim != 2:
                img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            return np.ascontiguousarray(img)
        if img.dtype != np.uint8:
            raise SourceError(f"{what}: expected 8-bit images or 16-bit counts, got dtype {img.dtype}")
        if img.ndim == 3 and is_grey(img):
            img = img[:, :, 0]  # a grey (IR) video decoded to three equal channels
        return np.ascontiguousarray(img)

    def close(self) -> None:
        with self._lock:
            if self._cap is not None:
                self._cap.release()
                self._cap = None
            self._cache.clear()

    def __enter__(self) -> "IndexedFrames":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


__all__ = ["CACHE_FRAMES", "IndexedFrames"]
