"""Video sources: one interface over cameras, files, URLs, thermal sequences, image folders
and the synthetic IR scene.

Every source delivers :class:`SourceFrame` objects from ``read()``: a validated 8-bit
image (BGR8 or GRAY8), the capture time, and for thermal sources the 16-bit radiometric
frame it came from. ``read()`` returns ``None`` only at the end of a finite stream (a
file or sequence without ``loop``) and raises :class:`~streamcam.errors.SourceError`
when the source fails; :class:`ReconnectingSource` turns failures of live sources
into reconnects with exponential backoff.

* :class:`OpenCVSource`        camera index / device, video file, rtsp/http URL (``cv2.VideoCapture``)
* :class:`ThermalSequenceSource` ``.npy`` frames or stacks and 16-bit TIFFs, AGC to 8 bit
* :class:`ImageFolderSource`   a folder or glob of ordinary images
* :class:`SyntheticSource`     the embedded synthetic IR scene, with ground truth
* :class:`Pacer`               delivers frames on an absolute schedule at a given rate
* :func:`open_source`          builds the right source from a :class:`~streamcam.config.SourceConfig`
"""

from __future__ import annotations

import glob
import logging
import os
import re
import threading
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Protocol, Union

import cv2
import numpy as np

from ..errors import SourceError

if TYPE_CHECKING:
    from ..config import SourceConfig

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


# --- pixel conversion shared by the OpenCV-based sources -----------------------------


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
            from .agc import AGC

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


# --- OpenCV VideoCapture: cameras, files, URLs --------------------------------------


class OpenCVSource:
    """A camera (index or ``/dev/video*``), a video file, or an rtsp/http URL via ``cv2.VideoCapture``.

    Files: at the end ``read()`` returns None, or with ``loop`` the file is reopened and
    reading starts again. Live sources (cameras, URLs): a failed read is a drop and
    raises SourceError (wrap in :class:`ReconnectingSource` to reconnect).
    ``y16`` asks a camera for raw 16-bit frames (FOURCC Y16, ``CAP_PROP_CONVERT_RGB=0``);
    16-bit frames, from any source, are kept as ``raw`` and mapped to GRAY8 by AGC.
    """

    def __init__(
        self,
        uri: Union[int, str],
        width: int = 0,
        height: int = 0,
        loop: bool = False,
        *,
        y16: bool = False,
        open_timeout_s: float = 10.0,
        read_timeout_s: float = 5.0,
    ) -> None:
        self.uri = uri
        self.loop = loop
        self.y16 = y16
        self._width, self._height = width, height
        self._timeouts = (open_timeout_s, read_timeout_s)
        index = _camera_index(uri)
        self.is_file = index is None and not _is_url(str(uri)) and not str(uri).startswith("/dev/")
        self.is_live = not self.is_file
        self._agc: Optional[Callable[[np.ndarray], np.ndarray]] = None
        self._index = 0
        self._frames_this_pass = 0
        self.fps: Optional[float] = None
        self._cap = self._open()

    def __repr__(self) -> str:
        return f"OpenCVSource({self.uri!r})"

    def _open(self) -> Any:
        uri = self.uri
        if self.is_file and not os.path.isfile(str(uri)):
            raise SourceError(f"{self!r}: file not found: {uri}")
        index = _camera_index(uri)
        try:
            if index is not None:
                cap = cv2.VideoCapture(index)
            elif str(uri).startswith("/dev/"):
                cap = cv2.VideoCapture(str(uri), cv2.CAP_V4L2)
            elif _is_url(str(uri)):
                open_s, read_s = self._timeouts
                params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(open_s * 1000), cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(read_s * 1000)]
                cap = cv2.VideoCapture(str(uri), cv2.CAP_FFMPEG, params)
            else:
                cap = cv2.VideoCapture(str(uri))
        except cv2.error as exc:
            raise SourceError(f"{self!r}: cannot open: {exc}") from None
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"{self!r}: cannot open (no backend could read it)")
        if index is not None or str(uri).startswith("/dev/"):
            self._configure_camera(cap)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps <= 1000.0 else None
        self._frames_this_pass = 0
        return cap

    def _configure_camera(self, cap: Any) -> None:
        # Requests only: a device that cannot honour one keeps its own setting.
        if self._width > 0:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self._width)
        if self._height > 0:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self._height)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # newest frame, not a queue of stale ones
        if self.y16:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"Y16 "))
            cap.set(cv2.CAP_PROP_CONVERT_RGB, 0)

    def _unpack_y16(self, frame: np.ndarray) -> np.ndarray:
        # With CONVERT_RGB=0 some backends hand over the raw Y16 buffer as uint8 bytes.
        if frame.dtype == np.uint8 and self._cap is not None:
            w = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH))
            h = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            if w > 0 and h > 0 and frame.size == w * h * 2:
                return np.ascontiguousarray(frame).reshape(-1).view("<u2").reshape(h, w)
        return frame

    def read(self) -> Optional[SourceFrame]:
        if self._cap is None:
            raise SourceError(f"{self!r}: read after close")
        ok, frame = self._read_once()
        if not ok and self.is_file:
            if not self.loop:
                return None
            if self._frames_this_pass == 0:
                raise SourceError(f"{self!r}: file has no readable frames")
            self._release()
            self._cap = self._open()  # reopening is the seek every container supports
            ok, frame = self._read_once()
            if not ok:
                raise SourceError(f"{self!r}: no frame after looping to the start")
        elif not ok:
            raise SourceError(f"{self!r}: no frame (stream dropped or read timed out)")
        t = time.time_ns()
        if self.y16:
            frame = self._unpack_y16(frame)
        if frame is not None and getattr(frame, "dtype", None) == np.uint16 and self._agc is None:
            from .agc import AGC

            self._agc = AGC()
        image, fmt, raw = to_image(frame, f"{self!r} frame {self._index}", self._agc)
        self._frames_this_pass += 1
        out = SourceFrame(image, fmt, t, raw=raw, index=self._index)
        self._index += 1
        return out

    def _read_once(self) -> tuple[bool, Any]:
        try:
            ok, frame = self._cap.read()
        except cv2.error as exc:
            raise SourceError(f"{self!r}: read failed: {exc}") from None
        return bool(ok) and frame is not None, frame

    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            try:
                cap.release()
            except cv2.error as exc:
                log.warning("%r: release failed: %s", self, exc)

    def close(self) -> None:
        self._release()


