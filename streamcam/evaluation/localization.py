"""Localization quality of CAM boxes on the synthetic IR scene: the one CAM evaluator.

Metric: *localization accuracy* per ground-truth person (the CAM paper's criterion,
IoU >= 0.5): predicted and GT boxes of a frame are matched 1:1, greedily by
decreasing IoU (one box cannot claim two people); a GT person is a hit when it is
matched with IoU >= ``iou_threshold``. False positives do not lower it; they are
reported separately as ``box_precision``.

:func:`evaluate_detector` renders held-out frames (scene seeds the model was not trained
on), runs them through the processor's own :class:`~streamcam.processor.detector.Detector`
(preprocessing, engine, CAM and *the model's box rule*: its threshold, margins or peaks) and
scores the boxes with :func:`score_frames`. ``streamcam eval`` (:func:`streamcam.evaluation.pipeline.run_eval`)
is it with a pipeline config's detector; :func:`evaluate_synthetic` with a model file (training's
test figures). :func:`sweep_thresholds` alone scores the *raw* rule family, for training to choose a
new model's threshold before its rule is calibrated.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..datasets.synthetic import SyntheticIRScene
from ..geometry import iou
from ..processor.boxes import boxes_from_cam

Box = Sequence[float]


def match_boxes(pred: Sequence[Box], gt: Sequence[Box], iou_threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """Greedy 1:1 matching by decreasing IoU: ``[(pred_i, gt_j, iou), ...]`` with iou >= threshold."""
    pairs = sorted(((iou(p, g), i, j) for i, p in enumerate(pred) for j, g in enumerate(gt)), reverse=True)
    used_p, used_g, out = set(), set(), []
    for v, i, j in pairs:
        if v < iou_threshold:
            break
        if i in used_p or j in used_g:
            continue
        used_p.add(i)
        used_g.add(j)
        out.append((i, j, v))
    return out


def localization_accuracy(pred_boxes_per_frame: Sequence[Sequence[Box]], gt_boxes_per_frame: Sequence[Sequence[Box]],
                          iou_threshold: float = 0.5) -> float:
    """Fraction of GT boxes matched (1:1, greedy) by a predicted box with IoU >= ``iou_threshold``."""
    if len(pred_boxes_per_frame) != len(gt_boxes_per_frame):
        raise ValueError(f"localization_accuracy: expected as many predicted as GT frames, got "
                         f"{len(pred_boxes_per_frame)} and {len(gt_boxes_per_frame)}")
    hits = total = 0
    for pred, gt in zip(pred_boxes_per_frame, gt_boxes_per_frame):
        total += len(gt)
        hits += len(match_boxes(pred, gt, iou_threshold))
    return hits / total if total else float("nan")


def score_frames(preds: Sequence[Sequence[Box]], gts: Sequence[Sequence[Box]]) -> dict:
    """The localization figures of per-frame predicted boxes against ground truth: persons, those
    localized (1:1 matches at IoU >= 0.5), predicted boxes, accuracy, precision and each person's best
    IoU with any box, averaged (NaN where there is nothing to divide by)."""
    hits = n_pred = n_gt = 0
    ious: list[float] = []
    for p, g in zip(preds, gts):
        hits += len(match_boxes(p, g, 0.5))
        n_pred += len(p)
        n_gt += len(g)
        ious += [max((iou(b, gb) for b in p), default=0.0) for gb in g]
    nan = float("nan")
    return {"persons": n_gt, "localized": hits, "predicted_boxes": n_pred,
            "localization_accuracy": hits / n_gt if n_gt else nan,
            "box_precision": hits / n_pred if n_pred else nan,
            "mean_best_iou": float(np.mean(ious)) if ious else nan}


def _eval_frames(frames: int, seed: int, scenes: int) -> list[tuple[int, int]]:
    """(scene seed, frame index) pairs spread over ``scenes`` scenes and ~3 min of each."""
    step = 97  # ~3 s apart at 30 fps: different people, poses and positions
    return [(seed + (k % scenes), (k // scenes) * step) for k in range(frames)]


def model_detector(model_path: str, threshold: float | None = None, min_score: float = 0.5):
    """The processor's :class:`~streamcam.processor.detector.Detector` for a model file (ONNX Runtime,
    one thread): the one path every evaluation here runs frames through."""
    from ..processor.detector import Detector
    from ..processor.engines import create_engine

    return Detector(create_engine(str(model_path)), classes=("person",), cam_threshold=threshold, min_score=min_score)


def infer_synthetic(model_path: str, frames: int = 60, seed: int = 9000, scenes: int = 3,
                    negatives: int | None = None, scene_kwargs: dict | None = None) -> dict:
    """Run the model on held-out frames: person CAMs, GT boxes, and classification outcomes."""
    detector = model_detector(model_path)
    pos = detector.meta.class_index("person")
    cams, gts, probs, labels, times = [], [], [], [], []
    kwargs = dict(scene_kwargs or {})
    cache: dict[tuple[int, int], SyntheticIRScene] = {}
    negatives = frames // 2 if negatives is None else negatives
    items = [(s, i, kwargs.get("people", 4), True) for s, i in _eval_frames(frames, seed, scenes)]
    items += [(s, i, 0, False) for s, i in _eval_frames(negatives, seed, scenes)]
    frame_size = None
    try:
        for s, i, people, is_eval in items:
            key = (s, people)
            if key not in cache:
                cache[key] = SyntheticIRScene(**{**kwargs, "seed": s, "people": people})
            fr = cache[key].frame(i)
            maps, p, frame_size, timings = detector.maps(fr.image, "GRAY8")
            times.append(timings["engine"])
            probs.append(float(p[pos]))
            labels.append(len(fr.persons) > 0)
            if is_eval:
                cams.append(maps[0])
                gts.append([o.box for o in fr.persons])
    finally:
        detector.engine.close()
    return {"meta": detector.meta, "cams": cams, "gts": gts, "probs": np.array(probs), "labels": np.array(labels),
            "frame_size": frame_size, "infer_ms": float(np.median(times))}


def score_boxes(cams, gts, frame_size, threshold: float, relative: str = "component", floor: str = "zero") -> dict:
    """The raw box rule family (before a model's rule is calibrated: training's threshold sweep)
    on CAMs: component- or globally-relative thresholds, no margins, no peaks."""
    preds = [[b for b, _ in boxes_from_cam(c, frame_size, threshold=threshold, relative=relative, floor=floor)]
             for c in cams]
    return score_frames(preds, gts)


def evaluate_detector(detector, frames: int = 200, seed: int = 9000, scenes: int = 4,
                      scene_kwargs: dict | None = None, sweep: Sequence[float] = (), progress: bool = False) -> dict:
    """Localization of a detector's boxes *by the model's box rule* (:meth:`Detector.boxes`: its
    threshold, margins or peaks, as the live processor draws them) on held-out synthetic frames, and
    its presence accuracy (``p >= min_score`` against "any person").

    ``frames`` frames with people from ``scenes`` scenes (seeds ``seed, seed+1, ...``, ~3 s apart), and
    half as many without people from the same scenes. ``sweep``: the same maps scored at these CAM
    thresholds too (the curve Choe et al., CVPR 2020, use for MaxBoxAcc).
    """
    import sys

    kw = dict(scene_kwargs or {})
    pos_scenes = [SyntheticIRScene(**{**kw, "seed": seed + k}) for k in range(scenes)]
    neg_scenes = [SyntheticIRScene(**{**kw, "seed": seed + k, "people": 0}) for k in range(scenes)]
    label = detector.class_names[0]
    items, engine_ms = [], []
    correct = total = 0
    for k in range(frames):
        index = (k // scenes) * 97  # ~3 s apart: new positions, poses and people
        for scene, positive in ((pos_scenes[k % scenes], True), (neg_scenes[k % scenes], False)):
            if not positive and k % 2:
                continue  # half as many negatives: enough for presence accuracy
            fr = scene.frame(index)
            cams, probs, fsize, timings = detector.maps(fr.image, "GRAY8")
            engine_ms.append(timings["engine"])
            prob = float(probs[detector.class_indices[0]])
            gts = [o.box for o in fr.objects if o.label == label]
            correct += (prob >= detector.min_score) == bool(gts)
            total += 1
            if positive:
                items.append((cams[0], prob, fsize, gts))
        if progress and (k + 1) % 20 == 0:
            print(f"\reval: {k + 1}/{frames} frames", end="", file=sys.stderr, flush=True)
    if progress:
        print(file=sys.stderr)

    def at(threshold: float | None) -> dict:
        preds = [[d.box for d in detector.boxes(cam, prob, label, size, threshold)] if prob >= detector.min_score
                 else [] for cam, prob, size, _ in items]
        return score_frames(preds, [g for *_, g in items])

    out = {**at(None), "presence_accuracy": correct / total if total else float("nan"),
           "presence_frames": total, "cam_threshold": detector.threshold, "min_score": detector.min_score,
           "engine_ms_median": float(np.median(engine_ms)) if engine_ms else float("nan")}
    if sweep:
        curve = {float(t): at(float(t))["localization_accuracy"] for t in sweep}
        best = max(curve, key=lambda t: curve[t] if curve[t] == curve[t] else 0.0)
        out.update(threshold_curve=curve, max_box_acc=curve[best], best_threshold=best)
    return out


def evaluate_synthetic(model_path: str, frames: int = 60, seed: int = 9000, scenes: int = 3,
                       threshold: float | None = None, scene_kwargs: dict | None = None) -> dict:
    """Localization + classification of ``model_path`` on held-out synthetic frames
    (:func:`evaluate_detector` with the model's box rule; ``threshold`` overrides its ``cam_threshold``)."""
    detector = model_detector(model_path, threshold)
    try:
        r = evaluate_detector(detector, frames, seed, scenes, scene_kwargs)
    finally:
        detector.engine.close()
    out = {k: r[k] for k in ("localization_accuracy", "persons", "localized", "predicted_boxes", "box_precision",
                             "mean_best_iou", "cam_threshold")}
    out.update({"box_rule": "the model's", "frames": frames, "seed": seed, "scenes": scenes,
                "classification_accuracy": r["presence_accuracy"], "classification_frames": r["presence_frames"],
                "onnx_ms_per_frame_1thread": round(r["engine_ms_median"], 3)})
    return out


def sweep_thresholds(model_path: str, thresholds: Sequence[float], frames: int = 100, seed: int = 5000,
                     scenes: int = 3, relative: str = "component", scene_kwargs: dict | None = None) -> dict:
    """Localization accuracy per CAM threshold of the raw rule family (MaxBoxAcc-style sweep on a
    validation seed), as training picks a new model's threshold before its box rule is calibrated."""
    r = infer_synthetic(model_path, frames, seed, scenes, negatives=0, scene_kwargs=scene_kwargs)
    return {float(t): score_boxes(r["cams"], r["gts"], r["frame_size"], float(t), relative,
                                   r["meta"].cam_floor)["localization_accuracy"]
            for t in thresholds}


def write_quality(path: str, model_path: str, test: dict, extra: dict | None = None, margin: float = 0.03) -> dict:
    """Write the checked-in quality file: the test numbers and the regression floor the tests enforce."""
    import json
    from pathlib import Path

    floor = float(np.floor((test["localization_accuracy"] - margin) * 100) / 100)
    doc = {"model": Path(model_path).as_posix(), "regression_floor": {"localization_accuracy": floor},
           "test": test, **(extra or {})}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def main(argv=None) -> int:
    import argparse
    import json

    ap = argparse.ArgumentParser(description="Localization accuracy of a CAM model on held-out synthetic IR frames")
    ap.add_argument("model", help="ONNX model with streamcam metadata, e.g. engines/person-ir.onnx")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--seed", type=int, default=9000, help="first scene seed (training uses 1000.., tuning 5000..)")
    ap.add_argument("--scenes", type=int, default=3)
    ap.add_argument("--threshold", type=float, default=None, help="override the model's cam_threshold")
    ap.add_argument("--write", help="write the quality file (with its regression floor) here")
    args = ap.parse_args(argv)
    m = evaluate_synthetic(args.model, args.frames, args.seed, args.scenes, args.threshold)
    print(json.dumps(m, indent=2))
    if args.write:
        write_quality(args.write, args.model, m)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
