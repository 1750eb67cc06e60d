"""Zones, masks and counting lines of one camera: polygons, and where a detection *is*.

A detection is where its box's **bottom centre** stands (``((x0 + x1) / 2, y1)``): the
feet of a person, the wheels of a car; Frigate and DeepStream's nvdsanalytics anchor
the same way, so a tall box that leans over a zone's edge does not count as inside.

* a **zone** is a named polygon; an anchor inside it is in the zone (the lifecycle adds
  inertia, ``min_frames``, and loitering); anchors are clamped into the frame, so a box cut
  by the frame's edge is in a zone drawn to that edge;
* a **mask** is a polygon whose anchors are dropped (a tree that waves, a road outside
  the fence);
* a **line** is a segment ``a -> b`` whose crossings are counted per direction: ``in``
  when the anchor passes from the segment's right-hand side to its left (image
  coordinates, y down), ``out`` the other way.

Polygons are given in pixels or in fractions of the frame (``units``), validated when
the config loads (at least 3 points, finite, a non-zero area, no self-intersection), and
scaled to a frame's size when first seen. :func:`inside` is the vectorised test;
:func:`inside_reference` the obvious one it is checked against.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, Sequence

import numpy as np

Units = Literal["fraction", "px"]
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _check_points(points: Sequence[Sequence[float]], units: str, at_least: int, exactly: int | None = None) -> None:
    if exactly is not None and len(points) != exactly:
        raise ValueError(f"points: expected {exactly} [x, y] points, got {len(points)}")
    if len(points) < at_least:
        raise ValueError(f"points: expected at least {at_least} [x, y] points, got {len(points)}")
    for i, p in enumerate(points):
        if len(p) != 2 or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in p):
            raise ValueError(f"points[{i}]: expected [x, y] (2 finite numbers), got {list(p)!r}")
        if units == "fraction" and not all(0.0 <= v <= 1.0 for v in p):
            raise ValueError(f"points[{i}]: units fraction expects values in [0, 1], got {list(p)!r} "
                             "(set units: px for pixel coordinates)")
        if units == "px" and not all(v >= 0 for v in p):
            raise ValueError(f"points[{i}]: pixel coordinates must be >= 0, got {list(p)!r}")


def _segments_cross(p1, p2, p3, p4) -> bool:
    """Whether segments p1p2 and p3p4 properly intersect (touching ends do not count)."""
    def orient(a, b, c) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2, d3, d4 = orient(p3, p4, p1), orient(p3, p4, p2), orient(p1, p2, p3), orient(p1, p2, p4)
    return d1 * d2 < 0 and d3 * d4 < 0


def check_polygon(points: Sequence[Sequence[float]], units: str) -> None:
    """Raise ValueError naming what is wrong with a zone or mask polygon."""
    _check_points(points, units, at_least=3)
    pts = [(float(x), float(y)) for x, y in points]
    n = len(pts)
    for i in range(n):
        for j in range(i + 2, n):
            if i == 0 and j == n - 1:
                continue  # adjacent through the closing edge
            if _segments_cross(pts[i], pts[(i + 1) % n], pts[j], pts[(j + 1) % n]):
                raise ValueError(f"points: edges {i} and {j} cross (a self-intersecting polygon): "
                                 "list the points in order around the area")
    if abs(polygon_area(pts)) < 1e-12:
        raise ValueError(f"points: the polygon {[list(p) for p in pts]} has no area (collinear or repeated points)")


def polygon_area(points: Sequence[tuple[float, float]]) -> float:
    """Signed area (shoelace formula)."""
    s = 0.0
    for (x0, y0), (x1, y1) in zip(points, list(points[1:]) + [points[0]]):
        s += x0 * y1 - x1 * y0
    return s / 2.0


@dataclass(frozen=True)
class ZoneConfig:
    """A named area of one camera; events say which zones their object is in."""

    name: str
    """Used in events (``zones``) and MQTT topics: letters, digits, ``-``, ``_``."""
    points: tuple[tuple[float, ...], ...] = ()
    """The polygon's corners in order, ``[[x, y], ...]``."""
    units: Units = "fraction"
    """fraction: of the frame's width/height (survives a resolution change); px: frame pixels."""
    min_frames: int = 3
    """Inertia: consecutive frames an anchor must be inside before the object is in the zone
    (a box that brushes the edge for a frame is not an entry)."""
    loitering_s: float = 0.0
    """An object in the zone longer than this marks its event ``loitering`` (0: off)."""
    labels: tuple[str, ...] = ()
    """Only these labels can be in the zone (empty: all)."""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"name: expected letters, digits, '-' or '_' (1-64), got {self.name!r}")
        check_polygon(self.points, self.units)
        if self.min_frames < 1:
            raise ValueError(f"min_frames: expected an integer >= 1, got {self.min_frames}")
        if not self.loitering_s >= 0:
            raise ValueError(f"loitering_s: expected seconds >= 0, got {self.loitering_s}")


