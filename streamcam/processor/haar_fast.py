"""The fast evaluator of a :class:`~streamcam.processor.haar.HaarCascade` (same detections, ~10× less time).

:meth:`HaarCascade.windows_at` is the slow, obvious reference (float64, the formula of
:mod:`streamcam.processor.haar`). :class:`FastCascade` computes the same decision per window:

* integral images by ``cv2.integral2`` (int32 sums: every Haar feature is an integer
  combination of rectangle sums, its weights being -1, 2 or 3, so feature values are exact);
* the comparison ``value / nf < t`` is done as ``value < t · nf`` (no division per stump);
* the first stages, which see most windows, run densely over the grid of windows, on
  contiguous polyphase copies of the integral image (for step 2 the four ``ii[py::2, px::2]``),
  with preallocated buffers; once few windows survive, the remaining stages run on the
  survivors only: one gather of the stage's distinct corners, one sparse int32 matmul (int64
  where an image's sums could overflow int32), the stump sums as one float32 product;
* a region of interest restricts the grid (tracking searches only near known faces).

Float32 thresholds can flip a window whose feature value lies within ~1e-6 of a stump
threshold; tests check that fast and reference windows agree on real photographs.
"""

from __future__ import annotations

import cv2
import numpy as np

from .haar import HaarCascade, group_rectangles


