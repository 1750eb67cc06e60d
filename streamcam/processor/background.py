"""A fixed camera's background: the scene without its movers, kept per stream as frames arrive.

What it is for: a peak model's map says *where* a person is (a peak on the head or torso), not how
tall they are. At a camera near head height every head is on the same few rows, so the image row
cannot tell a near person's size from a far one's (TUD-Campus: the row's height line leaves 44-49 px
of residual). The top of a person's head row does: on the ground truth height is a line in it
(residual 12-13 px). Against the background a walker is foreground, and the top of the foreground
column above the peak is their head top (:func:`head_top`; within 2 px of the labelled top at the
median on TUD-Campus). :class:`RunningPlate` keeps that background live: the per-pixel median of
recent frames sampled over time (what :func:`empty_plate` is for a recording), grey, refreshed a band
at a time so that no frame waits for a whole median.

Pure numpy and OpenCV; :func:`head_top` has a slow, obvious twin (:func:`head_top_reference`).
"""

from __future__ import annotations

from collections import deque
from typing import Sequence

import numpy as np

from ..errors import ConfigError

THRESHOLD = 25.0
"""Foreground: a pixel differing from the plate by more than this (8-bit levels, the largest channel
difference after a light blur), the usual fixed threshold of background subtraction."""


def foreground_mask(frame: np.ndarray, plate: np.ndarray, threshold: float = THRESHOLD,
                    level: bool = False) -> np.ndarray:
    """Movers against the empty plate: ``uint8`` 0/1, the frame's size. Closed with a tall ellipse
    (1.5 % x 3 % of the frame's height) so a walker whose clothes match the background in places
    stays one blob. ``level``: the frame's median difference from the plate is taken off first, so
    that a thermal core's gain moving the whole picture (up to 9 levels between the LLVIP sample's
    frames of one camera) is not foreground."""
    import cv2

    frame, plate = np.asarray(frame), np.asarray(plate)
    if frame.shape != plate.shape:
        raise ConfigError(f"foreground: frame {frame.shape} and plate {plate.shape} differ (one fixed camera's frames)")
    f = cv2.GaussianBlur(frame.astype(np.float32), (0, 0), 1.5)
    p = cv2.GaussianBlur(plate.astype(np.float32), (0, 0), 1.5)
    d = f - p
    if level:
        d -= float(np.median(d))
    d = np.abs(d)
    if d.ndim == 3:
        d = d.max(axis=2)
    mask = (d > float(threshold)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    h = frame.shape[0]
    kx, ky = (max(3, int(round(h * r)) | 1) for r in (0.015, 0.03))
    return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kx, ky)))


def empty_plate(frames: Sequence[np.ndarray], max_frames: int = 200) -> np.ndarray:
    """The scene without its movers: the per-pixel temporal median of a fixed camera's frames.

    A camera that never shows an empty scene (a busy street) still gives a negative for the
    full-frame recipe: wherever each pixel shows background in more than half of the frames, the
    median is background. Pixels a person covered most of the time keep a ghost, so use frames
    spread over time (at most ``max_frames``, evenly picked)."""
    if len(frames) < 3:
        raise ConfigError(f"empty plate: expected at least 3 frames of a fixed camera, got {len(frames)}")
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ConfigError(f"empty plate: expected frames of one size (a fixed camera), got {sorted(shapes)}")
    idx = np.linspace(0, len(frames) - 1, min(len(frames), int(max_frames))).round().astype(int)
    return np.median(np.stack([frames[i] for i in idx]), axis=0).astype(frames[0].dtype)


FILL = 0.15
"""A row of the column above a peak is the person's while at least this share of it is foreground."""


def head_top(mask: np.ndarray, x: float, y: float, half_width: float, fill: float = FILL) -> float | None:
    """The top of the foreground column ``x +- half_width`` that holds row ``y`` (frame pixels of
    ``mask``), or None when that row is not foreground (the peak is on no mover)."""
    h, w = mask.shape
    x0, x1 = int(max(0, np.floor(x - half_width))), int(min(w, np.ceil(x + half_width)))
    row = int(min(h - 1, max(0, y)))
    if x1 <= x0:
        return None
    col = mask[: row + 1, x0:x1].mean(axis=1) > fill
    if not col[row]:
        return None
    gaps = np.flatnonzero(~col)
    return float(gaps[-1] + 1 if len(gaps) else 0)


def head_top_reference(mask: np.ndarray, x: float, y: float, half_width: float, fill: float = FILL) -> float | None:
    """:func:`head_top` row by row, walking up from ``y`` (tests compare the two)."""
    h, w = mask.shape
    x0, x1 = int(max(0, np.floor(x - half_width))), int(min(w, np.ceil(x + half_width)))
    top = int(min(h - 1, max(0, y)))
    if x1 <= x0 or not mask[top, x0:x1].mean() > fill:
        return None
    while top > 0 and mask[top - 1, x0:x1].mean() > fill:
        top -= 1
    return float(top)