@dataclass(frozen=True)
class MaskConfig:
    """An area whose detections are dropped (anchored at the box's bottom centre)."""

    points: tuple[tuple[float, ...], ...] = ()
    units: Units = "fraction"

    def __post_init__(self) -> None:
        check_polygon(self.points, self.units)


@dataclass(frozen=True)
class LineConfig:
    """A counting line ``a -> b``: crossings counted ``in`` (right to left of a->b) and ``out``."""

    name: str
    points: tuple[tuple[float, ...], ...] = ()
    """Two points ``[[xa, ya], [xb, yb]]``."""
    units: Units = "fraction"
    labels: tuple[str, ...] = ()
    """Only these labels are counted (empty: all)."""

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name):
            raise ValueError(f"name: expected letters, digits, '-' or '_' (1-64), got {self.name!r}")
        _check_points(self.points, self.units, at_least=2, exactly=2)
        if tuple(self.points[0]) == tuple(self.points[1]):
            raise ValueError(f"points: the line's two ends are the same point {list(self.points[0])}")


def to_pixels(points: Sequence[Sequence[float]], units: str, width: int, height: int) -> np.ndarray:
    """``[N, 2]`` float64 pixel coordinates of a config polygon for a ``width`` x ``height`` frame."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    return p * (width, height) if units == "fraction" else p


def anchors(boxes: np.ndarray) -> np.ndarray:
    """Bottom centres ``[N, 2]`` of boxes ``[N, 4]`` (x0, y0, x1, y1)."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([(b[:, 0] + b[:, 2]) / 2.0, b[:, 3]], axis=1)


