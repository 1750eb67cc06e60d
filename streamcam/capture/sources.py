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

import logging
import os
import time
from typing import TYPE_CHECKING, Callable, Optional, Union

import numpy as np

from ..errors import SourceError
from .frames import (
    IMAGE_SUFFIXES,
    PIXEL_FORMATS,
    THERMAL_SUFFIXES,
    Source,
    SourceFrame,
    to_image,
)
from .opencv_source import OpenCVSource
from .pacing import Pacer
from .reconnect import ReconnectingSource, SourceEvent
from .sequences import ImageFolderSource, ThermalSequenceSource, list_files, to_uint16

if TYPE_CHECKING:
    from ..config import SourceConfig

log = logging.getLogger(__name__)


# --- the synthetic IR scene ---------------------------------------------------------


class SyntheticSource:
    """The embedded synthetic IR scene: GRAY8 frames with ground-truth objects, never ending.

    Frames are a deterministic function of (seed, index). ``raw=True`` also delivers the
    16-bit radiometric frame. The scene is rendered on demand; pace it with :class:`Pacer`.
    """

    def __init__(
        self, width: int = 640, height: int = 480, seed: int = 7, people: int = 4, confusers: int = 3, fps: float = 30.0, raw: bool = False
    ) -> None:
        from ..datasets.synthetic import SyntheticIRScene

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


__all__ = [
    "IMAGE_SUFFIXES", "PIXEL_FORMATS", "THERMAL_SUFFIXES", "ImageFolderSource", "OpenCVSource", "Pacer",
    "ReconnectingSource", "Source", "SourceEvent", "SourceFrame", "SyntheticSource", "ThermalSequenceSource",
    "list_files", "open_source", "to_image", "to_uint16",
]
