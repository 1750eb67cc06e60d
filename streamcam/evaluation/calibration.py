"""Calibrate a model's CAM box rule and whole-frame decision bias on box-labelled validation frames.

    streamcam calibrate MODEL.onnx                      # synthetic validation scenes 5000..5002
    streamcam calibrate MODEL.onnx --labels val.json    # your own frames with boxes
    streamcam calibrate MODEL.onnx --footage hall.mp4   # a peak model, no boxes: the footage's lone walkers
    streamcam calibrate MODEL.onnx --dry-run            # print, write nothing

A CAM blob is the object blurred by the network's receptive field and by upsampling.
This sweeps the box threshold (fraction of the map's peak, the CAM paper's 20 % rule
generalised, as in the MaxBoxAcc protocol of Choe et al., CVPR 2020) together with the
:class:`~streamcam.processor.boxes.BoxRule` that turns a blob's bounding box into the
object's: either a constant margin pulled in from the sides and from top and bottom (in
feature-map cells, plus a fraction of the box), or separate top and bottom margins with the
width set by an object aspect ratio (height / width). Ties go to the simpler rule. The best
setting is written into the model's metadata (``cam_threshold``, ``box_shrink_cells``,
``box_shrink_cells_y``, ``box_shrink_cells_bottom``, ``box_shrink_rel``, ``box_aspect``) with
the validation figures in its provenance.

A model trained on crops sees an object fill more of its input than a whole frame does, so on
whole frames GAP dilutes the evidence and the positive logit comes out low. The positive-vs-rest
bias is refitted on whole validation frames (with and without the object): this moves the
decision threshold only; the CAM (which carries no bias) is unchanged.

The network learns from image-level labels only; these few settings need boxes. Choe et al.
(CVPR 2020, "Evaluating weakly supervised object localization methods right") show that WSOL
methods are tuned on box labels whether they say so or not, and recommend a small, explicit,
fully annotated held-out set for it. This is that set: a few dozen frames, never the test frames.

Labels file (``--labels``): JSON, ``{"frames": [{"image": "a.png", "boxes": [[x0, y0, x1, y1], ...]},
...]}`` (or the bare list), image paths relative to the file, boxes in pixels of that image; a
frame with ``"boxes": []`` shows no object (it counts for the decision bias). Use frames that are
neither training nor test frames.

Why this module is over 450 lines: blob rules, peak rules and the input scale are chosen together,
by one sweep whose result one writer stores, for each of the command's sources (synthetic scenes,
labelled frames, and footage through :mod:`.footage`); split, the choice would be spread over modules.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from ..errors import ConfigError

THRESHOLDS = (0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7)
CELLS = (0.0, 0.5, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0)
RELS = (0.0, 0.05)
TOPS = (0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0)
BOTTOMS = (-2.0, -1.0, 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0)
ASPECTS = (0.5, 0.75, 1.0, 1.5, 2.0, 2.25, 2.5, 2.75, 3.0, 3.5, 4.0)
"""Object height / width; people are 2-4 (their boxes in the synthetic scene: median 2.9)."""

Frame = tuple[np.ndarray, str, list[tuple[float, float, float, float]]]
"""``(image, pixel_format, boxes)``: a validation frame and its objects' boxes (empty: none)."""


