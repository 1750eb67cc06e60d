"""Automatic gain control (AGC): 16-bit radiometric thermal counts -> 8-bit display/network images.

A thermal core delivers 14/16-bit counts whose useful range is a small, drifting
window of the full scale. AGC maps the window between two percentiles of the frame
(default 1st and 99th) linearly onto 0..255, so a few very hot pixels (lamps,
engines) saturate instead of squashing the whole scene into a few grey levels.

* :func:`agc_frame` is the pure, stateless mapping of one frame (used by the
  synthetic scene, whose frames must be a deterministic function of their index).
* :class:`AGC` is the live-stream version: the clip limits are smoothed over time
  with an exponential factor so that brightness does not pump when a hot object
  enters or leaves the view.

Percentiles are estimated on every second pixel in each direction (a quarter of the
pixels): the estimate is indistinguishable on natural frames and four times cheaper.
"""

from __future__ import annotations

import numpy as np

from .errors import SourceError

_SUBSAMPLE = 2


def _check_raw(raw: object) -> np.ndarray:
    """Validate a raw frame: a non-empty 2-D array of unsigned integers or finite floats."""
    if not isinstance(raw, np.ndarray):
        raise SourceError(f"AGC: expected a numpy array, got {type(raw).__name__}")
    if raw.ndim == 3 and raw.shape[2] == 1:
        raw = raw[:, :, 0]
    if raw.ndim != 2:
        raise SourceError(f"AGC: expected a 2-D [H, W] frame, got shape {list(raw.shape)}")
    if raw.size == 0:
        raise SourceError(f"AGC: expected a non-empty frame, got shape {list(raw.shape)}")
    kind = raw.dtype.kind
    if kind == "f":
        if not np.isfinite(raw).all():
            bad = int(np.count_nonzero(~np.isfinite(raw)))
            raise SourceError(f"AGC: frame contains {bad} NaN/inf value(s)")
    elif kind != "u" or raw.dtype.itemsize > 2:
        raise SourceError(f"AGC: expected dtype uint16 (or uint8 / finite float), got {raw.dtype}")
    return raw


def clip_limits(raw: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.0) -> tuple[float, float]:
    """The (lo, hi) counts at percentiles ``lo_pct`` / ``hi_pct`` of a validated frame."""
    if not 0.0 <= lo_pct < hi_pct <= 100.0:
        raise ValueError(f"AGC: expected 0 <= lo_pct < hi_pct <= 100, got {lo_pct}, {hi_pct}")
    sample = raw[::_SUBSAMPLE, ::_SUBSAMPLE]
    if raw.dtype.kind == "u":
        # Histogram + cumulative sum: O(n) instead of the sort behind np.percentile.
        hist = np.bincount(sample.ravel(), minlength=1 << (8 * raw.dtype.itemsize))
        cdf = np.cumsum(hist)
        n = cdf[-1]
        lo = int(np.searchsorted(cdf, lo_pct / 100.0 * n, side="left"))
        hi = int(np.searchsorted(cdf, hi_pct / 100.0 * n, side="left"))
        return float(lo), float(hi)
    lo, hi = np.percentile(sample, [lo_pct, hi_pct])
    return float(lo), float(hi)


def apply_limits(raw: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map counts linearly so that ``lo`` -> 0 and ``hi`` -> 255 (clipped), as uint8."""
    span = max(float(hi) - float(lo), 1.0)
    if raw.dtype.kind == "u":
        # A look-up table over all possible counts: one gather per pixel.
        levels = np.arange(1 << (8 * raw.dtype.itemsize), dtype=np.float32)
        lut = np.clip((levels - np.float32(lo)) * np.float32(255.0 / span) + np.float32(0.5), 0, 255).astype(np.uint8)
        return lut[raw]
    out = (raw.astype(np.float32) - np.float32(lo)) * np.float32(255.0 / span) + np.float32(0.5)
    return np.clip(out, 0, 255).astype(np.uint8)


def agc_frame(raw: np.ndarray, lo_pct: float = 1.0, hi_pct: float = 99.0) -> np.ndarray:
    """Stateless AGC of one frame: percentile clip limits, linear map to uint8 ``[H, W]``.

    Raises :class:`~streamcam.errors.SourceError` for a non-array, empty, non-2-D,
    wrongly typed (signed, bool, >16-bit) or NaN/inf-containing frame.
    """
    raw = _check_raw(raw)
    lo, hi = clip_limits(raw, lo_pct, hi_pct)
    return apply_limits(raw, lo, hi)


class AGC:
    """Temporally smoothed AGC for a live stream.

    Per frame the percentile limits are measured, then the limits in use move towards
    them by ``smoothing`` (an exponential moving average; 1.0 = no smoothing,
    0.1 = ~10-frame time constant). The first frame (or the first after :meth:`reset`)
    uses its own limits directly.
    """

    def __init__(self, lo_pct: float = 1.0, hi_pct: float = 99.0, smoothing: float = 0.1) -> None:
        if not 0.0 <= lo_pct < hi_pct <= 100.0:
            raise ValueError(f"AGC: expected 0 <= lo_pct < hi_pct <= 100, got {lo_pct}, {hi_pct}")
        if not 0.0 < smoothing <= 1.0:
            raise ValueError(f"AGC: expected 0 < smoothing <= 1, got {smoothing}")
        self.lo_pct = lo_pct
        self.hi_pct = hi_pct
        self.smoothing = smoothing
        self._limits: tuple[float, float] | None = None

    @property
    def limits(self) -> tuple[float, float] | None:
        """The (lo, hi) counts currently mapped to 0 and 255; None before the first frame."""
        return self._limits

    def reset(self) -> None:
        self._limits = None

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        raw = _check_raw(raw)
        lo, hi = clip_limits(raw, self.lo_pct, self.hi_pct)
        if self._limits is None:
            self._limits = (lo, hi)
        else:
            a = self.smoothing
            plo, phi = self._limits
            self._limits = (plo + a * (lo - plo), phi + a * (hi - phi))
        return apply_limits(raw, *self._limits)
