"""The one-euro filter (Casiez, Roussel, Vogel, CHI 2012) for published box coordinates.

A first-order low-pass filter whose cutoff frequency rises with the signal's speed:
slow motion is smoothed hard (no jitter), fast motion passes with little lag. For a
sample ``x_i`` at time ``t_i`` (``dt = t_i - t_{i-1}``)::

    a(fc)   = 1 / (1 + tau / dt),   tau = 1 / (2 pi fc)        smoothing factor for cutoff fc (Hz)
    dx_i    = (x_i - xh_{i-1}) / dt                             raw speed
    dxh_i   = a(d_cutoff) dx_i + (1 - a(d_cutoff)) dxh_{i-1}    smoothed speed
    fc_i    = min_cutoff + beta |dxh_i|                         speed-adaptive cutoff
    xh_i    = a(fc_i) x_i + (1 - a(fc_i)) xh_{i-1}              filtered value

with ``xh_0 = x_0`` and ``dxh_0 = 0``. Units: ``x`` in pixels, ``t`` in seconds,
``min_cutoff`` and ``d_cutoff`` in Hz, ``beta`` in 1/pixel (Hz per px/s of speed).

:func:`one_euro_step` is the vectorised step (any array shape, e.g. ``[N, 4]`` boxes of
``N`` tracks, each track with its own ``dt``); :func:`one_euro_reference` is the slow,
obvious scalar loop the tests compare it with; :class:`OneEuroFilter` keeps the state of
one signal.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def smoothing_factor(dt, cutoff):
    """``a = 1 / (1 + 1 / (2 pi cutoff dt))`` (elementwise)."""
    r = 2.0 * np.pi * np.asarray(cutoff, dtype=np.float64) * np.asarray(dt, dtype=np.float64)
    return r / (r + 1.0)


def one_euro_step(x: np.ndarray, x_prev: np.ndarray, dx_prev: np.ndarray, dt, min_cutoff: float,
                  beta: float, d_cutoff: float) -> tuple[np.ndarray, np.ndarray]:
    """One filter step for arrays of signals: returns ``(x_hat, dx_hat)``.

    ``dt`` is a scalar or broadcasts against ``x`` (e.g. ``[N, 1]`` for ``[N, 4]`` boxes);
    it must be > 0.
    """
    x = np.asarray(x, dtype=np.float64)
    dt = np.asarray(dt, dtype=np.float64)
    a_d = smoothing_factor(dt, d_cutoff)
    dx = (x - x_prev) / dt
    dx_hat = a_d * dx + (1.0 - a_d) * dx_prev
    a = smoothing_factor(dt, min_cutoff + beta * np.abs(dx_hat))
    return a * x + (1.0 - a) * x_prev, dx_hat


def one_euro_reference(xs: Sequence[float], ts: Sequence[float], min_cutoff: float = 1.0, beta: float = 0.0,
                       d_cutoff: float = 1.0) -> list[float]:
    """The paper's filter over one scalar signal, written out plainly (the reference)."""
    out: list[float] = []
    x_hat = dx_hat = t_prev = None
    for x, t in zip(xs, ts):
        if x_hat is None:
            x_hat, dx_hat, t_prev = float(x), 0.0, float(t)
            out.append(x_hat)
            continue
        dt = float(t) - t_prev
        t_prev = float(t)
        a_d = 1.0 / (1.0 + (1.0 / (2 * math.pi * d_cutoff)) / dt)
        dx_hat = a_d * (float(x) - x_hat) / dt + (1.0 - a_d) * dx_hat
        fc = min_cutoff + beta * abs(dx_hat)
        a = 1.0 / (1.0 + (1.0 / (2 * math.pi * fc)) / dt)
        x_hat = a * float(x) + (1.0 - a) * x_hat
        out.append(x_hat)
    return out


class OneEuroFilter:
    """One-euro filter of one (vector) signal: ``f(x, t) -> x_hat``, vectorised over ``x``'s elements.

    A sample with ``t`` not after the previous one is returned as the previous output
    (nothing is learnt from a zero time step).
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or beta < 0:
            raise ValueError(f"OneEuroFilter: expected min_cutoff > 0, d_cutoff > 0, beta >= 0, "
                             f"got {min_cutoff}, {d_cutoff}, {beta}")
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.reset()

    def reset(self) -> None:
        self.x_hat: np.ndarray | None = None
        self.dx_hat: np.ndarray | None = None
        self.t: float | None = None

    def __call__(self, x, t: float) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self.x_hat is None or self.t is None:
            self.x_hat, self.dx_hat, self.t = x.copy(), np.zeros_like(x), float(t)
            return self.x_hat.copy()
        dt = float(t) - self.t
        if dt <= 0:
            return self.x_hat.copy()
        self.x_hat, self.dx_hat = one_euro_step(x, self.x_hat, self.dx_hat, dt, self.min_cutoff, self.beta,
                                                self.d_cutoff)
        self.t = float(t)
        return self.x_hat.copy()
