"""OpenCV VideoCapture sources: camera index or device, video file, rtsp/http URL."""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Callable, Optional, Union

import cv2
import numpy as np

from ..errors import SourceError
from .frames import SourceFrame, _camera_index, _is_url, to_image

log = logging.getLogger(__name__)


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
            from ..agc import AGC

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
