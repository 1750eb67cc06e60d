"""Localization quality of CAM boxes on the synthetic IR scene.

Metric: *localization accuracy* per ground-truth person (the CAM paper's criterion,
IoU >= 0.5): predicted and GT boxes of a frame are matched 1:1, greedily by
decreasing IoU (one box cannot claim two people); a GT person is a hit when it is
matched with IoU >= ``iou_threshold``. False positives do not lower it; they are
reported separately as ``box_precision``.

:func:`evaluate_synthetic` renders held-out frames (a scene seed the model was not
trained on), runs :func:`preprocess` + ONNX Runtime + CAM + the box rule, and
returns the numbers. :func:`preprocess` is one small function on purpose: the
pipeline's ``Detector`` can replace it.
"""

from __future__ import annotations

import time
from typing import Sequence

import cv2
import numpy as np

from ..capture.synthetic import SyntheticIRScene
from ..geometry import iou
from ..processor.boxes import boxes_from_cam
from ..processor.cam import class_activation_map
from ..processor.model_meta import ModelMetadata, read_metadata

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


def preprocess(image: np.ndarray, meta: ModelMetadata) -> np.ndarray:
    """uint8 grey frame -> network input ``[1, 1, H, W]`` float32: stretch-resize, /255, (x-mean)/std.

    Resizing as the pipeline's preprocessing does: INTER_AREA when shrinking, INTER_LINEAR
    when enlarging (for the default 640x480 -> 320x240 both give the same 2x2 means).
    """
    interp = cv2.INTER_AREA if image.shape[1] > meta.input_width else cv2.INTER_LINEAR
    x = cv2.resize(image, (meta.input_width, meta.input_height), interpolation=interp)
    x = (x.astype(np.float32) * np.float32(1 / 255.0) - np.float32(meta.mean[0])) / np.float32(meta.std[0])
    return x[None, None]


def open_session(model_path: str, threads: int = 1):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_path), so, providers=["CPUExecutionProvider"])


def _eval_frames(frames: int, seed: int, scenes: int) -> list[tuple[int, int]]:
    """(scene seed, frame index) pairs spread over ``scenes`` scenes and ~3 min of each."""
    step = 97  # ~3 s apart at 30 fps: different people, poses and positions
    return [(seed + (k % scenes), (k // scenes) * step) for k in range(frames)]


def infer_synthetic(model_path: str, frames: int = 60, seed: int = 9000, scenes: int = 3,
                    negatives: int | None = None, scene_kwargs: dict | None = None) -> dict:
    """Run the model on held-out frames: person CAMs, GT boxes, and classification outcomes."""
    meta = read_metadata(model_path)
    sess = open_session(model_path)
    pos = meta.class_index("person")
    cams, gts, probs, labels, times = [], [], [], [], []
    kwargs = dict(scene_kwargs or {})
    cache: dict[tuple[int, int], SyntheticIRScene] = {}
    negatives = frames // 2 if negatives is None else negatives
    items = [(s, i, kwargs.get("people", 4), True) for s, i in _eval_frames(frames, seed, scenes)]
    items += [(s, i, 0, False) for s, i in _eval_frames(negatives, seed, scenes)]
    frame_size = None
    for s, i, people, is_eval in items:
        key = (s, people)
        if key not in cache:
            cache[key] = SyntheticIRScene(**{**kwargs, "seed": s, "people": people})
        fr = cache[key].frame(i)
        frame_size = (fr.image.shape[1], fr.image.shape[0])
        t0 = time.perf_counter()
        logits, feats = sess.run([meta.logits_output, meta.features_output], {meta.input_name: preprocess(fr.image, meta)})
        times.append(time.perf_counter() - t0)
        e = np.exp(logits[0] - logits[0].max())
        probs.append(float(e[pos] / e.sum()))
        labels.append(len(fr.persons) > 0)
        if is_eval:
            cams.append(class_activation_map(feats, meta.cam_weights, [pos])[0, 0])
            gts.append([o.box for o in fr.persons])
    return {"meta": meta, "cams": cams, "gts": gts, "probs": np.array(probs), "labels": np.array(labels),
            "frame_size": frame_size, "infer_ms": 1000 * float(np.median(times))}


def score_boxes(cams, gts, frame_size, threshold: float, relative: str = "component", floor: str = "zero") -> dict:
    preds = [[b for b, _ in boxes_from_cam(c, frame_size, threshold=threshold, relative=relative, floor=floor)]
             for c in cams]
    hits, ious, n_pred, n_gt = 0, [], 0, 0
    for p, g in zip(preds, gts):
        m = match_boxes(p, g, 0.5)
        hits += len(m)
        n_pred += len(p)
        n_gt += len(g)
        # Mean IoU: each GT person's best IoU with any predicted box.
        ious += [max((iou(b, gb) for b in p), default=0.0) for gb in g]
    return {"localization_accuracy": hits / n_gt if n_gt else float("nan"), "persons": n_gt, "hits": hits,
            "predicted_boxes": n_pred, "box_precision": hits / n_pred if n_pred else float("nan"),
            "mean_iou": float(np.mean(ious)) if ious else float("nan")}


def evaluate_synthetic(model_path: str, frames: int = 60, seed: int = 9000, scenes: int = 3,
                       threshold: float | None = None, relative: str = "component",
                       scene_kwargs: dict | None = None) -> dict:
    """Localization + classification of ``model_path`` on held-out synthetic frames.

    ``frames`` frames with people from ``scenes`` scenes (seeds ``seed, seed+1, ...``)
    give the localization numbers; ``frames // 2`` frames of the same scenes without
    people are added for the classification accuracy. ``threshold`` defaults to the
    model's ``cam_threshold``.
    """
    r = infer_synthetic(model_path, frames, seed, scenes, scene_kwargs=scene_kwargs)
    meta: ModelMetadata = r["meta"]
    thr = meta.cam_threshold if threshold is None else threshold
    out = score_boxes(r["cams"], r["gts"], r["frame_size"], thr, relative, r["meta"].cam_floor)
    pred = r["probs"] >= 0.5
    out.update({
        "cam_threshold": thr, "box_rule": relative, "frames": frames, "seed": seed, "scenes": scenes,
        "classification_accuracy": float(np.mean(pred == r["labels"])),
        "classification_frames": int(len(pred)),
        "onnx_ms_per_frame_1thread": round(r["infer_ms"], 3),
    })
    return out


def sweep_thresholds(model_path: str, thresholds: Sequence[float], frames: int = 100, seed: int = 5000,
                     scenes: int = 3, relative: str = "component", scene_kwargs: dict | None = None) -> dict:
    """Localization accuracy per CAM threshold (MaxBoxAcc-style sweep on a validation seed)."""
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
    ap.add_argument("--rule", choices=("component", "global"), default="component")
    ap.add_argument("--write", help="write the quality file (docs/quality/localization.json)")
    args = ap.parse_args(argv)
    m = evaluate_synthetic(args.model, args.frames, args.seed, args.scenes, args.threshold, args.rule)
    print(json.dumps(m, indent=2))
    if args.write:
        write_quality(args.write, args.model, m)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
