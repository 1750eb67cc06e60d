"""What a labelling session holds: frame ranges -> class, and validation frames with boxes.

One validated type crosses the page, the server and the writer: :class:`Labels`, built from the
page's JSON by :func:`parse_labels`, which checks every field by hand against the recording
(frame count, frame size) and the session's classes, and raises :class:`LabelError` naming the
field at fault (``ranges[2].end``, ``validation[0].boxes[1]``). The wire form::

    {"ranges": [{"start": 0, "end": 120, "class": "empty", "step": 5}, ...],   # end exclusive
     "validation": [{"frame": 130, "boxes": [[x0, y0, x1, y1], ...]}, ...]}    # boxes: [] = no object

Boxes are in pixels of the frame, ``0 <= x0 < x1 <= width``, ``0 <= y0 < y1 <= height``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import StreamcamError

MAX_RANGES = 10_000
MAX_VALIDATION = 5_000
MAX_BOXES = 100
"""Per validation frame; far more than a frame holds, small enough to bound a request."""

Box = tuple[float, float, float, float]


class LabelError(StreamcamError):
    """Labels the page posted (or a session file) do not fit the recording; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class Range:
    """Frames ``start .. end - 1`` show ``cls``; every ``step``-th of them (from ``start``) is kept."""

    start: int
    end: int
    cls: str
    step: int = 1

    def kept(self) -> range:
        """The frames this range contributes to training."""
        return range(self.start, self.end, self.step)

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "class": self.cls, "step": self.step}


@dataclass(frozen=True)
class ValidationFrame:
    """A frame kept for calibration, with its objects' boxes (none: the frame shows no object)."""

    frame: int
    boxes: tuple[Box, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"frame": self.frame, "boxes": [list(b) for b in self.boxes]}


@dataclass(frozen=True)
class Labels:
    """A session's labels: ranges in start order (non-overlapping) and validation frames in frame order."""

    ranges: tuple[Range, ...] = ()
    validation: tuple[ValidationFrame, ...] = ()

    @property
    def validation_frames(self) -> frozenset[int]:
        return frozenset(v.frame for v in self.validation)

    def training_frames(self) -> list[tuple[int, str]]:
        """``(frame, class)`` of every kept range frame that is not a validation frame, in frame order."""
        val = self.validation_frames
        return [(i, r.cls) for r in self.ranges for i in r.kept() if i not in val]

    def to_json(self) -> dict[str, Any]:
        return {"ranges": [r.to_json() for r in self.ranges], "validation": [v.to_json() for v in self.validation]}


def _int(value: Any, field: str, lo: int, hi: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value):
        raise LabelError(field, f"expected an integer ({what}), got {value!r}")
    v = int(value)
    if not lo <= v <= hi:
        raise LabelError(field, f"expected {lo} <= value <= {hi} ({what}), got {v}")
    return v


def _list(value: Any, field: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise LabelError(field, f"expected a list, got {type(value).__name__}")
    if len(value) > limit:
        raise LabelError(field, f"expected at most {limit} entries, got {len(value)}")
    return value


def _object(value: Any, field: str, keys: set[str], optional: set[str] = frozenset()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LabelError(field, f"expected an object with keys {sorted(keys)}, got {type(value).__name__}")
    missing = keys - set(value)
    if missing:
        raise LabelError(f"{field}.{sorted(missing)[0]}", "missing")
    unknown = set(value) - keys - optional
    if unknown:
        raise LabelError(f"{field}.{sorted(unknown)[0]}", f"unknown key (expected {sorted(keys | optional)})")
    return value


def _box(value: Any, field: str, width: int, height: int) -> Box:
    want = f"[x0, y0, x1, y1] with 0 <= x0 < x1 <= {width}, 0 <= y0 < y1 <= {height} (pixels of the frame)"
    if not isinstance(value, list) or len(value) != 4:
        raise LabelError(field, f"expected {want}, got {value!r}")
    for k, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise LabelError(f"{field}[{k}]", f"expected a finite number, got {v!r}")
    x0, y0, x1, y1 = (float(v) for v in value)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise LabelError(field, f"expected {want}, got {value!r}")
    return (x0, y0, x1, y1)


def parse_labels(doc: Any, frames: int, width: int, height: int, classes: tuple[str, ...],
                 default_step: int = 1) -> Labels:
    """Validate the page's JSON (see the module doc) against the recording; :class:`LabelError` names the field."""
    obj = _object(doc, "labels", {"ranges", "validation"})
    ranges: list[Range] = []
    for i, r in enumerate(_list(obj["ranges"], "ranges", MAX_RANGES)):
        f = f"ranges[{i}]"
        r = _object(r, f, {"start", "end", "class"}, {"step"})
        start = _int(r["start"], f"{f}.start", 0, frames - 1, f"a frame index of the {frames}-frame recording")
        end = _int(r["end"], f"{f}.end", start + 1, frames, f"end exclusive, after start {start}")
        if r["class"] not in classes:
            raise LabelError(f"{f}.class", f"expected one of {list(classes)}, got {r['class']!r}")
        step = _int(r.get("step", default_step), f"{f}.step", 1, frames, "keep every step-th frame")
        ranges.append(Range(start, end, r["class"], step))
    order = sorted(range(len(ranges)), key=lambda k: ranges[k].start)
    for a, b in zip(order, order[1:]):
        if ranges[b].start < ranges[a].end:
            raise LabelError(f"ranges[{b}]", f"frames {ranges[b].start}..{ranges[b].end - 1} overlap ranges[{a}] "
                                             f"(frames {ranges[a].start}..{ranges[a].end - 1}): a frame has one class")
    validation: dict[int, ValidationFrame] = {}
    for i, v in enumerate(_list(obj["validation"], "validation", MAX_VALIDATION)):
        f = f"validation[{i}]"
        v = _object(v, f, {"frame", "boxes"})
        frame = _int(v["frame"], f"{f}.frame", 0, frames - 1, f"a frame index of the {frames}-frame recording")
        if frame in validation:
            raise LabelError(f"{f}.frame", f"frame {frame} is listed twice")
        boxes = tuple(_box(b, f"{f}.boxes[{j}]", width, height)
                      for j, b in enumerate(_list(v["boxes"], f"{f}.boxes", MAX_BOXES)))
        validation[frame] = ValidationFrame(frame, boxes)
    return Labels(tuple(ranges[k] for k in order), tuple(validation[k] for k in sorted(validation)))


def parse_classes(spec: Optional[str]) -> tuple[str, ...]:
    """``"person,empty"`` -> ``("person", "empty")``; names must be usable as folder names."""
    return check_classes(tuple(c.strip() for c in (spec or "person,empty").split(",") if c.strip()), "classes")


def check_classes(names: tuple[str, ...], field: str) -> tuple[str, ...]:
    """At least two distinct names, each usable as a folder name (``train/<class>/``)."""
    if len(names) < 2 or len(set(names)) != len(names):
        raise LabelError(field, f"expected at least two distinct class names, got {list(names)}")
    for c in names:
        if not isinstance(c, str) or not c or c.startswith(".") or any(ch in c for ch in '/\\:*?"<>|\0'):
            raise LabelError(field, f"{c!r} cannot be a folder name")
    return names


__all__ = ["Box", "LabelError", "Labels", "MAX_BOXES", "MAX_RANGES", "MAX_VALIDATION", "Range", "ValidationFrame",
           "check_classes", "parse_classes", "parse_labels"]
