"""Heatmap peaks: one candidate detection per local maximum of a CAM, with its own box.

The per-frame rule of :mod:`streamcam.processor.boxes` boxes connected components, so two
people whose CAM blobs touch can give one box. Here every *peak* gets a box:

1. **Basins** (a watershed by steepest ascent on the low-resolution map): every pixel
   follows its highest 8-neighbour uphill until it reaches a local maximum; the pixels
   reaching the same maximum form its basin. Ties are broken by a strict total order
   (value, then position), so plateaus cannot cycle.
2. **Suppression** (non-maximum suppression by merging basins, lowest peak first): a
   basin is merged into its higher neighbour across their highest saddle when its peak is
   below ``min_value``, lies within ``nms_radius`` cells of a higher peak, or rises less
   than ``min_prominence`` x its value above that saddle (a *shoulder*, not a second
   object). The survivors are the peaks, best first, at most ``max_peaks``.
3. **Box per peak**: the CAM paper's rule relative to the peak's own value, restricted to
   its region: the connected component of ``cam >= box_threshold * value`` inside the
   peak's (merged) basin that contains the peak. Its edges are placed with sub-cell
   precision where the bilinearly upsampled map crosses the threshold (linear
   interpolation between cell centres along the row/column maxima), or at the cell
   border where the region meets another peak's basin.

Coordinates: cell ``(i, j)`` of an ``[h, w]`` map has its centre at frame pixel
``((j + 0.5) W / w, (i + 0.5) H / h)`` (the ``align_corners=False`` convention of
:func:`streamcam.processor.cam.upsample`). Peak positions are refined by a parabola fit
through the 3 cells around the maximum on each axis.

"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Peak:
    """A local maximum of the CAM: position and box in frame pixels, value in map units."""

    x: float
    y: float
    value: float
    box: Box

    @property
    def score(self) -> float:
        return self.value


def _basins(cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Steepest-ascent labels ``[h, w]`` (flat index of each pixel's maximum) and the strict rank map."""
    h, w = cam.shape
    flat = cam.ravel()
    rank = np.empty(flat.size, np.int64)
    rank[np.argsort(flat, kind="stable")] = np.arange(flat.size)
    rank2 = rank.reshape(h, w)
    best = ndi.maximum_filter(rank2, size=3, mode="constant", cval=-1)
    # Inverse of rank: the flat index holding each rank value.
    where = np.empty(flat.size, np.int64)
    where[rank] = np.arange(flat.size)
    ptr = where[best.ravel()]
    while True:
        nxt = ptr[ptr]
        if np.array_equal(nxt, ptr):
            break
        ptr = nxt
    return ptr.reshape(h, w), rank2


