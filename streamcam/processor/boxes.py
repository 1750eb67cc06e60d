"""From a Class Activation Map to boxes: one box per connected component of the hot region.

The CAM paper's rule (Zhou et al. 2016, Sec. 3): keep the pixels above ``threshold`` ×
the map's maximum and take the bounding box of the largest connected component. Here:

1. The map is bilinearly upsampled to the frame size (if it is smaller) and negative
   values are clipped to 0 (a raw CAM is negative where the evidence is *against* the
   class; those pixels never belong to an object).
2. **Seeds**: pixels ``>= seed_threshold * max`` (global max; ``seed_threshold``
   defaults to ``threshold``), 8-connected components. Every component gives a box
   (not only the largest): several people give several boxes.
3. **Per-component threshold** (``relative="component"``, the default): from each
   seed's peak, the box is the connected region of pixels ``>= threshold * that
   peak``. A cooler person far away has a weaker CAM peak; relative to *its own*
   peak it gets as tight a box as the hottest person (the global rule would cut
   its flanks, or miss it). Seeds that grow into the same region give one box.
   ``relative="global"`` is the plain paper rule: one box per seed component.
4. Components smaller than ``min_area_frac`` of the frame are dropped (noise); the
   score of a box is the peak CAM value inside it.

The threshold is tuned on a validation scene (a MaxBoxAcc-style sweep, Choe et al.
CVPR 2020) and stored in the model metadata as ``cam_threshold``: CAM blobs are wider
than the objects, so the tuned value is higher than the paper's 0.2.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .cam import upsample

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class BoxRule:
    """From a blob's bounding box to the object's box: the per-model part of the box rule.

    Margins are in feature-map cells (the blur a blob adds is about constant in cells);
    ``top``/``bottom`` may differ because a CAM need not be centred on its object vertically
    (a few-shot person net's evidence sits on the head and shoulders). With ``aspect``
    (object height / width) the width is not read from the blob at all: it is the pulled-in
    height / aspect, centred on the blob. Blobs are least trustworthy across: the receptive
    field blurs a thin figure to about its own width, and two people side by side blur
    into one.
    """

    sides: float = 0.0
    """Cells pulled in from the left and from the right."""
    top: float = 0.0
    """Cells pulled in from the top."""
    bottom: float = 0.0
    """Cells pulled in from the bottom (negative: pushed out)."""
    rel: float = 0.0
    """Also pulled in from each side, as a fraction of the box's own width/height."""
    aspect: float | None = None
    """Object height / width, or None for the blob's own width."""

    def apply(self, box: Box, cell_w: float, cell_h: float) -> Box:
        """The object's box for blob box ``box``; ``cell_w/h``: frame px per feature-map cell."""
        if self.aspect is None and self.top == self.bottom:
            return shrink_box(box, self.sides * cell_w, self.rel, self.top * cell_h)
        x0, y0, x1, y1 = box
        w, h = x1 - x0, y1 - y0
        # pulled in by at most 45 % from each side (a core is kept, as in shrink_box); pushed out freely
        y0 += min(self.top * cell_h + self.rel * h, 0.45 * h)
        y1 -= min(self.bottom * cell_h + self.rel * h, 0.45 * h)
        if self.aspect is not None:
            cx, half = (x0 + x1) / 2, (y1 - y0) / self.aspect / 2
            return (cx - half, y0, cx + half, y1)
        dx = min(self.sides * cell_w + self.rel * w, 0.45 * w)
        return (x0 + dx, y0, x1 - dx, y1)

    @property
    def is_identity(self) -> bool:
        return self.aspect is None and self.sides == self.top == self.bottom == self.rel == 0.0


def _components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return n, labels, stats


Region = tuple[int, int, int, int, int]
"""``(x, y, w, h, area)`` of a connected region, in map pixels."""


def grow_region_reference(cam: np.ndarray, level: float, px: int, py: int) -> Region:
    """The 8-connected region of ``cam >= level`` holding pixel ``(px, py)``: label the whole
    thresholded map and read that pixel's component (the slow obvious way: a full pass per seed)."""
    _, labels, stats = _components(cam >= level)
    x, y, w, h, area = (int(v) for v in stats[int(labels[py, px])])
    return x, y, w, h, area


def grow_region(cam: np.ndarray, level: float, px: int, py: int, scratch: np.ndarray | None = None) -> Region:
    """:func:`grow_region_reference` by a flood fill from the seed over the same binary mask: the same
    region (exactly: the same 0/1 pixels, the same 8-connectivity), at the cost of the region instead
    of a labelling pass over the whole map. ``scratch``: a zeroed uint8 ``[h + 2, w + 2]`` to reuse
    (its inner part is left zeroed; OpenCV keeps the frame around it at 1)."""
    mask = (cam >= level).view(np.uint8)
    h, w = mask.shape
    fill = np.zeros((h + 2, w + 2), np.uint8) if scratch is None else scratch
    # MASK_ONLY: `mask` is not written; pixels equal to the seed's (1) within 0 / 0 join, 8-connected.
    area, _, _, (x, y, rw, rh) = cv2.floodFill(mask, fill, (int(px), int(py)), 1, 0, 0,
                                               8 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
    fill[y:y + rh + 2, x:x + rw + 2] = 0  # only the region's box was touched: clear just that
    return int(x), int(y), int(rw), int(rh), int(area)


def boxes_from_cam(
    cam: np.ndarray,
    frame_size: tuple[int, int],
    threshold: float = 0.2,
    min_area_frac: float = 0.0002,
    relative: str = "component",
    seed_threshold: float | None = None,
    max_boxes: int | None = None,
    max_side: int | None = 320,
    max_seeds: int = 24,
    floor: str = "zero",
    grow: str = "flood",
) -> list[tuple[Box, float]]:
    """Boxes ``[((x0, y0, x1, y1), score), ...]`` in frame pixels (x1/y1 exclusive), best score first.

    ``cam`` is one map ``[h, w]`` (low-res or already at frame size, raw or normalised);
    ``frame_size`` is ``(W, H)`` of the frame the boxes are for. A low-res map is
    upsampled to at most ``max_side`` pixels on its long side rather than to the full
    frame, and the boxes are scaled to the frame: the map carries no detail finer than
    that, and the connected-component passes cost in proportion to the pixels
    (``max_side=None``: work at frame size). Only the ``max_seeds`` hottest seed
    components are grown, which bounds the cost on a noisy map.

    ``floor``: what a threshold's fraction counts from: ``zero`` (the raw map, negatives
    clipped: the CAM paper's rule) or ``ivr`` (the map's 45th percentile, Kim et al. ICCV 2021).

    ``grow``: how a seed's region is found: ``flood`` (:func:`grow_region`, the fast path) or
    ``components`` (:func:`grow_region_reference`, a full labelling pass per seed); same boxes.
    """
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 2:
        raise ValueError(f"boxes_from_cam: expected a 2-D map [h, w], got shape {list(cam.shape)}")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"boxes_from_cam: expected 0 < threshold < 1, got {threshold}")
    if relative not in ("component", "global"):
        raise ValueError(f"boxes_from_cam: expected relative 'component' or 'global', got {relative!r}")
    if grow not in ("flood", "components"):
        raise ValueError(f"boxes_from_cam: expected grow 'flood' or 'components', got {grow!r}")
    fw, fh = int(frame_size[0]), int(frame_size[1])
    ww, wh = fw, fh
    if max_side and max(fw, fh) > max_side and max(cam.shape) < max_side:
        scale = max_side / max(fw, fh)
        ww, wh = max(1, round(fw * scale)), max(1, round(fh * scale))
    if cam.shape != (wh, ww):
        cam = upsample(cam, (wh, ww))
    sx_, sy_ = fw / ww, fh / wh
    if floor == "ivr":  # thresholds count from the map's 45th percentile (IVR), not from zero
        from .cam import IVR_PERCENTILE

        cam = cam - np.float32(np.percentile(cam, IVR_PERCENTILE))
    elif floor != "zero":
        raise ValueError(f"boxes_from_cam: expected floor 'zero' or 'ivr', got {floor!r}")
    cam = np.maximum(cam, 0.0)
    peak = float(cam.max()) if cam.size else 0.0
    if not np.isfinite(peak) or peak <= 0.0:
        return []
    min_area = max(1.0, min_area_frac * ww * wh)
    out: list[tuple[Box, float]] = []
    n, labels, stats = _components(cam >= (threshold if seed_threshold is None else seed_threshold) * peak)
    seen: set[tuple[int, int, int, int]] = set()
    seeds = []
    for c in range(1, n):
        x, y, w, h, area = (int(v) for v in stats[c])
        if area < min_area:
            continue
        sub = np.where(labels[y:y + h, x:x + w] == c, cam[y:y + h, x:x + w], -1.0)
        cpeak = float(sub.max())
        py, px = np.unravel_index(int(np.argmax(sub)), sub.shape)
        seeds.append((cpeak, x, y, w, h, x + int(px), y + int(py)))
    grown: list[tuple[int, int, int, int]] = []
    scratch = np.zeros((wh + 2, ww + 2), np.uint8) if grow == "flood" else None
    for cpeak, x, y, w, h, pkx, pky in sorted(seeds, reverse=True)[:max_seeds]:
        if relative == "global":
            out.append(((x * sx_, y * sy_, (x + w) * sx_, (y + h) * sy_), cpeak))
            continue
        # A seed whose peak lies in a region grown from a hotter seed is part of that
        # object: skip it without another full labelling pass (noisy maps have many).
        if any(gx <= pkx < gx + gw and gy <= pky < gy + gh for gx, gy, gw, gh in grown):
            continue
        # Grow from this component's peak down to threshold x its own peak.
        if scratch is not None:
            sx, sy, sw, sh, sarea = grow_region(cam, threshold * cpeak, pkx, pky, scratch)
        else:
            sx, sy, sw, sh, sarea = grow_region_reference(cam, threshold * cpeak, pkx, pky)
        key = (sx, sy, sw, sh)
        grown.append(key)
        if sarea < min_area or key in seen:
            continue
        seen.add(key)
        out.append(((sx * sx_, sy * sy_, (sx + sw) * sx_, (sy + sh) * sy_), cpeak))
    out.sort(key=lambda bs: -bs[1])
    return out[:max_boxes] if max_boxes is not None else out


def shrink_box(box: Box, px: float, rel: float, py: float | None = None) -> Box:
    """Pull a box in by ``px + rel * side`` on each side (``py`` vertically; never below 10 % of its size).

    CAM boxes come from a map blurred by the network's receptive field and by upsampling,
    so they are wider than the object by roughly a constant margin; the margin is a
    per-model calibration (``ModelMetadata.box_shrink_cells`` / ``box_shrink_rel``).
    """
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    dx = min(px + rel * w, 0.45 * w)
    dy = min((px if py is None else py) + rel * h, 0.45 * h)
    return (x0 + dx, y0 + dy, x1 - dx, y1 - dy)