# --- sequences: thermal arrays, image folders ---------------------------------------


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
    mapped to GRAY8 by a temporally smoothed :class:`~streamcam.capture.agc.AGC`.
    """

    def __init__(self, pattern: str, fps: Optional[float] = 30.0, loop: bool = True) -> None:
        files = list_files(str(pattern), THERMAL_SUFFIXES)
        if not files:
            raise SourceError(f"thermal: no .npy/.tif/.tiff files match {pattern!r}")
        super().__init__(files, fps, loop)
        self.pattern = str(pattern)
        from .agc import AGC

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
            from .agc import AGC

            self._agc = AGC()
        image, fmt, raw = to_image(img, f"images: {path}", self._agc)
        out = SourceFrame(image, fmt, t, raw=raw, index=self._index)
        self._index += 1
        return out


# --- the synthetic IR scene ---------------------------------------------------------


class SyntheticSource:
    """The embedded synthetic IR scene: GRAY8 frames with ground-truth objects, never ending.

    Frames are a deterministic function of (seed, index). ``raw=True`` also delivers the
    16-bit radiometric frame. The scene is rendered on demand; pace it with :class:`Pacer`.
    """

    def __init__(
        self, width: int = 640, height: int = 480, seed: int = 7, people: int = 4, confusers: int = 3, fps: float = 30.0, raw: bool = False
    ) -> None:
        from .synthetic import SyntheticIRScene

        self.scene = SyntheticIRScene(width=width, height=height, seed=seed, people=people, confusers=confusers, fps=fps)
        self.fps: Optional[float] = float(fps)
        self.raw = raw
        self._index = 0
        self._closed = False

    def __repr__(self) -> str:
        return f"SyntheticSource(seed={getattr(self.scene, 'seed', '?')})"

    def read(self) -> Optional[SourceFrame]:
        if self._closed:
            raise SourceError(f"{self!r}: read after close")
        sf = self.scene.frame(self._index)
        t = time.time_ns()
        image = np.ascontiguousarray(sf.image)
        raw = np.ascontiguousarray(sf.raw) if self.raw and sf.raw is not None else None
        out = SourceFrame(image, "GRAY8", t, raw=raw, truth=tuple(sf.objects), index=self._index)
        self._index += 1
        return out

    def close(self) -> None:
        self._closed = True


# --- reconnecting wrapper -----------------------------------------------------------


@dataclass(frozen=True)
class SourceEvent:
    """What :class:`ReconnectingSource` reports to ``on_event`` (and logs)."""

    kind: str
    """"opened", "dropped", "open_failed", "waiting" or "reconnected"."""
    detail: str
    attempt: int = 0
    """Reopen attempts since the last good frame."""
    delay_s: float = 0.0
    """For "waiting": the backoff before the next attempt."""


class ReconnectingSource:
    """Keeps a live source going: on a failure it closes, waits, reopens and carries on.

    ``open_fn`` builds the inner source (and raises SourceError when it cannot). Nothing
    is opened before the first ``read()`` unless ``open_now``. On a SourceError from opening or reading, the
    wait before the next attempt starts at ``initial_s`` and doubles up to ``max_s``; it
    resets after a good frame. It never gives up: only :meth:`close` (from any thread,
    also during a wait, which it interrupts at once) ends it, and ``read()`` then
    returns None. The end of a finite inner stream (None) is passed through. A read
    blocked inside the device returns first (URLs: ``read_timeout_s``); the inner source
    is then closed by the reading thread, never under it.
    ``sleep`` replaces the interruptible wait (tests pass a recorder).
    """

    def __init__(
        self,
        open_fn: Callable[[], Source],
        initial_s: float = 0.5,
        max_s: float = 10.0,
        on_event: Optional[Callable[[SourceEvent], None]] = None,
        sleep: Optional[Callable[[float], None]] = None,
        name: str = "source",
        open_now: bool = False,
    ) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"ReconnectingSource: expected 0 < initial_s <= max_s, got {initial_s}, {max_s}")
        self._open_fn = open_fn
        self.initial_s = float(initial_s)
        self.max_s = float(max_s)
        self._on_event = on_event
        self._sleep = sleep
        self.name = name
        self._inner: Optional[Source] = None
        self._closed = threading.Event()
        self._lock = threading.Lock()  # held by read(); close() never closes the inner source under a reader
        self._delay = self.initial_s
        self._attempt = 0
        self._failed = False
        self._index = 0
        self.reconnects = 0
        """Successful reopens after a failure (the first open is not counted)."""
        self.failures = 0
        """Failed opens and reads."""
        if open_now:
            # One eager, non-fatal attempt (so ``fps`` is known early); failures are retried by read().
            try:
                self._inner = open_fn()
                self._emit("opened", repr(self._inner))
            except SourceError as exc:
                self.failures += 1
                self._failed = True
                self._emit("open_failed", str(exc), level=logging.WARNING)

    def __repr__(self) -> str:
        return f"ReconnectingSource({self.name!r})"

    @property
    def fps(self) -> Optional[float]:  # type: ignore[override]
        inner = self._inner
        return getattr(inner, "fps", None) if inner is not None else None

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def _emit(self, kind: str, detail: str, delay_s: float = 0.0, level: int = logging.INFO) -> None:
        log.log(level, "%s: %s: %s%s", self.name, kind, detail, f" (retry in {delay_s:.2f}s)" if delay_s else "")
        if self._on_event is not None:
            self._on_event(SourceEvent(kind, detail, self._attempt, delay_s))

    def _drop_inner(self) -> None:
        inner, self._inner = self._inner, None
        if inner is not None:
            try:
                inner.close()
            except Exception as exc:  # cleanup of a broken source: log, never mask the original failure
                log.warning("%s: closing the failed source raised %r", self.name, exc)

    def _fail(self, kind: str, exc: SourceError) -> None:
        self.failures += 1
        self._failed = True
        self._drop_inner()
        delay = self._delay
        self._emit(kind, str(exc), delay, logging.WARNING)
        if self._closed.is_set():
            return
        if self._sleep is not None:
            self._sleep(delay)
        else:
            self._closed.wait(delay)
        self._delay = min(self._delay * 2.0, self.max_s)

    def read(self) -> Optional[SourceFrame]:
        with self._lock:
            try:
                while not self._closed.is_set():
                    if self._inner is None:
                        self._attempt += 1
                        try:
                            self._inner = self._open_fn()
                        except SourceError as exc:
                            self._fail("open_failed", exc)
                            continue
                        if self._failed:
                            self.reconnects += 1
                            self._emit("reconnected", f"attempt {self._attempt}, reconnect #{self.reconnects}")
                        else:
                            self._emit("opened", repr(self._inner))
                    try:
                        frame = self._inner.read()
                    except SourceError as exc:
                        self._fail("dropped", exc)
                        continue
                    if frame is None:
                        return None
                    self._delay = self.initial_s
                    self._attempt = 0
                    self._failed = False
                    frame = replace(frame, index=self._index)
                    self._index += 1
                    return frame
                return None
            finally:
                if self._closed.is_set():
                    self._drop_inner()

    def close(self) -> None:
        self._closed.set()
        if self._lock.acquire(blocking=False):
            try:
                self._drop_inner()
            finally:
                self._lock.release()
        # else: the reader holds the lock and closes the inner source on its way out.


# --- pacing -------------------------------------------------------------------------


class Pacer:
    """Releases frames on an absolute schedule of ``fps`` slots per second.

    Slot k is at ``t0 + k / fps`` (t0 = the first :meth:`wait`), so timing errors do not
    accumulate. A caller that is late gets its frame at once and the schedule skips the
    slots it missed (counted in ``skipped``) instead of bursting to catch up.
    """

    def __init__(self, fps: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if not fps or not 0 < fps <= 10000:
            raise ValueError(f"Pacer: expected 0 < fps <= 10000, got {fps}")
        self.fps = float(fps)
        self.period = 1.0 / self.fps
        self._clock = clock
        self._sleep = sleep
        self._next: Optional[float] = None
        self.skipped = 0

    def reset(self) -> None:
        """Start a new schedule at the next wait (e.g. after a reconnect)."""
        self._next = None

    def wait(self, stop: Optional[threading.Event] = None) -> bool:
        """Sleep until the next slot; False if ``stop`` was set while waiting."""
        now = self._clock()
        if self._next is None:
            self._next = now + self.period
            return True
        deadline = self._next
        if now < deadline:
            if stop is not None:
                if stop.wait(deadline - now):
                    return False
            else:
                self._sleep(deadline - now)
            self._next = deadline + self.period
            return True
        missed = int((now - deadline) // self.period)
        self.skipped += missed
        self._next = deadline + (missed + 1) * self.period
        return True


# --- from config --------------------------------------------------------------------


def open_source(cfg: "SourceConfig", base_dir: Optional[str] = None, on_event: Optional[Callable[[SourceEvent], None]] = None) -> Source:
    """The source a :class:`~streamcam.config.SourceConfig` describes.

    Cameras, URLs and video files are wrapped in :class:`ReconnectingSource` (with the
    config's backoff); relative paths are resolved against ``base_dir``.
    """
    kind = cfg.kind
    if kind == "synthetic":
        return SyntheticSource(cfg.width, cfg.height, cfg.seed, cfg.people, cfg.confusers, cfg.fps, raw=cfg.send_raw)
    if cfg.uri is None or str(cfg.uri) == "":
        raise SourceError(f"source: kind {kind!r} needs a uri")
    uri = str(cfg.uri)
    if kind in ("file", "thermal", "images") and base_dir is not None and not os.path.isabs(uri):
        uri = os.path.join(base_dir, uri)
    if kind == "thermal":
        return ThermalSequenceSource(uri, cfg.fps, cfg.loop)
    if kind == "images":
        return ImageFolderSource(uri, cfg.fps, cfg.loop)
    if kind == "camera":
        cam: Union[int, str] = int(uri) if uri.isdigit() else uri
        fn: Callable[[], Source] = lambda: OpenCVSource(cam, cfg.width, cfg.height)  # noqa: E731
    elif kind == "url":
        fn = lambda: OpenCVSource(uri)  # noqa: E731
    elif kind == "file":
        fn = lambda: OpenCVSource(uri, loop=cfg.loop)  # noqa: E731
    else:
        raise SourceError(f"source: unknown kind {kind!r}")
    # A local file opens fast: open it now so its frame rate is known before the first read.
    return ReconnectingSource(
        fn, cfg.reconnect_initial_s, cfg.reconnect_max_s, on_event=on_event, name=f"{kind}:{uri}", open_now=kind == "file"
    )