class RunningPlate:
    """The per-pixel median of the last ``samples`` frames taken at least ``interval_s`` apart, grey;
    :meth:`foreground` is a frame's mask against it, None until ``min_samples`` are in (a plate of
    two frames holds its movers).

    A median of 31 full 768x576 frames costs about 0.2 s on this machine's core, too long a stall
    for a live stage: while the window fills the whole plate is refreshed every third sample, then one
    of ``bands`` horizontal bands per sample (a twentieth of the cost each, the plate renewed every
    ``bands`` samples). Full resolution: at half, head tops lost 0.04 of TUD-Campus's localization."""

    def __init__(self, interval_s: float = 0.1, samples: int = 31, min_samples: int = 9, scale: float = 1.0,
                 bands: int = 20) -> None:
        if not 3 <= int(min_samples) <= int(samples):
            raise ConfigError(f"background: expected 3 <= min_samples <= samples, got {min_samples}, {samples}")
        if not 0.0 < scale <= 1.0 or interval_s < 0 or int(bands) < 1:
            raise ConfigError(f"background: expected 0 < scale <= 1, interval_s >= 0 and bands >= 1, got "
                              f"{scale}, {interval_s}, {bands}")
        self.interval_s, self.scale, self.min_samples, self.bands = float(interval_s), float(scale), int(min_samples), int(bands)
        self._frames: deque[np.ndarray] = deque(maxlen=int(samples))
        self._last_t: float | None = None
        self._added = 0
        self.plate: np.ndarray | None = None
        self.frozen = False
        """A given plate (:meth:`given`): :meth:`observe` leaves it as it is."""
        self._seeded = False

    @classmethod
    def given(cls, plate: np.ndarray, frozen: bool = True, **kw) -> "RunningPlate":
        """A plate from ``plate`` (a camera's picture without its movers, any depth): one that never
        learns, or (``frozen`` False) one whose samples replace it once ``min_samples`` are in."""
        out = cls(**kw)
        out.plate = out._small(np.asarray(plate))
        out.frozen, out._seeded = bool(frozen), not frozen
        return out

    @property
    def samples(self) -> int:
        """How many frames the plate's window holds now."""
        return len(self._frames)

    def _small(self, image: np.ndarray) -> np.ndarray:
        import cv2

        g = image if image.ndim == 2 else cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2GRAY)
        if g.dtype != np.uint8:
            from ..agc import agc_frame

            g = agc_frame(g)
        if self.scale < 1.0:
            g = cv2.resize(g, None, fx=self.scale, fy=self.scale, interpolation=cv2.INTER_AREA)
        return g

    def observe(self, image: np.ndarray, t: float) -> None:
        """Take ``image`` (seen at ``t`` seconds) as a sample if ``interval_s`` has passed since the
        last (or the clock went back)."""
        if self.frozen:
            return
        if self._last_t is not None and 0.0 <= t - self._last_t < self.interval_s:
            return
        small = self._small(image)
        if self._frames and self._frames[0].shape != small.shape:
            self._frames.clear()  # the camera changed resolution: start over
            self.plate = None
        self._frames.append(small)
        self._last_t = t
        self._added += 1
        n = len(self._frames)
        if n < self.min_samples:
            return
        if self.plate is None or self._seeded or (n < self._frames.maxlen and self._added % 3 == 0):
            self.plate = _median(self._frames, 0, small.shape[0])
            self._seeded = False
        elif n == self._frames.maxlen:
            k = self._added % self.bands
            h = small.shape[0]
            y0, y1 = k * h // self.bands, (k + 1) * h // self.bands
            self.plate[y0:y1] = _median(self._frames, y0, y1)

    def foreground(self, image: np.ndarray, level: bool = False) -> np.ndarray | None:
        """``image``'s movers, ``uint8`` 0/1 at the image's size, or None while the plate is not ready
        (``level``: :func:`foreground_mask`'s)."""
        import cv2

        if self.plate is None:
            return None
        small = self._small(image)
        if small.shape != self.plate.shape:
            return None
        mask = foreground_mask(small, self.plate, level=level)
        return cv2.resize(mask, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_NEAREST)


def _median(frames, y0: int, y1: int) -> np.ndarray:
    """Rows ``y0:y1`` of the frames' per-pixel median (the lower middle value for an even count)."""
    stack = np.stack([f[y0:y1] for f in frames])
    k = (len(stack) - 1) // 2
    return np.partition(stack, k, axis=0)[k]


__all__ = ["THRESHOLD", "RunningPlate", "empty_plate", "foreground_mask", "head_top", "head_top_reference"]
