"""Faces in a video at a bounded cost per frame: a rolling full scan plus a dense search near known faces.

A full Haar scan of a 640×480 webcam frame costs ~70 ms of one CPU core even vectorised
(:mod:`streamcam.processor.haar_fast`). :class:`FaceTracker` spreads it over ``rolling``
frames and keeps the faces it already has exactly:

* **rolling scan**: the first frame is scanned fully; then frame ``t`` evaluates, at every scale, only the grid rows whose index is
  ``(t - 1) mod rolling``; the raw hits of the last ``rolling`` frames are kept. On a still scene
  their union *is* the full scan's raw hits, so a new face is found at the latest
  ``rolling`` frames after it appears (133 ms at 30 fps for ``rolling = 4``).
* **near known faces**: around each face of the previous frame (``roi_margin`` of its size
  on each side), every grid window of the pyramid scale nearest its size and of the
  ``near_scales`` scales on either side is evaluated on the current frame (a face's size
  changes little from one frame to the next). Stale rolling hits there are dropped: the fresh search is
  what says where that face is now (or that it has gone).
* each pyramid level is resized once per frame, shared by the rolling scan and the searches.
* the hits are grouped like ``detectMultiScale`` (:func:`~streamcam.processor.haar.group_rectangles`).

``update(gray) -> [n, 4] (x, y, w, h)``: pure numpy/OpenCV, synchronous; one tracker per stream.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from .haar import group_rectangles
from .haar_fast import FastCascade


class FaceTracker:
    """``update(gray) -> [n, 4]`` int ``(x, y, w, h)`` of the faces in this frame of one video stream."""

    def __init__(self, cascade: FastCascade, scale_factor: float = 1.2, min_neighbors: int = 4,
                 min_size: tuple[int, int] = (0, 0), rolling: int = 4, roi_margin: float = 0.5,
                 near_scales: int = 1, max_misses: int = 2) -> None:
        """
        rolling: frames one full scan is spread over (1 = a full scan every frame).
        roi_margin: the search around a known face extends this fraction of its size on each side.
        near_scales: and tries the pyramid scale nearest its size and this many on either side.
        max_misses: a face not found is still searched for in this many following frames.
        """
        if rolling < 1:
            raise ValueError(f"rolling: expected >= 1 frames, got {rolling}")
        if near_scales < 0 or roi_margin < 0.0:
            raise ValueError(f"near_scales >= 0 and roi_margin >= 0 expected, got {near_scales}, {roi_margin}")
        self.cascade, self.scale_factor, self.min_neighbors, self.min_size = cascade, scale_factor, min_neighbors, min_size
        self.rolling, self.roi_margin, self.near_scales, self.max_misses = rolling, roi_margin, near_scales, max_misses
        self.reset()

    def reset(self) -> None:
        self.frame = 0
        self.shape: tuple[int, ...] | None = None
        self.history: deque[np.ndarray] = deque(maxlen=self.rolling)
        self.tracks: list[tuple[np.ndarray, int]] = []  # (x, y, w, h), frames since last found

    def _roi(self, box: np.ndarray) -> tuple[float, float, float, float]:
        x, y, w, h = (float(v) for v in box)
        mx, my = self.roi_margin * w, self.roi_margin * h
        return x - mx, y - my, x + w + mx, y + h + my

    def update(self, gray: np.ndarray) -> np.ndarray:
        if gray.dtype != np.uint8 or gray.ndim != 2:
            raise ValueError(f"FaceTracker.update: expected a uint8 [H, W] image, got {gray.dtype} {gray.shape}")
        if gray.shape != self.shape:  # a new stream geometry: nothing carried over
            self.reset()
            self.shape = gray.shape
        factors = self.cascade.cascade.scales((gray.shape[1], gray.shape[0]), self.scale_factor, self.min_size, None)
        # The first frame gets a full scan (a stream's first faces at once); then one row phase per frame.
        rows = (0, 1) if self.frame == 0 else ((self.frame - 1) % self.rolling, self.rolling)
        self.frame += 1
        pyramid: dict = {}
        self.history.append(self.cascade.raw_hits(gray, factors, rows=rows, pyramid=pyramid))
        rolled = np.concatenate(list(self.history))
        near = []
        win = float(self.cascade.window[0])
        for box, _ in self.tracks:
            roi = self._roi(box)
            if factors:
                nearest = int(np.argmin([abs(np.log(win * f / float(box[2]))) for f in factors]))
                fs = factors[max(0, nearest - self.near_scales):nearest + self.near_scales + 1]
                near.append(self.cascade.raw_hits(gray, fs, roi=roi, pyramid=pyramid))
            # Old rolling hits inside this search region are superseded by the fresh search.
            cx, cy = rolled[:, 0] + rolled[:, 2] / 2, rolled[:, 1] + rolled[:, 3] / 2
            rolled = rolled[~((cx >= roi[0]) & (cx <= roi[2]) & (cy >= roi[1]) & (cy <= roi[3]))]
        faces = group_rectangles(np.concatenate([rolled, *near]), self.min_neighbors)
        # Keep searching near faces missed this frame (blur, a turned head) for a few frames.
        kept = [(f, 0) for f in faces]
        for box, misses in self.tracks:
            if misses < self.max_misses and not any(_overlaps(box, f) for f in faces):
                kept.append((box, misses + 1))
        self.tracks = kept
        return faces


def _overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the centre of ``(x, y, w, h)`` box ``a`` lies inside box ``b`` or vice versa."""
    def inside(p, q):
        cx, cy = p[0] + p[2] / 2, p[1] + p[3] / 2
        return q[0] <= cx <= q[0] + q[2] and q[1] <= cy <= q[1] + q[3]
    return inside(a, b) or inside(b, a)
