"""Boxes from a CAM's peaks and the camera's geometry: one box per local maximum.

A multiple-instance head (``presence: peak`` models, :mod:`streamcam.training.mil`) lights up
the most telling part of each person (a torso, a pair of legs), not the whole figure, and people
walking in a line merge into one blob. Its map's *peaks* still say where each person is. For a
fixed camera over a ground plane, how tall a person looks depends on where they stand: to first
order linearly on the image row (the horizon at zero height). So each peak above ``level`` (or
above ``level_on_mover`` where a mover's head top vouches for it) gives a box of height
``H * (a + b * y / H)`` at the peak's row ``y``, width ``height / aspect``, its centre
``centre * height`` below the peak and ``centre_x * width`` right of it; boxes overlapping a
stronger one by more than ``nms`` (IoU) are dropped. ``a, b, centre, centre_x, aspect`` are fitted
on a few box-labelled frames of the camera (:func:`fit_geometry`, called by ``streamcam
calibrate``); this is the ground-plane size prior of classic surveillance detectors (Hoiem, Efros &
Hebert, "Putting objects in perspective", CVPR 2006).

Pure numpy; :func:`local_peaks` has a slow, obvious twin (:func:`local_peaks_reference`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Sequence

import numpy as np

from ..errors import ModelError
from ..geometry import iou

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PeakBoxRule:
    """Peaks of the raw map above ``level`` -> boxes sized by the camera's ground-plane fit."""

    level: float = 0.0
    """Minimum peak value (raw CAM units; for a ``presence: peak`` model, the cell logit: 0 is p = 0.5)."""
    radius: int = 1
    """A peak is the maximum of its (2 radius + 1)^2 cells."""
    nms: float = 0.3
    """A box overlapping a stronger peak's box by more than this IoU is the same object."""
    size: tuple[float, float] = (0.15, 0.0)
    """Box height / frame height = size[0] + size[1] * (peak row / frame height)."""
    centre: float = 0.0
    """Box centre below the peak, as a fraction of the box height (negative: above)."""
    aspect: float = 2.5
    """Box height / width."""
    centre_x: float = 0.0
    """Box centre right of the peak, as a fraction of the box width (negative: left). A map's peak
    need not sit on a person's vertical axis (a walker's leading arm and leg, a cell grid whose
    receptive fields are not centred on the cells): measured on PETS09's first half, a few-shot
    model's peaks sit 0.04 widths right of the labelled centre."""
    contain: bool = False
    """Also drop a peak that lies inside a stronger peak's box: a near person's second peak (legs under
    a head) is the same person. Off where people walk close together, far and small."""
    top_line: tuple[float, float] | None = None
    """Box height / frame height = top_line[0] + top_line[1] * (head top row / frame height), for a
    peak whose head top the background shows (:func:`~streamcam.processor.background.head_top`); the
    box then starts at that row. None: the row's size line only. At a camera near head height the
    head top tells near from far where the peak's row cannot (TUD-Campus: stabilized localization
    0.684 -> 0.724, docs/benchmarks.md "Stop 31"); from above the row says it better, and the
    calibration leaves this None (:func:`fit_geometry`)."""
    level_on_mover: float = 0.0
    """With a ``top_line``: the minimum value of a peak whose head top the foreground shows at a height
    the top line agrees with (at most ``level``; below it, a peak with no head top is dropped). Motion
    and the camera's geometry then vouch for the person, so the map's own decision boundary is enough
    (0: p = 0.5 at the cell). The second of a pair walking together is often such a weak peak beside
    the pair's strong one (TUD-Campus: stabilized localization 0.724 -> 0.747 on the second half, 0.622
    -> 0.643 on the first, precision 0.977 -> 0.970; docs/benchmarks.md "Stop 34"). Set by that
    reasoning, not calibrated: the calibration's frames have no background to show head tops."""

    def __post_init__(self) -> None:
        if not np.isfinite(self.level):
            raise ModelError(f"peak_boxes.level: expected a finite number, got {self.level!r}")
        if not 1 <= int(self.radius) <= 8:
            raise ModelError(f"peak_boxes.radius: expected 1..8 cells, got {self.radius!r}")
        if not 0.0 < self.nms <= 1.0:
            raise ModelError(f"peak_boxes.nms: expected 0 < IoU <= 1, got {self.nms!r}")
        if len(self.size) != 2 or not all(np.isfinite(v) for v in self.size):
            raise ModelError(f"peak_boxes.size: expected [a, b] (finite), got {self.size!r}")
        if not -1.0 <= self.centre <= 1.0:
            raise ModelError(f"peak_boxes.centre: expected -1..1 box heights, got {self.centre!r}")
        if not 0.1 <= self.aspect <= 10.0:
            raise ModelError(f"peak_boxes.aspect: expected height / width in [0.1, 10], got {self.aspect!r}")
        if not -1.0 <= self.centre_x <= 1.0:
            raise ModelError(f"peak_boxes.centre_x: expected -1..1 box widths, got {self.centre_x!r}")
        if self.top_line is not None and (len(self.top_line) != 2 or not all(np.isfinite(v) for v in self.top_line)):
            raise ModelError(f"peak_boxes.top_line: expected [a, b] (finite) or null, got {self.top_line!r}")
        if not isinstance(self.level_on_mover, (int, float)) or not np.isfinite(self.level_on_mover):
            raise ModelError(f"peak_boxes.level_on_mover: expected a finite number, got {self.level_on_mover!r}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PeakBoxRule":
        if not isinstance(d, dict):
            raise ModelError(f"peak_boxes: expected a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ModelError(f"peak_boxes: unknown keys {unknown}; expected some of {sorted(known)}")
        try:
            d = {k: (tuple(float(x) for x in v) if k == "size" or (k == "top_line" and v is not None) else
                     (int(v) if k == "radius" else (bool(v) if k == "contain" else (None if v is None else float(v)))))
                 for k, v in d.items()}
        except (TypeError, ValueError) as exc:
            raise ModelError(f"peak_boxes: expected numbers, got {d!r} ({exc})") from None
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["size"] = [float(v) for v in self.size]
        if self.top_line is None:
            del d["top_line"]  # a model without it stays readable by versions before it
            del d["level_on_mover"]  # read only with a top line
        else:
            d["top_line"] = [float(v) for v in self.top_line]
        return d

    def height(self, y: float, frame_h: float) -> float:
        """Box height (px) of a person whose peak is at row ``y`` (px), at least 4 px."""
        return max(4.0, frame_h * (self.size[0] + self.size[1] * y / frame_h))

    def boxes(self, cam: np.ndarray, frame_size: tuple[int, int],
              foreground: np.ndarray | None = None, silhouettes: Any = None) -> list[tuple[Box, float]]:
        """``[((x0, y0, x1, y1), peak value), ...]`` in frame pixels, strongest first. ``foreground``
        (the frame's movers, :class:`~streamcam.processor.background.RunningPlate`): with a
        ``top_line``, a peak on a mover gets its box from its head top. ``silhouettes`` (the frame's
        :class:`~streamcam.processor.silhouettes.Silhouettes` against a plate of many moments): a box
        on a fixture is dropped before it can suppress another, the rest take their person's blob. With a
        ``top_line`` and a foreground, a peak down to :attr:`level_on_mover` is kept when it has a head top."""
        fw, fh = float(frame_size[0]), float(frame_size[1])
        h, w = cam.shape
        cw, ch = fw / w, fh / h
        out: list[tuple[Box, float]] = []
        movers = self.top_line is not None and foreground is not None
        for v, x, y in local_peaks(cam, min(self.level, self.level_on_mover) if movers else self.level, int(self.radius)):
            px, py = _refine(cam, x, y)
            px, py = (px + 0.5) * cw, (py + 0.5) * ch
            bh = self.height(py, fh)
            bw, cy = bh / self.aspect, py + self.centre * bh
            top = self._head_top(foreground, px, py, bh) if foreground is not None else None
            if top is None and v <= self.level:
                continue  # a weak peak with no mover's head top to vouch for it
            if top is not None:
                bh = top[1]
                bw, cy = bh / self.aspect, top[0] + bh / 2
            cx = px + self.centre_x * bw
            # clipped to the frame, as a person half out of view is labelled (MOTChallenge clips too)
            box = (max(0.0, cx - bw / 2), max(0.0, cy - bh / 2), min(fw, cx + bw / 2), min(fh, cy + bh / 2))
            if silhouettes is not None:
                if silhouettes.on_fixture(box):
                    continue
                box = silhouettes.snap(box)
            if self.contain and any(o[0] <= px < o[2] and o[1] <= py < o[3] for o, _ in out):
                continue
            if all(iou(box, o) <= self.nms for o, _ in out):
                out.append((box, v))
        return out

    def _head_top(self, foreground: np.ndarray, px: float, py: float, row_height: float) -> tuple[float, float] | None:
        """``(top row, box height)`` from the head top above a peak, or None where it is not to be
        trusted: no ``top_line``, the peak on no mover, or a height off the row line's by more than 2x
        (the column ran into another person or a ghost in the plate)."""
        from .background import head_top

        if self.top_line is None:
            return None
        fh = float(foreground.shape[0])
        top = head_top(foreground, px, py, 0.35 * row_height / self.aspect)
        if top is None or top >= py:
            return None
        bh = fh * (self.top_line[0] + self.top_line[1] * top / fh)
        if not 0.5 * row_height <= bh <= 2.0 * row_height:
            return None
        return top, bh


def local_peaks(cam: np.ndarray, level: float, radius: int = 1) -> list[tuple[float, int, int]]:
    """``[(value, x, y), ...]`` of cells that are the maximum of their neighbourhood and above ``level``,
    strongest first (plateaus give one cell each: the first in row-major order)."""
    from scipy import ndimage

    cam = np.asarray(cam, np.float32)
    top = ndimage.maximum_filter(cam, size=2 * radius + 1, mode="nearest")
    ys, xs = np.nonzero((cam >= top) & (cam > level))
    found, taken = [], np.zeros(cam.shape, bool)
    for y, x in sorted(zip(ys.tolist(), xs.tolist()), key=lambda p: (-cam[p[0], p[1]], p[0], p[1])):
        if taken[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1].any():
            continue  # a plateau: its first cell stands for it
        taken[y, x] = True
        found.append((float(cam[y, x]), int(x), int(y)))
    return found


def local_peaks_reference(cam: np.ndarray, level: float, radius: int = 1) -> list[tuple[float, int, int]]:
    """The definition, cell by cell (tests compare it with :func:`local_peaks`)."""
    h, w = cam.shape
    cand = []
    for y in range(h):
        for x in range(w):
            win = cam[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1]
            if cam[y, x] > level and cam[y, x] >= win.max():
                cand.append((float(cam[y, x]), x, y))
    cand.sort(key=lambda p: (-p[0], p[2], p[1]))
    found: list[tuple[float, int, int]] = []
    for v, x, y in cand:
        if any(abs(x - fx) <= radius and abs(y - fy) <= radius and fv == v for fv, fx, fy in found):
            continue
        found.append((v, x, y))
    return found


def peak_points(cam: np.ndarray, frame_size: tuple[int, int], level: float, radius: int = 1
                ) -> list[tuple[float, float, float]]:
    """``[(value, x, y), ...]``: :func:`local_peaks` at their sub-cell positions, in frame pixels."""
    cw, ch = frame_size[0] / cam.shape[-1], frame_size[1] / cam.shape[-2]
    return [(v, (px + 0.5) * cw, (py + 0.5) * ch) for v, (px, py) in
            ((v, _refine(cam, x, y)) for v, x, y in local_peaks(cam, level, radius))]


def _refine(cam: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """Sub-cell peak position: the centre of mass of the positive part of its 3x3 neighbourhood."""
    h, w = cam.shape
    x0, x1, y0, y1 = max(0, x - 1), min(w, x + 2), max(0, y - 1), min(h, y + 2)
    p = np.maximum(cam[y0:y1, x0:x1] - min(0.0, float(cam[y0:y1, x0:x1].min())), 0) + 1e-9
    yy, xx = np.mgrid[y0:y1, x0:x1]
    return float((p * xx).sum() / p.sum()), float((p * yy).sum() / p.sum())


PERSON_ASPECT = 2.44
"""Height / width of a pedestrian box: the Caltech Pedestrian benchmark's standard aspect (width
0.41 x height; Dollar et al., "Pedestrian detection: an evaluation of the state of the art", PAMI 2012)."""
PRIOR_BOXES = 10
"""How many labelled boxes :data:`PERSON_ASPECT` counts as in :func:`shrunk_aspect`."""


def shrunk_aspect(aspects: Sequence[float] | np.ndarray, prior: float = PERSON_ASPECT,
                  weight: float = PRIOR_BOXES) -> float:
    """The labelled boxes' median aspect, pulled towards ``prior`` as if it were ``weight`` more boxes
    (in log space: a ratio). A few calibration boxes say little about a camera's people: the 4 whole
    ones of the LLVIP calibration frames (a rider with his bicycle, a walker in a wide coat) have a
    median of 1.69 where the 21 people of the evaluation frames have 2.6, and every box the rule drew
    was too wide. With a hundred boxes the median decides alone."""
    a = np.asarray(aspects, np.float64)
    a = a[np.isfinite(a) & (a > 0)]
    if not len(a):
        return float(prior)
    n = float(len(a))
    return float(np.exp((n * np.log(np.median(a)) + weight * np.log(prior)) / (n + weight)))


def fit_geometry(maps: Sequence[np.ndarray], gts: Sequence[Sequence[Box]], frame_sizes: Sequence[tuple[int, int]],
                 level: float, radius: int, nms: float, contain: bool = False,
                 prior_boxes: float = PRIOR_BOXES) -> PeakBoxRule | None:
    """The rule's size line, centre offsets and aspect from labelled frames: each GT box is paired with
    the strongest peak inside it (the one the rule keeps for that person); least squares of the
    relative height error on the peak's row, medians of the rest. None when fewer than 3 boxes have a peak. A box cut by
    the frame's edge does not show how tall or wide its person is: it is left out of the fit while
    at least 3 whole ones remain. The aspect is the boxes' median pulled towards a pedestrian's as
    if that were ``prior_boxes`` more boxes (:func:`shrunk_aspect`; 0: the median alone). The same
    height fit on the boxes' top rows gives :attr:`PeakBoxRule.top_line`, kept where it predicts the
    boxed heights better than the row, counting the head top's noise (:func:`_tops_tell_more`)."""
    rows, cut = [], []
    for cam, boxes, (fw, fh) in zip(maps, gts, frame_sizes):
        peaks = peak_points(cam, (fw, fh), level, radius)
        for b in boxes:
            inside = [p for p in peaks if b[0] <= p[1] < b[2] and b[1] <= p[2] < b[3]]
            if not inside:
                continue
            gy = (b[1] + b[3]) / 2
            _, px, py = max(inside)
            row = (py / fh, (b[3] - b[1]) / fh, (b[3] - b[1]) / max(b[2] - b[0], 1e-6), (gy - py) / fh,
                   ((b[0] + b[2]) / 2 - px) / max(b[2] - b[0], 1e-6), b[1] / fh, HEAD_TOP_NOISE_PX / fh)
            whole = b[0] >= 1 and b[1] >= 1 and b[2] <= fw - 1 and b[3] <= fh - 1
            (rows if whole else cut).append(row)
    if len(rows) < 3:
        rows += cut
    if len(rows) < 3:
        return None
    r = np.array(rows)
    # least squares of the *relative* height error: a box 20 px too tall costs a 60 px person what
    # 40 px cost a 120 px one (IoU is a ratio), so near, tall people do not outvote far ones
    w = 1.0 / np.maximum(r[:, 1], 1e-3)
    design = np.c_[np.ones(len(r)), r[:, 0]] * w[:, None]
    (a, slope), *_ = np.linalg.lstsq(design, r[:, 1] * w, rcond=None)
    heights = np.maximum(a + slope * r[:, 0], 1e-3)
    centre = float(np.clip(np.median(r[:, 3] / heights), -1.0, 1.0))
    # in the labelled boxes' own widths (the aspect is shrunk towards a pedestrian's, their widths are not)
    centre_x = float(np.clip(np.median(r[:, 4]), -1.0, 1.0))
    aspect = float(np.clip(shrunk_aspect(r[:, 2], weight=prior_boxes), 0.1, 10.0))
    # the same relative fit on the boxes' top rows: what a head top seen in the foreground gives
    design = np.c_[np.ones(len(r)), r[:, 5]] * w[:, None]
    (ta, tb), *_ = np.linalg.lstsq(design, r[:, 1] * w, rcond=None)
    return PeakBoxRule(level=float(level), radius=int(radius), nms=float(nms), size=(float(a), float(slope)),
                       centre=centre, aspect=aspect, contain=bool(contain), centre_x=centre_x,
                       top_line=(float(ta), float(tb)) if _tops_tell_more(r, (a, slope), (ta, tb)) else None)


HEAD_TOP_NOISE_PX = 4.4
"""How far a head top seen in the foreground is from the labelled one (1.4826 x MAD, frame px):
measured on TUD-Campus's second half against a background of its first."""


def _tops_tell_more(r: np.ndarray, row_line: tuple[float, float], top_line: tuple[float, float]) -> bool:
    """Whether the top line predicts the boxed people's heights better than the row's size line, once
    the foreground's head-top noise (:data:`HEAD_TOP_NOISE_PX`, through the line's slope) is counted:
    relative RMS errors. At an eye-level camera the row says nothing about height (TUD-Campus: 0.22
    against the top line's 0.09); from above it says it well and a small head's top is noisier
    (PETS09: 0.05 against 0.07, where head tops cost 0.06 of the first half's localization)."""
    h = np.maximum(r[:, 1], 1e-3)
    row_err = (row_line[0] + row_line[1] * r[:, 0]) / h - 1.0
    top_err = (top_line[0] + top_line[1] * r[:, 5]) / h - 1.0
    noise = abs(top_line[1]) * r[:, 6] / h
    return float(np.mean(top_err ** 2 + noise ** 2)) < float(np.mean(row_err ** 2))


__all__ = ["PERSON_ASPECT", "PeakBoxRule", "fit_geometry", "shrunk_aspect", "local_peaks", "local_peaks_reference",
           "peak_points"]
