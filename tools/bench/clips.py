"""Recorded camera footage for the live benches: frames written once as a Motion-JPEG file, which the
pipeline then plays as a camera (``source.kind: file``), paying a JPEG decode per frame as an MJPG
camera does."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np


def write_mjpg(path: Path, frames: Iterable[np.ndarray], fps: float) -> Path:
    """``frames`` (all one size; grey ``[H, W]`` or BGR ``[H, W, 3]``) as an MJPG AVI at ``fps``."""
    import cv2

    out = None
    try:
        for image in frames:
            if out is None:
                h, w = image.shape[:2]
                out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), float(fps), (w, h),
                                      isColor=image.ndim == 3)
                if not out.isOpened():
                    raise RuntimeError(f"OpenCV cannot write MJPG to {path}")
            out.write(image)
    finally:
        if out is not None:
            out.release()
    if out is None:
        raise ValueError(f"write_mjpg: no frames for {path}")
    return path