class FastCascade:
    """``windows_at(gray, factor, step, roi)`` and ``detect_multi_scale(...)`` of a Haar cascade, vectorised."""

    def __init__(self, cascade: HaarCascade, dense_until: float = 0.3, dense_min: int = 1500) -> None:
        """dense_until, dense_min: run stages densely over the grid while more than this fraction, and more
        than this number, of its windows survive (dense costs ~12 numpy calls per stump whatever the size)."""
        self.cascade, self.dense_min = cascade, dense_min
        self.window = cascade.window
        self.dense_until = dense_until
        self._stages = []
        for st in cascade.stages:
            w = st.weights
            if not np.array_equal(w, np.round(w)):
                raise ValueError("FastCascade: expected integer rectangle weights (Haar features), got fractions")
            self._stages.append((
                st.rects.astype(np.int64), w.astype(np.int32), st.stump_thresholds.astype(np.float32),
                st.left.astype(np.float32), st.right.astype(np.float32), np.float32(st.threshold),
            ))
        self._corners: list = []
        self._offsets: dict[int, list[np.ndarray]] = {}
        # Per stage, for the sparse path: float64 stump thresholds [S, 1], left - right, Σ right, threshold.
        self._sparse = [(t.astype(np.float64)[:, None], left - right, right.sum(dtype=np.float32), thr)
                        for _, _, t, left, right, thr in self._stages]
        # Largest Σ |weight| of a feature's corners: int32 sums are exact while it times the largest
        # integral-image value stays below 2^31.
        self._coef_bound = int(max(np.abs(w).sum(1).max() * 4 for _, w, *_ in self._stages))
        # Per stage, per stump: its distinct integral-image corners ``(dy, dx, ±1)``, grouped by |coefficient|.
        self._dense_terms = []
        for rects, w, *_ in self._stages:
            stumps = []
            for r, ws in zip(rects, w):
                coef: dict[tuple[int, int], int] = {}
                for (x, y, rw, rh), wj in zip(r.tolist(), ws.tolist()):
                    for dy, dx, sgn in ((y, x, 1), (y, x + rw, -1), (y + rh, x, -1), (y + rh, x + rw, 1)):
                        if wj:
                            coef[(dy, dx)] = coef.get((dy, dx), 0) + sgn * wj
                groups: dict[int, list] = {}
                for (dy, dx), c in coef.items():
                    if c:
                        groups.setdefault(abs(c), []).append((dy, dx, 1 if c > 0 else -1))
                stumps.append(sorted(groups.items()))
            self._dense_terms.append(stumps)

    def _gather_tables(self, stride: int) -> list[tuple[np.ndarray, object]]:
        """Per stage: the flat offsets ``[U]``, in an integral image of row ``stride``, of the distinct corners
        its stumps read, and the sparse ``[S, U]`` int32 signed weights that turn them into the ``S`` feature
        values (offsets cached per stride)."""
        if stride not in self._offsets:
            self._offsets[stride] = [cy * stride + cx for cy, cx, _ in self._corner_tables()]
        return list(zip(self._offsets[stride], (m for *_, m in self._corner_tables())))

    def _corner_tables(self) -> list[tuple[np.ndarray, np.ndarray, object]]:
        """Per stage: the distinct corners ``(dy, dx)`` (``[U]`` each) and the ``[S, U]`` signed weights."""
        if not self._corners:
            import scipy.sparse as sp

            signs = np.array([1, -1, -1, 1], np.int64)
            for rects, w, *_ in self._stages:
                x, y, rw, rh = (rects[..., i] for i in range(4))
                cy = np.stack([y, y, y + rh, y + rh], -1).reshape(len(rects), 12)
                cx = np.stack([x, x + rw, x, x + rw], -1).reshape(len(rects), 12)
                coef = (w[..., None].astype(np.int64) * signs).reshape(len(rects), 12)
                used = coef != 0
                key = cy[used] * 4096 + cx[used]
                corners, col = np.unique(key, return_inverse=True)
                matrix = sp.csr_matrix((coef[used].astype(np.int32), (np.nonzero(used)[0], col)),
                                       shape=(len(rects), len(corners)))
                self._corners.append((corners // 4096, corners % 4096, matrix))
        return self._corners

    def windows_at(self, gray: np.ndarray, factor: float, step: int | None = None,
                   roi: tuple[float, float, float, float] | None = None, rows: tuple[int, int] = (0, 1),
                   pyramid: dict | None = None) -> np.ndarray:
        """Top-left corners ``[n, 2]`` (x, y), in the scaled image, of the windows that pass every stage.

        step: grid step in scaled pixels (default OpenCV's: 2, or 1 once ``factor > 2``).
        roi: ``(x0, y0, x1, y1)`` in the *unscaled* image: only the grid's windows lying inside it are tried.
        rows: ``(p, k)``: only grid rows whose index is ``p`` modulo ``k`` (a rolling scan covers the
            grid in ``k`` calls, ``p = 0 .. k-1``, whose results together are the whole grid's).
        pyramid: a dict ``factor -> resized image`` for this ``gray``, filled and reused (the calls on
            one frame resize it once per factor).
        """
        ih, iw = gray.shape
        sw, sh = round(iw / factor), round(ih / factor)
        if sw * sh * 255 >= 2**31:
            raise ValueError(f"FastCascade: a {sw}x{sh} image overflows int32 integral images: downscale it first")
        ww, wh = self.window
        step = step or (1 if factor > 2 else 2)
        phase, period = rows
        # The grid: x = 0, step, ... < sw - ww (as the reference's np.arange), y likewise, cut to the ROI.
        gx0, gy0, gx1, gy1 = 0, 0, sw - ww, sh - wh  # exclusive ends
        if roi is not None:
            rx0, ry0, rx1, ry1 = (v / factor for v in roi)
            gx0, gy0 = max(0, -int(-rx0 // step) * step), max(0, -int(-ry0 // step) * step)
            gx1, gy1 = min(gx1, int(np.floor(rx1)) - ww + 1), min(gy1, int(np.floor(ry1)) - wh + 1)
        gy0 += ((phase - gy0 // step) % period) * step  # first row of this phase
        sx, sy = step, step * period
        nx, ny = len(range(gx0, gx1, sx)), len(range(gy0, gy1, sy))
        if nx <= 0 or ny <= 0:
            return np.zeros((0, 2), np.int64)
        img = None if pyramid is None else pyramid.get(factor)
        if img is None:
            img = gray if (sw, sh) == (iw, ih) else cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_LINEAR)
            if pyramid is not None:
                pyramid[factor] = img
        # Integral images of just the part of the scaled image the grid's windows cover (rectangle sums
        # are the same as over the whole image); grid coordinates below are relative to that part.
        ox, oy = gx0, gy0
        crop = img[oy:gy0 + (ny - 1) * sy + wh, ox:gx0 + (nx - 1) * sx + ww]
        ii, sq = cv2.integral2(crop, sdepth=cv2.CV_32S, sqdepth=cv2.CV_64F)
        gx0 = gy0 = 0
        stride = crop.shape[1] + 1
        # Polyphase copies: the grid's view at offset (dy, dx) is a contiguous-row slice of one of them.
        phases: dict = {}

        def view(a: np.ndarray, dy: int, dx: int) -> np.ndarray:
            y, x = gy0 + dy, gx0 + dx
            if sx == sy == 1:
                return a[y:y + ny, x:x + nx]
            key = (id(a), y % sy, x % sx)
            if key not in phases:
                phases[key] = np.ascontiguousarray(a[y % sy::sy, x % sx::sx])
            return phases[key][y // sy:y // sy + ny, x // sx:x // sx + nx]

        def rect(a, x, y, w, h):
            return view(a, y + h, x + w) - view(a, y, x + w) - view(a, y + h, x) + view(a, y, x)

        area = float((ww - 2) * (wh - 2))
        s = rect(ii, 1, 1, ww - 2, wh - 2).astype(np.float64)
        nf = area * rect(sq, 1, 1, ww - 2, wh - 2) - s * s
        nf = np.where(nf > 0, np.sqrt(np.maximum(nf, 0.0)), 1.0)
        inv_nf = (1.0 / nf).astype(np.float32)
        # Dense stages: every window of the grid, buffers reused across stumps.
        alive = np.ones((ny, nx), bool)
        scaled = np.empty((ny, nx), np.float32)
        value, part = np.empty((ny, nx), np.int32), np.empty((ny, nx), np.int32)
        k, n_alive = 0, alive.size
        while k < len(self._stages) and n_alive > self.dense_until * alive.size and n_alive > self.dense_min:
            _, _, sthr, left, right, stage_thr = self._stages[k]
            below = np.empty((len(left), ny * nx), np.float32)  # [S, windows]: 1 where value / nf < t
            for i, groups in enumerate(self._dense_terms[k]):
                for g, (mult, corners) in enumerate(groups):
                    acc = value if g == 0 else part
                    (dy, dx, sign), rest = corners[0], corners[1:]
                    if sign > 0:
                        np.copyto(acc, view(ii, dy, dx))
                    else:
                        np.negative(view(ii, dy, dx), out=acc)
                    for dy, dx, sign in rest:
                        (np.add if sign > 0 else np.subtract)(acc, view(ii, dy, dx), out=acc)
                    if mult != 1:
                        acc *= mult
                    if g:
                        value += part
                np.copyto(scaled, value, casting="unsafe")  # exact: |value| < 2^24
                scaled *= inv_nf
                np.less(scaled.ravel(), sthr[i], out=below[i], casting="unsafe")
            total = (left - right) @ below + right.sum(dtype=np.float32)
            alive &= (total >= stage_thr).reshape(ny, nx)
            n_alive = int(np.count_nonzero(alive))
            k += 1
        iy, ix = np.nonzero(alive)
        base = (gy0 + iy * sy) * stride + gx0 + ix * sx
        nf_alive = nf[iy, ix]
        flat = ii.ravel()
        if int(ii[-1, -1]) * self._coef_bound >= 2**31:  # int32 partial sums could overflow: int64
            flat = flat.astype(np.int64)
        # Sparse stages: the survivors only; each stage gathers its distinct corners once (int, exact).
        for (thr64, dl, rs, stage_thr), (offs, matrix) in zip(self._sparse[k:], self._gather_tables(stride)[k:]):
            if base.size == 0:
                break
            values = matrix @ flat.take(offs[:, None] + base[None, :])  # [S, N]
            keep = dl @ (values < thr64 * nf_alive).astype(np.float32) + rs >= stage_thr
            base, nf_alive = base[keep], nf_alive[keep]
        return np.stack([base % stride + ox, base // stride + oy], axis=1).astype(np.int64)

    def raw_hits(self, gray: np.ndarray, factors, step: int | None = None,
                 roi: tuple[float, float, float, float] | None = None, rows: tuple[int, int] = (0, 1),
                 pyramid: dict | None = None) -> np.ndarray:
        """Every window that passes, as ``[n, 4]`` ``(x, y, w, h)`` in image pixels (before grouping);
        ``step``, ``roi``, ``rows``, ``pyramid`` as in :meth:`windows_at`."""
        found = []
        for factor in factors:
            xy = self.windows_at(gray, factor, step, roi, rows, pyramid)
            if xy.size:
                win = np.array([round(self.window[0] * factor), round(self.window[1] * factor)])
                pos = np.floor(xy * factor + 0.5).astype(np.int64)
                found.append(np.concatenate([pos, np.broadcast_to(win, pos.shape)], axis=1))
        return np.concatenate(found) if found else np.zeros((0, 4), np.int64)

    def detect_multi_scale(self, gray: np.ndarray, scale_factor: float = 1.1, min_neighbors: int = 3,
                           min_size: tuple[int, int] = (0, 0), max_size: tuple[int, int] | None = None,
                           step: int | None = None) -> np.ndarray:
        """:meth:`HaarCascade.detect_multi_scale`, fast; ``step`` overrides OpenCV's grid step."""
        if gray.dtype != np.uint8 or gray.ndim != 2:
            raise ValueError(f"detect_multi_scale: expected a uint8 [H, W] image, got {gray.dtype} {gray.shape}")
        factors = self.cascade.scales((gray.shape[1], gray.shape[0]), scale_factor, min_size, max_size)
        return group_rectangles(self.raw_hits(gray, factors, step), min_neighbors)
