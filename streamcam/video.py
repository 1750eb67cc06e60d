"""The one video writer: H.264 in MP4 that browsers play (PyAV's libx264), for every MP4 streamcam writes.

`streamcam record`, `streamcam detect --video` and event clips all write through
:class:`H264Writer`. Why H.264 + yuv420p + ``faststart``: it is the one combination every
browser's ``<video>`` plays (OpenCV's ``mp4v`` is MPEG-4 Part 2, which none do), and the
moov atom in front lets a browser start playing before the whole file has arrived.

PyAV is imported when a writer opens, so importing this module (and the recorder) stays light.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from typing import Any, Optional

import numpy as np

from .errors import StreamcamError

log = logging.getLogger(__name__)

CODEC = "libx264"
PIX_FMT = "yuv420p"
"""4:2:0 chroma: the only H.264 format browsers decode (yuv444 plays nowhere)."""


def measured_fps(t_capture_ns: list[int]) -> Optional[float]:
    """Frame rate from capture timestamps (median interval), or None when it is not plausible."""
    if len(t_capture_ns) < 2:
        return None
    dt = np.diff(np.asarray(t_capture_ns, dtype=np.int64)) / 1e9
    dt = dt[dt > 0]
    if dt.size == 0:
        return None
    fps = 1.0 / float(np.median(dt))
    return fps if 0.5 <= fps <= 1000.0 else None


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - the dependency is in pyproject
        raise StreamcamError("writing MP4 needs PyAV: pip install av") from None
    return av


def even_size(width: int, height: int) -> tuple[int, int]:
    """The frame size the encoder takes: yuv420p halves chroma, so both sides must be even."""
    return width - width % 2, height - height % 2


class H264Writer:
    """An H.264 MP4 writer opened at the first frame; BGR frames of another size are resized.

    ``open(fps, width, height)`` then ``write(bgr)`` per frame and ``close()``; ``frames``
    counts what was written. Odd sides are cut to even (``yuv420p``).
    """

    def __init__(self, path: str, crf: int = 23, preset: str = "veryfast", tune: Optional[str] = None) -> None:
        self.path = path
        self.crf = crf
        self.preset = preset
        self.tune = tune
        """x264 tune: ``zerolatency`` drops lookahead and B-frames (finishing is immediate)."""
        self.fps: Optional[float] = None
        self.size: Optional[tuple[int, int]] = None
        self.frames = 0
        self._container: Any = None
        self._stream: Any = None

    def open(self, fps: float, width: int, height: int) -> None:
        av = _av()
        w, h = even_size(int(width), int(height))
        if w < 2 or h < 2:
            raise StreamcamError(f"cannot write a {width}x{height} video to {self.path}: too small")
        if not 0 < fps <= 1000:
            raise StreamcamError(f"cannot write {self.path} at {fps} fps: expected 0 < fps <= 1000")
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        rate = Fraction(fps).limit_denominator(1001)
        try:
            container = av.open(self.path, "w", format="mp4", options={"movflags": "+faststart"})
            stream = container.add_stream(CODEC, rate=rate)
        except Exception as exc:  # translated at the boundary: the path or the codec is the problem
            raise StreamcamError(f"cannot open an H.264 writer ({CODEC}) for {self.path}: {exc}") from exc
        stream.width, stream.height, stream.pix_fmt = w, h, PIX_FMT
        stream.time_base = 1 / rate
        stream.options = {"crf": str(self.crf), "preset": self.preset, **({"tune": self.tune} if self.tune else {})}
        self._container, self._stream = container, stream
        self.fps, self.size = float(fps), (w, h)
        log.info("writing %s: H.264 %dx%d at %.2f fps", self.path, w, h, fps)

    def write(self, bgr: np.ndarray) -> None:
        """Encode one frame (``uint8`` BGR ``[H, W, 3]`` or grey ``[H, W]``)."""
        if self._stream is None or self.size is None:
            raise StreamcamError(f"{self.path}: write() before open()")
        av = _av()
        import cv2

        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        if (bgr.shape[1], bgr.shape[0]) != self.size:
            bgr = cv2.resize(bgr, self.size, interpolation=cv2.INTER_AREA)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")
        frame.pts = self.frames
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file (idempotent)."""
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = self._stream = None

    def __enter__(self) -> "H264Writer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def write_clip(path: str, frames: list[np.ndarray], fps: float) -> int:
    """Write ``frames`` (BGR) as one H.264 MP4; returns the number written."""
    if not frames:
        raise StreamcamError(f"{path}: a clip needs at least one frame")
    h, w = frames[0].shape[:2]
    with H264Writer(path) as writer:
        writer.open(fps, w, h)
        for f in frames:
            writer.write(f)
        return writer.frames


def probe(path: str) -> dict[str, Any]:
    """What a reader sees in an MP4: ``{"codec", "pix_fmt", "width", "height", "frames", "fps"}`` (decodes it all)."""
    av = _av()
    with av.open(path) as container:
        stream = container.streams.video[0]
        n = sum(1 for _ in container.decode(stream))
        return {"codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt,
                "width": stream.codec_context.width, "height": stream.codec_context.height, "frames": n,
                "fps": float(stream.average_rate) if stream.average_rate else None}
