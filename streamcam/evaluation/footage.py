"""Boxes from a fixed camera's own footage: calibrating a peak model without drawing one.

A peak model's box rule (:mod:`streamcam.processor.peak_boxes`) needs people's boxes only to learn
the camera's geometry: how tall a person is at each image row, where the box sits around the peak.
A fixed camera's footage shows that by itself. Against the footage's temporal median (the empty
plate, :func:`streamcam.processor.background.empty_plate`) a person walking alone is a foreground blob,
and its bounding box is their box: the self-calibration of surveillance cameras from walking
people (Lv, Zhao & Nevatia, "Self-calibration of a camera from video of a walking human", ICPR 2002;
Krahnstoever & Mendonca, "Bayesian autocalibration for surveillance", ICCV 2005).

Only a blob that is plainly one whole person counts (:func:`walker_boxes`): upright, mostly filled,
clear of the frame's edge, with the model's peaks on its vertical axis. Every other blob (a group,
a person cut by the edge, a fragment, a shadow, a moved car) is an *ignore* region, as MOTChallenge
treats its flag-0 boxes: a box drawn there is neither a hit nor a false box when the calibration
scores a rule, since nobody labelled who is in it.

Measured on the shared real sequences' first halves (docs/benchmarks.md, "Stop 31"): 81-95 % of
the blobs kept overlap a labelled person at IoU >= 0.5.

The blob tests are pure numpy and OpenCV; :func:`calibrate_from_footage` runs the model on the
frames and hands the walkers to :func:`~streamcam.evaluation.calibration.calibrate_peaks`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError
from ..processor.background import empty_plate, foreground_mask

Box = tuple[float, float, float, float]

MIN_ASPECT, MAX_ASPECT = 1.6, 4.5
"""A lone walker's box height / width: pedestrians are 2-3 (:data:`~streamcam.processor.peak_boxes.PERSON_ASPECT`
2.44); a wider blob is a group or a car, a narrower one a fragment or a pole's shadow."""
MIN_FILL = 0.35
"""Foreground share of the blob's box: a walker's silhouette fills about half of it."""
AXIS = 0.35
"""Every peak inside the blob within this many box widths of its centre line (one person's head,
torso and legs), else it is two people side by side."""


def walker_boxes(mask: np.ndarray, peaks: Sequence[tuple[float, float, float]], min_area: float | None = None
                 ) -> tuple[list[Box], list[Box]]:
    """``(boxes, ignore)`` from a foreground mask and the model's peaks ``(value, x, y)`` in frame
    pixels: the bounding boxes of blobs that are one whole person (see the module), and those of the
    other blobs. ``min_area``: blobs smaller than this are noise, in neither list (default: 0.1 % of
    the frame)."""
    import cv2

    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ConfigError(f"walker boxes: expected a 2-D mask, got shape {mask.shape}")
    fh, fw = mask.shape
    min_area = float(min_area) if min_area is not None else 1e-3 * fw * fh
    n, _, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    boxes: list[Box] = []
    ignore: list[Box] = []
    for x, y, w, h, area in stats[1:].tolist():
        if area < min_area:
            continue
        box = (float(x), float(y), float(x + w), float(y + h))
        inside = [(px, py) for _, px, py in peaks if x <= px < x + w and y <= py < y + h]
        lone = (x > 1 and y > 1 and x + w < fw - 1 and y + h < fh - 1
                and MIN_ASPECT <= h / w <= MAX_ASPECT and area >= MIN_FILL * w * h
                and bool(inside) and all(abs(px - (x + w / 2)) <= AXIS * w for px, _ in inside))
        (boxes if lone else ignore).append(box)
    return boxes, ignore


FOOTAGE_FRAMES = 300
"""Frames of the footage a calibration from footage reads by default, evenly spread over it."""
MIN_WALKERS = 3
"""Lone walkers the footage must show: the size line has two parameters, and the offsets are medians."""