def frame_anchors(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """:func:`anchors` clamped into the frame ``[0, width) x [0, height)``: a box cut by the frame's
    bottom (a person near the camera, feet below the picture) stands on the frame's last row, so
    it is inside a zone drawn down to the frame's bottom, not on that zone's (excluded) bottom edge."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    a = np.empty((len(b), 2))
    np.add(b[:, 0], b[:, 2], out=a[:, 0])
    a[:, 0] *= 0.5
    a[:, 1] = b[:, 3]
    np.minimum(a, _frame_limit(int(width), int(height)), out=a)
    np.maximum(a, 0.0, out=a)
    return a


@lru_cache(maxsize=64)
def _frame_limit(width: int, height: int) -> np.ndarray:
    """The largest point inside a ``width`` x ``height`` frame (just below its right and bottom borders)."""
    return np.array([np.nextafter(float(width), 0.0), np.nextafter(float(height), 0.0)])


def edges(polygon: np.ndarray) -> tuple[np.ndarray, ...]:
    """A polygon's edges ``(x0, y0, x1, y1)``, each ``[M]``: what :func:`inside` needs, computed once per zone."""
    x0, y0 = polygon[:, 0], polygon[:, 1]
    return x0, y0, np.roll(x0, -1), np.roll(y0, -1)


def inside(points: np.ndarray, polygon: np.ndarray | tuple[np.ndarray, ...]) -> np.ndarray:
    """Whether each point ``[N, 2]`` lies inside ``polygon`` ``[M, 2]`` (even-odd rule), vectorised.

    A horizontal ray from the point crosses an odd number of edges exactly when it is inside;
    edges are half-open in y so a vertex on the ray is counted once. A point on an edge follows
    the top-left rule of rasterisers: on a left or top edge it is inside, on a right or bottom
    edge outside, so two zones that share an edge never both hold it (anchors on the frame's
    right or bottom border are clamped into the frame first: :func:`frame_anchors`).
    ``polygon`` may be given as its :func:`edges`.
    """
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if not len(pts):
        return np.zeros(0, bool)
    x, y = pts[:, :1], pts[:, 1:]
    x0, y0, x1, y1 = polygon if isinstance(polygon, tuple) else edges(polygon)
    straddle = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return (straddle & (x < xc)).sum(axis=1) % 2 == 1


def inside_many(points: np.ndarray, all_edges: tuple[np.ndarray, ...], starts: np.ndarray) -> np.ndarray:
    """:func:`inside` for several polygons in one pass: ``all_edges`` their :func:`edges` concatenated,
    ``starts`` where each polygon's edges begin; returns ``bool [polygons, N]``."""
    pts = np.asarray(points, np.float64).reshape(-1, 2)
    if not len(pts) or not len(starts):
        return np.zeros((len(starts), len(pts)), bool)
    x, y = pts[:, :1], pts[:, 1:]
    x0, y0, x1, y1 = all_edges
    straddle = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xc = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return (np.add.reduceat(straddle & (x < xc), starts, axis=1) % 2 == 1).T


def inside_reference(x: float, y: float, polygon: Sequence[Sequence[float]]) -> bool:
    """The obvious ray-casting test for one point (what :func:`inside` computes for many)."""
    n, hit = len(polygon), False
    for i in range(n):
        xa, ya = polygon[i]
        xb, yb = polygon[(i + 1) % n]
        if (ya > y) != (yb > y) and x < xa + (y - ya) * (xb - xa) / (yb - ya):
            hit = not hit
    return hit


def distance_to_edges(x: float, y: float, segments: Sequence[tuple[float, float, float, float]]) -> float:
    """Distance (px) from the point ``(x, y)`` to the nearest of a polygon's edges ``(x0, y0, x1, y1)``
    (plain Python: a zone has a handful of edges, too few for numpy to pay)."""
    best = math.inf
    for x0, y0, x1, y1 in segments:
        dx, dy = x1 - x0, y1 - y0
        len2 = dx * dx + dy * dy
        u = ((x - x0) * dx + (y - y0) * dy) / len2 if len2 > 0 else 0.0
        u = 0.0 if u < 0.0 else (1.0 if u > 1.0 else u)  # the nearest point of the segment
        ex, ey = x0 + u * dx - x, y0 + u * dy - y
        d2 = ex * ex + ey * ey
        if d2 < best:
            best = d2
    return math.sqrt(best)


def side(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Sign of the cross product ``(b - a) x (p - a)`` per point: > 0 left of a->b in image coordinates
    (y down, so "left" as seen on screen is the negative side; only the change of sign matters)."""
    p = np.asarray(points, np.float64).reshape(-1, 2)
    return np.sign((b[0] - a[0]) * (p[:, 1] - a[1]) - (b[1] - a[1]) * (p[:, 0] - a[0]))


def crosses_line(p: np.ndarray, q: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the move p -> q (p and q on opposite sides of the line through a, b) passes between a and b."""
    d, e = q - p, b - a
    denom = d[0] * e[1] - d[1] * e[0]
    if denom == 0:
        return False
    # p + t d = a + u e  ->  u: where along a-b the move meets the line (0 at a, 1 at b).
    u = ((a[0] - p[0]) * d[1] - (a[1] - p[1]) * d[0]) / denom
    return 0.0 <= u <= 1.0


@dataclass
class FrameGeometry:
    """A camera's zones, masks and lines scaled to one frame size (built once per size)."""

    zones: tuple[np.ndarray, ...]
    masks: tuple[np.ndarray, ...]
    lines: tuple[tuple[np.ndarray, np.ndarray], ...]
    zone_edges: tuple[tuple[np.ndarray, ...], ...] = ()
    mask_edges: tuple[tuple[np.ndarray, ...], ...] = ()
    all_edges: tuple[np.ndarray, ...] = ()
    """Zones' then masks' edges concatenated, for :func:`inside_many` (one pass per frame)."""
    zone_segments: tuple[tuple[tuple[float, float, float, float], ...], ...] = ()
    """Per zone, its edges as plain tuples (for :func:`distance_to_edges`)."""
    starts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.intp))


@lru_cache(maxsize=64)
def geometry(zones: tuple[ZoneConfig, ...], masks: tuple[MaskConfig, ...], lines: tuple[LineConfig, ...],
             width: int, height: int) -> FrameGeometry:
    """The polygons in pixels of a ``width`` x ``height`` frame (cached: configs are frozen)."""
    zp = tuple(to_pixels(z.points, z.units, width, height) for z in zones)
    mp = tuple(to_pixels(m.points, m.units, width, height) for m in masks)
    lp = tuple(tuple(to_pixels(ln.points, ln.units, width, height)) for ln in lines)
    ze, me = tuple(edges(z) for z in zp), tuple(edges(m) for m in mp)
    polys = ze + me
    all_edges = tuple(np.concatenate([e[k] for e in polys]) for k in range(4)) if polys else ()
    starts = np.cumsum([0] + [len(e[0]) for e in polys[:-1]]).astype(np.intp) if polys else np.zeros(0, np.intp)
    segments = tuple(tuple(zip(*(e.tolist() for e in z))) for z in ze)
    return FrameGeometry(zp, mp, lp, ze, me, all_edges, starts=starts, zone_segments=segments)  # type: ignore[arg-type]
