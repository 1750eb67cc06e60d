"""`streamcam eval`: how well a pipeline config localizes people on held-out synthetic IR frames.

It runs the *pipeline's* processing code (the same :class:`Detector`, thresholds and
score gate as the live processor) on frames of scene seeds the default model was not
trained on, and scores the boxes with the CAM paper's criterion: a ground-truth
person is localized when a box overlaps it with IoU >= 0.5 (1:1 matching). The same
maps are also scored over a sweep of CAM thresholds (the curve Choe et al., CVPR 2020,
use for MaxBoxAcc), so the operating point can be seen against the best one.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .config import PipelineConfig

SWEEP = tuple(round(0.05 * k, 2) for k in range(1, 20))


def _score(detector, items, threshold: float) -> dict[str, Any]:
    from .evaluation.localization import iou, match_boxes

    hits = n_gt = n_pred = 0
    ious: list[float] = []
    for cam, prob, size, gts in items:
        label = detector.class_names[0]
        boxes = [d.box for d in detector.boxes(cam, prob, label, size, threshold)] if prob >= detector.min_score else []
        hits += len(match_boxes(boxes, gts, 0.5))
        n_gt += len(gts)
        n_pred += len(boxes)
        ious += [max((iou(b, g) for b in boxes), default=0.0) for g in gts]
    return {"persons": n_gt, "localized": hits, "predicted_boxes": n_pred,
            "localization_accuracy": round(hits / n_gt, 4) if n_gt else None,
            "box_precision": round(hits / n_pred, 4) if n_pred else None,
            "mean_best_iou": round(float(np.mean(ious)), 4) if ious else None}


def run_eval(cfg: PipelineConfig, frames: int = 200, seed: int = 9000, out: str | None = None,
             scenes: int = 4, progress: bool = True, sweep: bool = True) -> dict[str, Any]:
    from .capture.synthetic import SyntheticIRScene
    from .processor.stage import build_detector

    detector = build_detector(cfg)
    src = cfg.streams[0].source
    size = dict(width=src.width, height=src.height) if src.kind == "synthetic" else {}
    pos_scenes = [SyntheticIRScene(seed=seed + k, **size) for k in range(scenes)]
    neg_scenes = [SyntheticIRScene(seed=seed + k, people=0, **size) for k in range(scenes)]
    items = []
    correct = total = 0
    t0 = time.perf_counter()
    try:
        for k in range(frames):
            index = (k // scenes) * 97  # ~3 s apart: new positions, poses and people
            for scene, positive in ((pos_scenes[k % scenes], True), (neg_scenes[k % scenes], False)):
                if not positive and k % 2:
                    continue  # half as many negatives: enough for presence accuracy
                fr = scene.frame(index)
                cams, probs, fsize, _ = detector.maps(fr.image, "GRAY8")
                prob = float(probs[detector.class_indices[0]])
                gts = [o.box for o in fr.objects if o.label == detector.class_names[0]]
                correct += (prob >= detector.min_score) == bool(gts)
                total += 1
                if positive:
                    items.append((cams[0], prob, fsize, gts))
            if progress and (k + 1) % 20 == 0:
                print(f"\reval: {k + 1}/{frames} frames", end="", file=sys.stderr, flush=True)
    finally:
        detector.engine.close()
    if progress:
        print(file=sys.stderr)
    result: dict[str, Any] = {
        "model": cfg.processor.model, "seed": seed, "scenes": scenes, "frames": frames,
        **_score(detector, items, detector.threshold),
        "presence_accuracy": round(correct / total, 4) if total else None,
        "cam_threshold": detector.threshold, "min_score": detector.min_score,
    }
    if sweep:
        curve = {t: _score(detector, items, t)["localization_accuracy"] for t in SWEEP}
        best = max(curve, key=lambda t: curve[t] or 0.0)
        result["threshold_curve"] = {str(t): v for t, v in curve.items()}
        result["max_box_acc"] = curve[best]
        result["best_threshold"] = best
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
    return result