def calibrate_from_footage(model_path: str, frames: Sequence[np.ndarray], pixel_format: str = "BGR8",
                           scale: float | None = None, progress=None) -> dict[str, Any]:
    """A peak model's box rule and input scale from a fixed camera's footage, with no box drawn.

    The boxes are the footage's lone walkers (foreground blobs against its temporal median, one whole
    upright person each: :func:`walker_boxes`); every other blob is a region nobody labelled. Then as
    :func:`~streamcam.evaluation.calibration.calibrate` calibrates a peak rule: its geometry fitted
    per level x radius x nms, chosen by F1, at each trained input scale, the scale by the same F1
    (``scale`` fixes it). The blob rule and the decision bias are left as they are: the footage has
    no frames known to be empty. ``progress``: called with a line per input scale (a few hundred
    frames through the network at each take a minute or more on a small CPU)."""
    import dataclasses

    from ..processor.detector import Detector
    from ..processor.engines import create_engine
    from ..processor.model_meta import read_metadata
    from .calibration import _f1, calibrate_peaks

    meta = read_metadata(model_path)
    if meta.presence != "peak":
        raise ConfigError(f"calibrate --footage: {model_path} is a GAP model whose boxes are CAM blobs; footage "
                          "calibrates only a multiple-instance (peak) model's rule: use --labels")
    frames = list(frames)
    plate = empty_plate(frames)  # checks: >= 3 frames, one size
    masks = [foreground_mask(f, plate) for f in frames]
    mil = meta.provenance.get("metrics", {}).get("mil", {})
    scales = [float(v) for v in mil.get("scales") or []] if mil.get("base_input") else []
    if scale is not None:
        if not any(abs(float(scale) - v) < 1e-6 for v in scales):
            raise ConfigError(f"calibrate --scale {scale}: {model_path} was trained at the scales {scales or [1.0]}; "
                              "choose one of them")
        scales = [float(scale)]
    sizes = [tuple(max(32, int(round(v * sc / 16)) * 16) for v in mil["base_input"]) for sc in scales] or [None]
    best, by_scale = None, {}
    for sc, size in zip(scales or [None], sizes):
        det = Detector(create_engine(str(model_path)), min_score=0.0)
        if size is not None:
            det.meta = dataclasses.replace(det.meta, input_width=int(size[0]), input_height=int(size[1]))
        try:
            items = plausible_walkers(footage_items(det, frames, masks, pixel_format))
        finally:
            det.engine.close()
        walkers = sum(len(i[1]) for i in items)
        ignored = sum(len(i[3]) for i in items)
        if walkers < MIN_WALKERS:
            raise ConfigError(f"calibrate --footage: {len(frames)} frames show {walkers} people walking alone "
                              f"(need {MIN_WALKERS}; {ignored} other foreground blobs beside them): give footage of a fixed "
                              "camera where people pass one at a time now and then, or box a few frames (--labels)")
        peak = calibrate_peaks(items)
        if peak is None:
            raise ConfigError(f"calibrate --footage: the model has no peak inside {walkers} walkers' blobs")
        score = _f1(peak["accuracy"], peak["precision"])
        if progress is not None:
            progress(f"input scale {sc if sc is not None else 1.0}: {walkers} lone walkers in {len(frames)} frames "
                     f"({ignored} other blobs ignored), F1 {score:.3f} on them")
        key = sc if sc is not None else 1.0
        by_scale[key] = round(score, 4)
        r = {"source_kind": "footage", "frames": len(frames), "walkers": walkers, "ignored_blobs": ignored,
             "peak_boxes": peak["rule"], "val_peak_localization_accuracy": peak["accuracy"],
             "val_peak_precision": peak["precision"], "objective": "f1", "val_objective": round(score, 4),
             "persons": walkers, "scale_chosen_by": "f1",
             # the blob rule as it was: write_calibration rewrites these keys
             "cam_threshold": meta.cam_threshold, "box_shrink_cells": meta.box_shrink_cells,
             "box_shrink_cells_y": meta.box_shrink_cells_y, "box_shrink_cells_bottom": meta.box_shrink_cells_bottom,
             "box_shrink_rel": meta.box_shrink_rel, "box_aspect": meta.box_aspect, "cam_floor": meta.cam_floor,
             "person_logit_shift": 0.0}
        if size is not None:
            r.update(input_width=size[0], input_height=size[1], input_scale=sc, input_scale_fixed=scale is not None)
        if best is None or score > best[0]:
            best = (score, r)
    best[1]["val_objective_by_scale"] = {str(k): v for k, v in by_scale.items()}
    return best[1]


def footage_items(det, frames: Sequence[np.ndarray], masks: Sequence[np.ndarray], pixel_format: str,
                  keep_empty: bool = False) -> list[tuple]:
    """``[(map, walker boxes, frame size, ignore regions), ...]`` for :func:`calibrate_peaks`: each
    frame's map from ``det`` (a :class:`~streamcam.processor.detector.Detector`), its peaks above
    p = 0.5 with their foreground ``masks`` (:func:`walker_boxes`). Frames with no walker
    are left out unless ``keep_empty`` (then one item per frame, in order)."""
    from ..processor.peak_boxes import peak_points

    items = []
    for image, mask in zip(frames, masks):
        cams, _, fsize, _ = det.maps(image, pixel_format)
        cam = cams[0]
        boxes, ignore = walker_boxes(mask, peak_points(cam, fsize, 0.0, 1))
        if boxes or keep_empty:
            items.append((cam, boxes, fsize, ignore))
    return items


WALKER_SPREAD = 4.0
"""Walker boxes more than this factor shorter or taller than their median are not one person (a pigeon,
a bag, two people stacked): the relative size fit weighs a small box most, and one 42 px blob among
250 px walkers (TUD-Campus's first half) tilted the line until it drew no box a person could match."""


def plausible_walkers(items: Sequence[tuple], keep_empty: bool = False) -> list[tuple]:
    """:func:`footage_items` without the walker boxes :data:`WALKER_SPREAD` off their median height
    (they join the frame's ignore regions); items left with no walker are dropped unless
    ``keep_empty``."""
    heights = [b[3] - b[1] for it in items for b in it[1]]
    if not heights:
        return list(items)
    mid = float(np.median(heights))
    out = []
    for cam, boxes, size, ignore in items:
        keep = [b for b in boxes if mid / WALKER_SPREAD <= b[3] - b[1] <= mid * WALKER_SPREAD]
        if keep or keep_empty:
            out.append((cam, keep, size, list(ignore) + [b for b in boxes if b not in keep]))
    return out


def footage_frames(path: str, count: int = FOOTAGE_FRAMES) -> tuple[list[np.ndarray], str]:
    """``count`` frames evenly spread over a recording (video, image folder or thermal sequence, as
    :class:`~streamcam.capture.indexed.IndexedFrames` reads them), 8-bit, and their pixel format."""
    from ..capture.indexed import IndexedFrames

    if count < 3:
        raise ConfigError(f"calibrate --footage-frames: expected at least 3, got {count}")
    with IndexedFrames(path) as rec:
        n = len(rec)
        if n < 3:
            raise ConfigError(f"calibrate --footage: {path} holds {n} frames; a fixed camera's footage needs "
                              "at least 3 (a minute or more, with people passing)")
        picks = np.linspace(0, n - 1, min(n, int(count))).round().astype(int)
        frames = [rec.display(int(i)) for i in picks]
    return frames, "GRAY8" if frames[0].ndim == 2 else "BGR8"


__all__ = ["calibrate_from_footage", "footage_frames", "footage_items", "plausible_walkers", "walker_boxes"]
