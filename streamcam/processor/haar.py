"""Viola–Jones Haar cascades (OpenCV's XML files) evaluated with numpy.

OpenCV 5 no longer has ``cv2.CascadeClassifier`` nor ships the cascades; the files
themselves (e.g. ``haarcascade_frontalface_default.xml``, shipped by the ``fer``
package) still describe a good, fast frontal-face detector. This module runs them
the way OpenCV 4's ``detectMultiScale`` does:

* an image pyramid: for ``factor = 1, s, s², ...`` the image is resized (bilinear) to
  ``round(size / factor)`` and a fixed 24×24 window slides over it with step 2
  (step 1 once ``factor > 2``); found windows map back as ``round(xy * factor)``,
  size ``round(24 * factor)``;
* per window, variance normalisation over the inner ``(1, 1, w-2, h-2)`` rectangle:
  ``nf = sqrt(area * Σx² - (Σx)²)`` (1 when not positive);
* per stage, stumps: ``value = Σ_r weight_r · rectsum_r / nf``; add ``left`` if
  ``value < threshold`` else ``right``; the window survives if the sum reaches the
  stage threshold;
* grouping as ``cv2.groupRectangles(rects, min_neighbors, eps=0.2)``: clusters of
  similar rectangles, averaged; clusters with ``<= min_neighbors`` members dropped;
  small clusters inside a bigger, better-supported one dropped.

All windows of a scale are evaluated at once per stage (with compaction of the
survivors), in float64. This is the slow, obvious **reference**; face mode runs
:class:`~streamcam.processor.haar_fast.FastCascade` (same windows, tested on real photographs). OpenCV's shortcut of skipping the next x after a first-stage
rejection is not reproduced, so raw hit counts can differ slightly from OpenCV's.
Stump (depth-1) cascades with upright features only.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..errors import ModelError


@dataclass(frozen=True)
class Stage:
    """One boosted stage of ``S`` stumps; features have up to 3 rectangles (absent ones weigh 0)."""

    threshold: float
    rects: np.ndarray
    """``[S, 3, 4]`` int ``(x, y, w, h)`` in the base window."""
    weights: np.ndarray
    """``[S, 3]`` rectangle weights."""
    stump_thresholds: np.ndarray
    left: np.ndarray
    right: np.ndarray


@dataclass(frozen=True)
class HaarCascade:
    window: tuple[int, int]
    """Base window ``(width, height)``, 24×24 for the frontal-face cascades."""
    stages: tuple[Stage, ...]

    @classmethod
    def from_xml(cls, path: str | Path) -> "HaarCascade":
        """Read an OpenCV cascade XML, old (``opencv-haar-classifier``) or new (``opencv-cascade-classifier``) format."""
        try:
            root = ET.parse(str(path)).getroot()
        except (OSError, ET.ParseError) as exc:
            raise ModelError(f"cannot read Haar cascade {path}: {exc}") from exc
        node = root[0] if len(root) else None
        if node is None:
            raise ModelError(f"{path}: empty cascade file")
        kind = node.get("type_id")
        if kind == "opencv-haar-classifier":
            return cls._from_old(node, path)
        if kind == "opencv-cascade-classifier":
            return cls._from_new(node, path)
        raise ModelError(f"{path}: expected an OpenCV Haar cascade, got type_id {kind!r}")

    @staticmethod
    def _stage(threshold: float, feats: list[list[tuple[float, ...]]], thr, left, right) -> Stage:
        rects = np.zeros((len(feats), 3, 4), np.int64)
        weights = np.zeros((len(feats), 3), np.float64)
        for i, rs in enumerate(feats):
            for j, r in enumerate(rs[:3]):
                rects[i, j] = [int(v) for v in r[:4]]
                weights[i, j] = r[4]
        return Stage(float(threshold), rects, weights, np.asarray(thr, np.float64),
                     np.asarray(left, np.float64), np.asarray(right, np.float64))

    @classmethod
    def _from_old(cls, node: ET.Element, path) -> "HaarCascade":
        w, h = (int(v) for v in node.findtext("size").split())
        stages = []
        for st in node.find("stages"):
            feats, thr, left, right = [], [], [], []
            for tree in st.find("trees"):
                if len(tree) != 1:
                    raise ModelError(f"{path}: only stump cascades are supported (a tree has {len(tree)} nodes)")
                n = tree[0]
                if n.findtext("feature/tilted", "0").strip() != "0":
                    raise ModelError(f"{path}: tilted Haar features are not supported")
                feats.append([tuple(float(v) for v in r.text.split()) for r in n.find("feature/rects")])
                thr.append(float(n.findtext("threshold")))
                left.append(float(n.findtext("left_val")))
                right.append(float(n.findtext("right_val")))
            stages.append(cls._stage(float(st.findtext("stage_threshold")), feats, thr, left, right))
        return cls((w, h), tuple(stages))

    @classmethod
    def _from_new(cls, node: ET.Element, path) -> "HaarCascade":
        if node.findtext("featureType", "").strip() != "HAAR":
            raise ModelError(f"{path}: expected a HAAR cascade, got {node.findtext('featureType')!r}")
        w, h = int(node.findtext("width")), int(node.findtext("height"))
        features = []
        for f in node.find("features"):
            if f.findtext("tilted", "0").strip() != "0":
                raise ModelError(f"{path}: tilted Haar features are not supported")
            features.append([tuple(float(v) for v in r.text.split()) for r in f.find("rects")])
        stages = []
        for st in node.find("stages"):
            feats, thr, left, right = [], [], [], []
            for wc in st.find("weakClassifiers"):
                nodes = wc.findtext("internalNodes").split()
                leaves = [float(v) for v in wc.findtext("leafValues").split()]
                if len(nodes) != 4 or len(leaves) != 2:
                    raise ModelError(f"{path}: only stump cascades are supported")
                feats.append(features[int(nodes[2])])
                thr.append(float(nodes[3]))
                left.append(leaves[0])
                right.append(leaves[1])
            stages.append(cls._stage(float(st.findtext("stageThreshold")), feats, thr, left, right))
        return cls((w, h), tuple(stages))

    # --- detection -----------------------------------------------------------------------

    def scales(self, image_size: tuple[int, int], scale_factor: float, min_size: tuple[int, int],
               max_size: tuple[int, int] | None) -> list[float]:
        """OpenCV's pyramid factors for an image ``(width, height)``."""
        if scale_factor <= 1.0:
            raise ValueError(f"scale_factor: expected > 1, got {scale_factor}")
        (iw, ih), (ww, wh) = image_size, self.window
        max_size = max_size or image_size
        out, factor = [], 1.0
        while True:
            win = (round(ww * factor), round(wh * factor))
            scaled = (round(iw / factor), round(ih / factor))
            if scaled[0] - ww <= 0 or scaled[1] - wh <= 0 or win[0] > max_size[0] or win[1] > max_size[1]:
                break
            if win[0] >= min_size[0] and win[1] >= min_size[1]:
                out.append(factor)
            factor *= scale_factor
        return out

    def _corner_offsets(self, stride: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per stage: corner offsets ``[S, 12]`` into a flat integral image of row ``stride``, and their signed weights."""
        cache = self.__dict__.setdefault("_corners_cache", {})
        if stride not in cache:
            out = []
            signs = np.array([1.0, -1.0, -1.0, 1.0])
            for stage in self.stages:
                x, y, w, h = (stage.rects[..., i] for i in range(4))
                offs = np.stack([y * stride + x, y * stride + x + w, (y + h) * stride + x, (y + h) * stride + x + w], -1)
                out.append((offs.reshape(len(offs), 12), (stage.weights[..., None] * signs).reshape(len(offs), 12)))
            cache[stride] = out
        return cache[stride]

    def windows_at(self, gray: np.ndarray, factor: float) -> np.ndarray:
        """Top-left corners ``[n, 2]`` (x, y), in the *scaled* image, of the windows that pass every stage."""
        ih, iw = gray.shape
        sw, sh = round(iw / factor), round(ih / factor)
        img = gray if (sw, sh) == (iw, ih) else cv2.resize(gray, (sw, sh), interpolation=cv2.INTER_LINEAR)
        ww, wh = self.window
        step = 1 if factor > 2 else 2
        ys, xs = np.arange(0, sh - wh, step), np.arange(0, sw - ww, step)
        if ys.size == 0 or xs.size == 0:
            return np.zeros((0, 2), np.int64)
        pix = img.astype(np.float64)
        stride = sw + 1
        ii2 = np.zeros((sh + 1, sw + 1))
        ii2[1:, 1:] = pix.cumsum(0).cumsum(1)
        sq2 = np.zeros((sh + 1, sw + 1))
        sq2[1:, 1:] = (pix * pix).cumsum(0).cumsum(1)
        ny, nx = ys.size, xs.size

        def rect_map(a2: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
            """Sum of rectangle (x, y, w, h) of every window on the grid, by strided views (no gathers)."""
            def view(dy: int, dx: int) -> np.ndarray:
                return a2[dy : dy + step * (ny - 1) + 1 : step, dx : dx + step * (nx - 1) + 1 : step]
            return view(y + h, x + w) - view(y, x + w) - view(y + h, x) + view(y, x)

        area = float((ww - 2) * (wh - 2))
        s = rect_map(ii2, 1, 1, ww - 2, wh - 2)
        nf = area * rect_map(sq2, 1, 1, ww - 2, wh - 2) - s * s
        nf = np.where(nf > 0, np.sqrt(np.maximum(nf, 0)), 1.0)
        # Early stages see most windows: evaluate them densely on the whole grid.
        alive = np.ones((ny, nx), bool)
        k = 0
        while k < len(self.stages) and alive.mean() > 0.15:
            stage = self.stages[k]
            total = np.zeros((ny, nx))
            for i in range(len(stage.left)):
                value = sum(stage.weights[i, j] * rect_map(ii2, *stage.rects[i, j])
                            for j in range(3) if stage.weights[i, j] != 0) / nf
                total += np.where(value < stage.stump_thresholds[i], stage.left[i], stage.right[i])
            alive &= total >= stage.threshold
            k += 1
        iy, ix = np.nonzero(alive)
        base = ys[iy] * stride + xs[ix]
        nf = nf[iy, ix]
        ii = ii2.ravel()
        # Later stages see few windows: gather their corners.
        for stage, (offs, coef) in zip(self.stages[k:], self._corner_offsets(stride)[k:]):
            if base.size == 0:
                break
            # Every feature is a signed sum of 12 integral-image corners: one gather, one weighted sum.
            value = (ii[base[:, None, None] + offs] * coef).sum(-1) / nf[:, None]  # [N, S]
            total = np.where(value < stage.stump_thresholds, stage.left, stage.right).sum(-1)
            keep = total >= stage.threshold
            base, nf = base[keep], nf[keep]
        return np.stack([base % stride, base // stride], axis=1)

    def detect_multi_scale(self, gray: np.ndarray, scale_factor: float = 1.1, min_neighbors: int = 3,
                           min_size: tuple[int, int] = (0, 0), max_size: tuple[int, int] | None = None) -> np.ndarray:
        """Objects in a uint8 grey image: ``[n, 4]`` int ``(x, y, w, h)``, like ``CascadeClassifier.detectMultiScale``."""
        if gray.dtype != np.uint8 or gray.ndim != 2:
            raise ValueError(f"detect_multi_scale: expected a uint8 [H, W] image, got {gray.dtype} {gray.shape}")
        found = []
        for factor in self.scales((gray.shape[1], gray.shape[0]), scale_factor, min_size, max_size):
            xy = self.windows_at(gray, factor)
            if xy.size:
                win = np.array([round(self.window[0] * factor), round(self.window[1] * factor)])
                pos = np.floor(xy * factor + 0.5).astype(np.int64)
                found.append(np.concatenate([pos, np.broadcast_to(win, pos.shape)], axis=1))
        rects = np.concatenate(found) if found else np.zeros((0, 4), np.int64)
        return group_rectangles(rects, min_neighbors)


def group_rectangles(rects: np.ndarray, group_threshold: int, eps: float = 0.2) -> np.ndarray:
    """``cv2.groupRectangles``: cluster similar ``(x, y, w, h)`` rectangles, average, keep well-supported ones."""
    rects = np.asarray(rects, np.int64).reshape(-1, 4)
    if group_threshold <= 0 or len(rects) == 0:
        return rects
    x, y, w, h = rects.T
    delta = eps * (np.minimum(w[:, None], w[None]) + np.minimum(h[:, None], h[None])) * 0.5
    similar = ((np.abs(x[:, None] - x[None]) <= delta) & (np.abs(y[:, None] - y[None]) <= delta)
               & (np.abs((x + w)[:, None] - (x + w)[None]) <= delta)
               & (np.abs((y + h)[:, None] - (y + h)[None]) <= delta))
    parent = list(range(len(rects)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(similar, 1))):
        ri, rj = find(int(i)), find(int(j))
        if ri != rj:
            parent[rj] = ri
    labels = np.array([find(i) for i in range(len(rects))])
    classes = np.unique(labels)
    counts = np.array([(labels == c).sum() for c in classes])
    means = np.array([np.floor(rects[labels == c].sum(0) / n + 0.5) for c, n in zip(classes, counts)]).astype(np.int64)
    out = []
    for i, (r1, n1) in enumerate(zip(means, counts)):
        if n1 <= group_threshold:
            continue
        inside = False
        for j, (r2, n2) in enumerate(zip(means, counts)):
            if j == i or n2 <= group_threshold:
                continue
            dx, dy = int(round(r2[2] * eps)), int(round(r2[3] * eps))
            if (r1[0] >= r2[0] - dx and r1[1] >= r2[1] - dy and r1[0] + r1[2] <= r2[0] + r2[2] + dx
                    and r1[1] + r1[3] <= r2[1] + r2[3] + dy and (n2 > max(3, n1) or n1 < 3)):
                inside = True
                break
        if not inside:
            out.append(r1)
    return np.array(out, np.int64).reshape(-1, 4)