def _saddles(cam: np.ndarray, lab: np.ndarray, floor: float) -> dict[tuple[int, int], float]:
    """Highest pass ``min(cam[a], cam[b])`` between 8-adjacent basins ``(la < lb)``, passes >= ``floor`` only."""
    pairs = []
    for a, b in (((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
                 ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
                 ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
                 ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1)))):
        la, lb = lab[a].ravel(), lab[b].ravel()
        d = (la != lb) & (np.minimum(cam[a], cam[b]).ravel() >= floor)
        if d.any():
            pairs.append((np.minimum(la[d], lb[d]), np.maximum(la[d], lb[d]),
                          np.minimum(cam[a].ravel()[d], cam[b].ravel()[d])))
    if not pairs:
        return {}
    lo = np.concatenate([p[0] for p in pairs])
    hi = np.concatenate([p[1] for p in pairs])
    s = np.concatenate([p[2] for p in pairs])
    key = lo * lab.size + hi
    order = np.lexsort((s, key))  # by key, then saddle value: the last of each key is its max
    key, s = key[order], s[order]
    last = np.r_[key[1:] != key[:-1], True]
    return {(int(k // lab.size), int(k % lab.size)): float(v) for k, v in zip(key[last], s[last])}


def _edge(profile: np.ndarray, inside: int, outside: int, thr: float) -> float:
    """Sub-cell position (cell units) of the threshold crossing between cell ``inside`` and ``outside``."""
    n = profile.size
    if outside < 0 or outside >= n:
        return inside + (0.5 if outside > inside else -0.5) * 1.0  # border of the map
    vi, vo = profile[inside], profile[outside]
    if not np.isfinite(vo) or vo >= thr or vi <= vo:
        return (inside + outside) / 2.0  # meets another peak's region: the cell border
    return inside + (outside - inside) * (vi - thr) / (vi - vo)


def _subcell(values: np.ndarray, i: int) -> float:
    """Parabola vertex offset in [-0.5, 0.5] through ``values[i-1:i+2]``."""
    if i <= 0 or i >= values.size - 1:
        return 0.0
    a, b, c = values[i - 1], values[i], values[i + 1]
    den = a - 2 * b + c
    return float(np.clip(0.5 * (a - c) / den, -0.5, 0.5)) if den < 0 else 0.0


def find_peaks(cam: np.ndarray, frame_size: tuple[int, int], min_value: float = 0.3, nms_radius: float = 2,
               box_threshold: float = 0.2, max_peaks: int = 32, min_prominence: float = 0.15) -> list[Peak]:
    """Peaks of a (normalised, low-resolution) CAM ``[h, w]``, best first; see the module doc.

    ``frame_size`` is ``(W, H)`` of the frame; ``nms_radius`` is in map cells.
    """
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2 or cam.size == 0:
        raise ValueError(f"find_peaks: expected a 2-D map [h, w], got shape {list(cam.shape)}")
    if not 0.0 < box_threshold < 1.0:
        raise ValueError(f"find_peaks: expected 0 < box_threshold < 1, got {box_threshold}")
    if max_peaks < 1:
        return []
    cam = np.where(np.isfinite(cam), cam, 0.0)
    hi, lo = float(cam.max()), float(cam.min())
    if hi < min_value or hi - lo <= 1e-6 * max(abs(hi), 1.0):
        return []  # nothing hot enough, or a flat map (no maximum is local)
    h, w = cam.shape
    fw, fh = float(frame_size[0]), float(frame_size[1])
    lab, rank = _basins(cam)
    flat = cam.ravel()
    tops = np.unique(lab)
    # Basins too low to touch any box (below the lowest possible box threshold) are left alone.
    floor = box_threshold * min_value
    tops = tops[flat[tops] >= floor]
    order = tops[np.argsort(rank.ravel()[tops])]  # ascending
    adj: dict[int, dict[int, float]] = {int(t): {} for t in order}
    for (a, b), s in _saddles(cam, lab, floor).items():
        if a in adj and b in adj:
            adj[a][b] = max(adj[a].get(b, -np.inf), s)
            adj[b][a] = max(adj[b].get(a, -np.inf), s)
    parent = {int(t): int(t) for t in order}
    rk = rank.ravel()
    ty, tx = np.divmod(order, w)
    r2 = float(nms_radius) ** 2
    for idx, j in enumerate(order):
        j = int(j)
        higher = {k: s for k, s in adj[j].items() if rk[k] > rk[j]}
        vj = float(flat[j])
        if not higher:
            continue
        k = max(higher, key=higher.get)
        near = ((ty[idx + 1:] - ty[idx]) ** 2 + (tx[idx + 1:] - tx[idx]) ** 2 <= r2).any() if r2 > 0 else False
        if vj >= min_value and not near and vj - higher[k] >= min_prominence * vj:
            continue
        parent[j] = k  # merge basin j into k
        for n, s in adj.pop(j).items():
            adj[n].pop(j, None)
            if n != k:
                adj[k][n] = max(adj[k].get(n, -np.inf), s)
                adj[n][k] = adj[k][n]
        adj[k].pop(j, None)

    def root(t: int) -> int:
        while parent[t] != t:
            t = parent[t]
        return t

    kept = sorted((t for t in parent if parent[t] == t and flat[t] >= min_value), key=lambda t: -rk[t])[:max_peaks]
    if not kept:
        return []
    # Relabel pixels with their merged basin's root.
    lut_keys = np.fromiter(parent.keys(), np.int64)
    lut_vals = np.fromiter((root(int(t)) for t in lut_keys), np.int64)
    remap = np.full(flat.size, -1, np.int64)
    remap[lut_keys] = lut_vals
    region = remap[lab]
    sx, sy = fw / w, fh / h
    out: list[Peak] = []
    for t in kept:
        py, px = divmod(int(t), w)
        v = float(flat[t])
        thr = box_threshold * v
        mine = region == t
        comp, _ = ndi.label(mine & (cam >= thr), structure=np.ones((3, 3), bool))
        m = comp == comp[py, px]
        rows, cols = np.nonzero(m.any(axis=1))[0], np.nonzero(m.any(axis=0))[0]
        r0, r1, c0, c1 = int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])
        band = np.where(mine[r0:r1 + 1], cam[r0:r1 + 1], -np.inf)
        colp = band.max(axis=0)
        band = np.where(mine[:, c0:c1 + 1], cam[:, c0:c1 + 1], -np.inf)
        rowp = band.max(axis=1)
        ex0, ex1 = _edge(colp, c0, c0 - 1, thr), _edge(colp, c1, c1 + 1, thr)
        ey0, ey1 = _edge(rowp, r0, r0 - 1, thr), _edge(rowp, r1, r1 + 1, thr)
        box = (float(np.clip((ex0 + 0.5) * sx, 0, fw)), float(np.clip((ey0 + 0.5) * sy, 0, fh)),
               float(np.clip((ex1 + 0.5) * sx, 0, fw)), float(np.clip((ey1 + 0.5) * sy, 0, fh)))
        cx = px + _subcell(cam[py], px)
        cy = py + _subcell(cam[:, px], py)
        out.append(Peak((cx + 0.5) * sx, (cy + 0.5) * sy, v, box))
    return out
