"""`streamcam eval`: how well a pipeline config localizes people on held-out synthetic IR frames.

It runs the *pipeline's* processing code (the same :class:`Detector`, thresholds and
score gate as the live processor) on frames of scene seeds the default model was not
trained on, and scores the boxes with the CAM paper's criterion: a ground-truth
person is localized when a box overlaps it with IoU >= 0.5 (1:1 matching).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .config import PipelineConfig


def run_eval(cfg: PipelineConfig, frames: int = 200, seed: int = 1001, out: str | None = None,
             scenes: int = 4, progress: bool = True) -> dict[str, Any]:
    from .capture.synthetic import SyntheticIRScene
    from .evaluation.localization import iou, match_boxes
    from .processor.stage import build_detector

    detector = build_detector(cfg)
    src = cfg.streams[0].source
    size = dict(width=src.width, height=src.height) if src.kind == "synthetic" else {}
    pos_scenes = [SyntheticIRScene(seed=seed + k, **size) for k in range(scenes)]
    neg_scenes = [SyntheticIRScene(seed=seed + k, people=0, **size) for k in range(scenes)]
    hits = n_gt = n_pred = 0
    ious: list[float] = []
    correct = total = 0
    t0 = time.perf_counter()
    try:
        for k in range(frames):
            index = (k // scenes) * 97  # ~3 s apart: new positions, poses and people
            for scene, positive in ((pos_scenes[k % scenes], True), (neg_scenes[k % scenes], False)):
                if not positive and k % 2:
                    continue  # half as many negatives: enough for classification accuracy
                fr = scene.frame(index)
                r = detector.detect(fr.image, "GRAY8")
                gts = [o.box for o in fr.objects if o.label == "person"]
                boxes = [d.box for d in r.detections]
                present = bool(boxes)
                correct += present == bool(gts)
                total += 1
                if positive:
                    m = match_boxes(boxes, gts, 0.5)
                    hits += len(m)
                    n_gt += len(gts)
                    n_pred += len(boxes)
                    ious += [max((iou(b, g) for b in boxes), default=0.0) for g in gts]
            if progress and (k + 1) % 20 == 0:
                print(f"\reval: {k + 1}/{frames} frames, localization {hits / max(n_gt, 1):.3f}", end="",
                      file=sys.stderr, flush=True)
    finally:
        detector.engine.close()
    if progress:
        print(file=sys.stderr)
    result = {
        "model": cfg.processor.model, "seed": seed, "scenes": scenes, "frames": frames,
        "persons": n_gt, "localized": hits,
        "localization_accuracy": round(hits / n_gt, 4) if n_gt else None,
        "box_precision": round(hits / n_pred, 4) if n_pred else None,
        "mean_best_iou": round(float(np.mean(ious)), 4) if ious else None,
        "presence_accuracy": round(correct / total, 4) if total else None,
        "cam_threshold": detector.threshold, "min_score": detector.min_score,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
    return result