def synthetic_frames(seeds: Sequence[int] = (5000, 5001, 5002), frames: int = 25) -> Iterator[Frame]:
    """Validation frames of the synthetic IR scene: ``frames`` with people and ``frames // 2``
    without, per scene seed (5000..: neither the training nor the test scenes)."""
    from ..datasets.synthetic import SyntheticIRScene

    for s in seeds:
        for people in (4, 0):
            scene = SyntheticIRScene(seed=int(s), people=people)
            for k in range(frames if people else frames // 2):
                fr = scene.frame(k * 97)
                yield fr.image, "GRAY8", [o.box for o in fr.objects if o.label == "person"]


def synthetic_source(seeds: Sequence[int], frames: int) -> str:
    """How :func:`synthetic_frames` frames are recorded in a calibration's provenance."""
    return f"synthetic scenes {list(seeds)}, {frames} frames with people each"


def labelled_frames(labels_path: str | Path) -> list[Frame]:
    """Frames and boxes of a labels file (see the module doc); errors name the entry at fault."""
    import cv2

    path = Path(labels_path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"labels file not found: {path}") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    entries = data.get("frames") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected a non-empty list of frames (or {{\"frames\": [...]}})")
    out: list[Frame] = []
    for i, e in enumerate(entries):
        where = f"{path}: frames[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("image"), str) or not isinstance(e.get("boxes"), list):
            raise ConfigError(f"{where}: expected {{\"image\": PATH, \"boxes\": [[x0, y0, x1, y1], ...]}}")
        img_path = (path.parent / e["image"]).resolve()
        image = cv2.imread(str(img_path), cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ConfigError(f"{where}.image: cannot read {e['image']!r} (relative to {path.parent})")
        if image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        if image.dtype != np.uint8:  # 16-bit thermal frames: stretched to 8 bits as the capture does
            image = cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
        h, w = image.shape[:2]
        boxes = []
        for j, b in enumerate(e["boxes"]):
            ok = (isinstance(b, (list, tuple)) and len(b) == 4 and all(isinstance(v, (int, float)) for v in b)
                  and 0 <= b[0] < b[2] <= w and 0 <= b[1] < b[3] <= h)
            if not ok:
                raise ConfigError(f"{where}.boxes[{j}]: expected [x0, y0, x1, y1] with 0 <= x0 < x1 <= {w} and "
                                  f"0 <= y0 < y1 <= {h} (pixels of the {w}x{h} image), got {b!r}")
            boxes.append(tuple(float(v) for v in b))
        out.append((image, "GRAY8" if image.ndim == 2 else "BGR8", boxes))
    if not any(boxes for _, _, boxes in out):
        raise ConfigError(f"{path}: no frame has a box: the box rule needs frames showing the object")
    return out


def frames_of_split(labels_path: str | Path, frames_dir: str | Path | None = None,
                    split: str | None = None) -> list[Frame]:
    """Frames and boxes of a labels file whose images live in ``frames_dir`` (default: the file's
    folder), optionally one ``split`` of it (VAL.json ``"split"`` or a boxes CSV, as ``streamcam eval
    --frames-dir`` reads them): e.g. the calibration frames of a real data set kept outside the repo."""
    from .frames import read_frame, read_labels, select

    root = Path(frames_dir) if frames_dir else Path(labels_path).parent
    out: list[Frame] = []
    for f in select(read_labels(labels_path), split):
        image, fmt = read_frame(root, f.image)
        out.append((image, fmt, list(f.boxes)))
    if not any(boxes for _, _, boxes in out):
        raise ConfigError(f"{labels_path}: no frame has a box: the box rule needs frames showing the object")
    return out


OBJECTIVES = ("localization", "f1")


def calibrate(model_path: str, frames: Iterable[Frame], aspect: bool = True,
              objective: str = "localization", scale: float | None = None) -> dict[str, Any]:
    """Sweep threshold x box rule on ``frames``; ``aspect=False``: symmetric margins only.

    ``objective``: what the sweep maximises. ``localization`` (people with a box at IoU >= 0.5, as
    the synthetic protocol scores) or ``f1``, the harmonic mean of localization and box precision:
    on a few frames of a cluttered real camera, localization alone picks the lowest threshold (every
    warm spot a box; measured on the LLVIP calibration frames: 45 boxes for 5 people).

    A multiple-instance model trained at several input scales (``presence: peak``, its provenance
    lists them) is calibrated at each, and the scale whose boxes localize best is kept: how many
    cells a person spans is the camera's, and the labelled frames show it. ``scale`` fixes it to one
    of the trained scales instead: a few labelled frames choose between scales by less than one
    person (the LLVIP sample's 5 calibration people), and a camera whose smallest people would be
    under a cell wide at the smaller scale needs the larger one whatever those frames say."""
    from ..processor.model_meta import read_metadata

    meta = read_metadata(model_path)
    mil = meta.provenance.get("metrics", {}).get("mil", {}) if meta.presence == "peak" else {}
    if objective not in OBJECTIVES:
        raise ConfigError(f"calibrate: objective must be one of {OBJECTIVES}, got {objective!r}")
    if not mil.get("scales") or not mil.get("base_input"):
        if scale is not None:
            raise ConfigError(f"calibrate --scale: {model_path} was not trained at several input scales "
                              "(only a multiple-instance model made by streamcam train is)")
        return _calibrate_at(model_path, frames, aspect, None, objective=objective)
    scales = [float(v) for v in mil["scales"]]
    if scale is not None:
        if not any(abs(float(scale) - v) < 1e-6 for v in scales):
            raise ConfigError(f"calibrate --scale {scale}: {model_path} was trained at the scales {scales} "
                              f"of {mil['base_input'][0]}x{mil['base_input'][1]}; choose one of them")
        scales = [float(scale)]
    frames = list(frames)
    best, by_scale = None, {}
    for sc in scales:
        size = tuple(max(32, int(round(v * sc / 16)) * 16) for v in mil["base_input"])
        r = _calibrate_at(model_path, frames, aspect, size, objective=objective)
        # a peak rule's scale by the same F1 its rule was chosen by: on localization alone scales tie
        # or win by one person at any precision (PETS09's model on TUD-Campus's 15 frames: 0.468 at
        # both scales, precision 0.33 at the full one and 0.70 at half), and the stabilizer pays for
        # every false box. A blob rule's scale stays by the objective: by F1 the synthetic few-shot
        # check (tools.fewshot_thermal_mil) would take a scale that localizes 0.64 instead of 0.78.
        by_f1 = bool(r.get("peak_boxes"))
        score = _f1(r["val_peak_localization_accuracy"], r["val_peak_precision"]) if by_f1 else r["val_objective"]
        by_scale[sc] = score
        r.update(input_width=size[0], input_height=size[1], input_scale=sc, input_scale_fixed=scale is not None,
                 scale_chosen_by="f1" if by_f1 else objective)
        if best is None or score > best[0]:
            best = (score, r)
    best[1]["val_objective_by_scale"] = {str(k): v for k, v in by_scale.items()}
    return best[1]


def scale_choice_undecided(result: dict[str, Any]) -> str | None:
    """A warning when the labelled frames chose the input scale by less than one person's worth of
    the objective (1 / persons): then which scale wins is chance (the LLVIP sample's 5 calibration
    people chose 320x256 by F1 0.62 against 0.55, and 12-14 people per fold chose 640x512)."""
    by = result.get("val_objective_by_scale") or {}
    if len(by) < 2 or result.get("input_scale_fixed"):
        return None
    ranked = sorted(by.items(), key=lambda kv: -kv[1])
    (s1, v1), (s2, v2) = ranked[0], ranked[1]
    persons = max(int(result.get("persons") or 0), 1)
    if v1 - v2 >= 1.0 / persons:
        return None
    return (f"the labelled frames chose input scale {s1} over {s2} by less than one person "
            f"({result.get('scale_chosen_by', result.get('objective'))} {v1:.3f} against {v2:.3f}, "
            f"{persons} people): box more frames, or fix the scale with --scale (1: the model's full "
            "training size)")


def _calibrate_at(model_path: str, frames: Iterable[Frame], aspect: bool, size: tuple[int, int] | None,
                  floors: Sequence[str] = ("zero", "ivr"), objective: str = "localization") -> dict[str, Any]:
    import dataclasses

    from ..processor.boxes import boxes_from_cam
    from ..processor.detector import Detector
    from ..processor.engines import create_engine
    from .localization import match_boxes

    det = Detector(create_engine(str(model_path)), min_score=0.0)
    if size is not None:
        det.meta = dataclasses.replace(det.meta, input_width=int(size[0]), input_height=int(size[1]))
    pos = det.class_indices[0]
    items, margins, labels = [], [], []
    n_frames = 0
    try:
        for image, pixel_format, gts in frames:
            n_frames += 1
            cams, probs, size, _ = det.maps(image, pixel_format)
            logits = np.log(np.clip(probs, 1e-12, 1.0))
            margins.append(float(logits[pos] - np.delete(logits, pos).max()))
            labels.append(bool(gts))
            if gts:
                items.append((cams[0], list(gts), size))
    finally:
        det.engine.close()
    if not items:
        raise ConfigError("calibrate: no validation frame shows the object: the box rule needs boxes")
    # Positive-vs-rest logit margin: the shift that best separates frames with and without the object.
    margins_a, labels_a = np.array(margins), np.array(labels)
    shifts = np.linspace(-10, 10, 401)
    acc_by_shift = np.array([float(((margins_a + d > 0) == labels_a).mean()) for d in shifts])
    # Frames of one kind only (e.g. real frames that all show people) cannot place the decision:
    # the bias is then left as it is.
    best_shift = float(shifts[int(np.argmax(acc_by_shift))]) if len(set(labels)) > 1 else 0.0
    presence_before = float(((margins_a > 0) == labels_a).mean())
    cell = [(size[0] / c.shape[-1], size[1] / c.shape[-2]) for c, _, size in items]
    # (accuracy, complexity, threshold, rule, floor, objective, precision): complexity breaks ties
    # towards the simpler rule
    results = []
    for floor in floors:
        found = {th: [[b for b, _ in boxes_from_cam(c, size, th, floor=floor)] for c, _, size in items]
                 for th in THRESHOLDS}
        for th in THRESHOLDS:
            for rule in candidate_rules(aspect):
                hits = total = n_boxes = 0
                for boxes, (c, gts, size), (cw, ch) in zip(found[th], items, cell):
                    hits += len(match_boxes([rule.apply(b, cw, ch) for b in boxes], gts, 0.5))
                    total, n_boxes = total + len(gts), n_boxes + len(boxes)
                acc, prec = hits / max(total, 1), hits / max(n_boxes, 1)
                goal = acc if objective == "localization" else _f1(acc, prec)
                results.append((acc, complexity(rule) + (floor != "zero") * 1000, th, rule, floor, goal, prec))
    by_floor = {f: round(max(r[0] for r in results if r[4] == f), 4) for f in floors}
    results.sort(key=lambda r: (-r[5], r[1]))
    acc, _, th, rule, cam_floor, goal, prec = results[0]
    results = [r[:4] for r in results if r[4] == cam_floor]
    peak = calibrate_peaks(items) if det.meta.presence == "peak" else None
    peak_goal = (peak["accuracy"] if objective == "localization" else _f1(peak["accuracy"], peak["precision"])) \
        if peak else -1.0
    baseline = max((r for r in results if r[3].is_identity), key=lambda r: r[0])
    symmetric = max((r for r in results if r[3].aspect is None and r[3].top == r[3].bottom), key=lambda r: r[0])
    use_peak = bool(peak) and peak_goal > goal
    return {"val_localization_accuracy": round(acc, 4), "val_box_precision": round(prec, 4), "objective": objective,
            "val_objective": round(max(goal, peak_goal), 4),
            "cam_floor": cam_floor, "val_by_cam_floor": by_floor,
            "cam_threshold": th, "box_shrink_cells": rule.sides,
            "box_shrink_cells_y": rule.top, "box_shrink_cells_bottom": rule.bottom, "box_shrink_rel": rule.rel,
            "box_aspect": rule.aspect, "val_without_shrink": round(baseline[0], 4),
            "val_threshold_without_shrink": baseline[2], "val_symmetric_margins_only": round(symmetric[0], 4),
            "person_logit_shift": round(best_shift, 3) if det.meta.presence == "mean" else 0.0,
            "val_presence_accuracy_before": round(presence_before, 4),
            "val_presence_accuracy_after": round(float(((margins_a + best_shift > 0) == labels_a).mean()), 4),
            "val_frames": n_frames, "persons": sum(len(g) for _, g, _ in items),
            **({"peak_boxes": peak["rule"], "val_peak_localization_accuracy": peak["accuracy"],
                "val_peak_precision": peak["precision"]} if use_peak else
               {"peak_boxes": None, **({"val_peak_localization_accuracy": peak["accuracy"]} if peak else {})})}


PEAK_LEVELS = (0.0, 1.0, 2.0, 3.0)
PEAK_RADII = (1, 2, 3)
PEAK_NMS = (0.2, 0.3, 0.4)


def calibrate_peaks(items: Sequence[tuple]) -> dict[str, Any] | None:
    """The best :class:`~streamcam.processor.peak_boxes.PeakBoxRule` on ``(map, boxes, frame size)``
    items: its geometry fitted for each level x radius x nms, scored by F1 of localization and
    precision (a peak rule can fire on every small bump: the stabilizer pays for each false box).
    An item may carry a fourth element, regions where nobody was labelled (:mod:`.footage`): a box
    matching no labelled person but lying in one (half its area or more) is not counted."""
    from ..processor.peak_boxes import fit_geometry
    from .localization import match_boxes

    maps, gts, sizes = [i[0] for i in items], [i[1] for i in items], [i[2] for i in items]
    ignores = [i[3] if len(i) > 3 else () for i in items]
    best = None
    for level in PEAK_LEVELS:
        for radius in peak_radii([i[:3] for i in items]):
            for nms, contain in ((n, c) for n in PEAK_NMS for c in (False, True)):
                rule = fit_geometry(maps, gts, sizes, level, radius, nms, contain)
                if rule is None:
                    continue
                hits = total = found = 0
                for cam, g, size, ign in zip(maps, gts, sizes, ignores):
                    boxes = [b for b, _ in rule.boxes(cam, size)]
                    matched = match_boxes(boxes, g, 0.5)
                    hits += len(matched)
                    total, found = total + len(g), found + len(boxes) - _ignored(boxes, matched, ign)
                acc, prec = hits / max(total, 1), hits / max(found, 1)
                f1 = _f1(acc, prec)
                if best is None or f1 > best[0]:
                    best = (f1, acc, prec, rule)
    if best is None:
        return None
    return {"rule": best[3].to_dict(), "accuracy": round(best[1], 4), "precision": round(best[2], 4)}


def _ignored(boxes: Sequence, matched, ignore: Sequence) -> int:
    """How many of ``boxes`` match no labelled person and lie (half their area or more) in an ignore region."""
    if not ignore:
        return 0
    hit = {int(m[0]) for m in matched}
    n = 0
    for k, b in enumerate(boxes):
        area = max((b[2] - b[0]) * (b[3] - b[1]), 1e-9)
        if k not in hit and any(max(0.0, min(b[2], o[2]) - max(b[0], o[0])) * max(0.0, min(b[3], o[3]) - max(b[1], o[1]))
                                >= 0.5 * area for o in ignore):
            n += 1
    return n


def peak_radii(items: Sequence[tuple[np.ndarray, list, tuple[int, int]]]) -> tuple[int, ...]:
    """The peak radii the calibration may choose: those under the labelled people's median width in
    map cells. Two people side by side have peaks about one width apart, and a peak suppresses every
    other within ``radius`` cells; a few calibration frames that happen to show no one walking abreast
    would otherwise pick the widest radius (fewer stray peaks) and merge every pair the camera will see
    (measured on the LLVIP sample: its 4 calibration frames show 5 people, none in a group, and chose
    radius 3 at 64 px cells, two person widths)."""
    widths = [(b[2] - b[0]) / (size[0] / cam.shape[-1]) for cam, boxes, size in items for b in boxes]
    if not widths:
        return PEAK_RADII
    width = float(np.median(widths))
    return tuple(r for r in PEAK_RADII if r < width) or PEAK_RADII[:1]


def _f1(a: float, b: float) -> float:
    return 2 * a * b / max(a + b, 1e-9)


def candidate_rules(aspect: bool = True):
    """Symmetric margins (the blob's width kept), then top/bottom margins with a fixed aspect."""
    from ..processor.boxes import BoxRule

    for sides in CELLS:
        for y in CELLS:
            for rel in RELS:
                yield BoxRule(sides, y, y, rel)
    if not aspect:
        return
    for top in TOPS:
        for bottom in BOTTOMS:
            for ratio in ASPECTS:
                yield BoxRule(0.0, top, bottom, 0.0, ratio)


def complexity(rule) -> float:
    """Order of preference between rules that score the same: fewer and smaller adjustments first."""
    return (rule.aspect is not None) * 100 + (rule.top != rule.bottom) * 50 + abs(rule.sides) + abs(rule.top) \
        + abs(rule.bottom) + rule.rel


def write_calibration(model_path: str, result: dict[str, Any]) -> None:
    """Store a :func:`calibrate` result in the model: box rule in the metadata, the positive
    class's logit shift in the classifier's bias (graph and metadata, so mean(CAM) + b == logit)."""
    from ..processor.model_meta import read_metadata, update_metadata

    meta = read_metadata(model_path)
    bias = meta.cam_bias.copy()
    shift = float(result.get("person_logit_shift", 0.0))
    if shift:
        import onnx
        from onnx import numpy_helper

        pos = meta.class_index(meta.positive_classes[0] if meta.positive_classes else meta.classes[-1])
        model = onnx.load(str(model_path))
        # The classifier's bias is the Gemm producing `logits`: shift the positive entry there.
        gemm = next(n for n in model.graph.node if meta.logits_output in n.output and n.op_type == "Gemm")
        init = next(i for i in model.graph.initializer if i.name == gemm.input[2])
        b = numpy_helper.to_array(init).copy()
        b[pos] += shift
        init.CopyFrom(numpy_helper.from_array(b.astype(np.float32), init.name))
        onnx.save(model, str(model_path))
        bias[pos] += shift
    update_metadata(
        model_path, cam_threshold=result["cam_threshold"], box_shrink_cells=result["box_shrink_cells"],
        box_shrink_cells_y=result["box_shrink_cells_y"], box_shrink_rel=result["box_shrink_rel"],
        box_shrink_cells_bottom=result.get("box_shrink_cells_bottom"), box_aspect=result.get("box_aspect"),
        peak_boxes=result.get("peak_boxes"), cam_floor=result.get("cam_floor", "zero"), cam_bias=bias,
        **({k: int(result[k]) for k in ("input_width", "input_height") if k in result}), provenance={**meta.provenance, "box_calibration": result})


def main(argv: list[str] | None = None) -> int:
    """``streamcam calibrate``."""
    from .footage import FOOTAGE_FRAMES

    ap = argparse.ArgumentParser(prog="streamcam calibrate", description=__doc__.splitlines()[0])
    ap.add_argument("model", help="ONNX model exported by streamcam (rewritten in place unless --dry-run)")
    ap.add_argument("--labels", help="JSON of validation frames with boxes (default: synthetic scenes --seeds)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[5000, 5001, 5002],
                    help="synthetic validation scene seeds (without --labels)")
    ap.add_argument("--frames", type=int, default=25, help="synthetic frames with people per seed")
    ap.add_argument("--no-aspect", action="store_true",
                    help="symmetric margins only (the shipped default model: the stabilizer in "
                         "configs/default.yaml is tuned on those boxes)")
    ap.add_argument("--frames-dir", help="--labels: the folder its image paths are relative to (default: its own)")
    ap.add_argument("--split", help="--labels: only the frames of this split (e.g. calibration)")
    ap.add_argument("--objective", choices=OBJECTIVES, default="localization",
                    help="what the sweep maximises: localization (default) or f1 of localization and box "
                         "precision (a cluttered camera, few labelled frames)")
    ap.add_argument("--scale", type=float,
                    help="a multiple-instance model: calibrate at this one of its trained input scales (e.g. 1: "
                         "its full training size) instead of choosing by the labelled frames")
    ap.add_argument("--footage", help="a peak model, no boxes: calibrate on this fixed camera's recording (video, "
                                      "image folder or thermal sequence) by its lone walkers (instead of --labels)")
    ap.add_argument("--footage-frames", type=int, default=FOOTAGE_FRAMES,
                    help=f"--footage: frames read, evenly spread over it (default {FOOTAGE_FRAMES})")
    ap.add_argument("--dry-run", action="store_true", help="print the calibration, write nothing")
    a = ap.parse_args(argv)
    from ..errors import StreamcamError

    try:
        if a.footage:
            if a.labels or a.frames_dir or a.split:
                raise ConfigError("calibrate: --footage takes no --labels, --frames-dir or --split (it draws "
                                  "its own boxes from the footage)")
            from .footage import calibrate_from_footage, footage_frames

            frames, pixel_format = footage_frames(a.footage, a.footage_frames)
            result = calibrate_from_footage(a.model, frames, pixel_format, scale=a.scale,
                                            progress=lambda line: print(f"calibrate --footage: {line}",
                                                                        file=sys.stderr, flush=True))
        elif a.labels and (a.frames_dir or a.split):
            frames = frames_of_split(a.labels, a.frames_dir, a.split)
        else:
            frames = labelled_frames(a.labels) if a.labels else synthetic_frames(tuple(a.seeds), a.frames)
        if not a.footage:
            result = calibrate(a.model, frames, aspect=not a.no_aspect, objective=a.objective, scale=a.scale)
    except StreamcamError as exc:
        print(f"streamcam calibrate: error: {exc}", file=sys.stderr)
        return 2
    if a.footage:
        result["source"] = f"footage {Path(a.footage).name}"
    else:
        result["source"] = (f"labels {Path(a.labels).name}" + (f", split {a.split}" if a.split else "")
                            if a.labels else synthetic_source(a.seeds, a.frames))
    print(json.dumps(result, indent=1))
    warning = scale_choice_undecided(result)
    if warning:
        print(f"streamcam calibrate: note: {warning}", file=sys.stderr)
    if not a.dry_run:
        write_calibration(a.model, result)
        print(f"wrote the calibration into {a.model}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
