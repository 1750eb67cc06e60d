"""`streamcam eval`: how well a pipeline *config* localizes people on held-out synthetic IR frames.

It runs the *pipeline's* processing code (the same :class:`Detector`, thresholds and
score gate as the live processor) on frames of scene seeds the default model was not
trained on, and scores the boxes with the CAM paper's criterion: a ground-truth
person is localized when a box overlaps it with IoU >= 0.5 (1:1 matching). The same
maps are also scored over a sweep of CAM thresholds (the curve Choe et al., CVPR 2020,
use for MaxBoxAcc), so the operating point can be seen against the best one.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


from ..config import PipelineConfig

SWEEP = tuple(round(0.05 * k, 2) for k in range(1, 20))


def run_eval(cfg: PipelineConfig, frames: int = 200, seed: int = 9000, out: str | None = None,
             scenes: int = 4, progress: bool = True, sweep: bool = True) -> dict[str, Any]:
    from .localization import evaluate_detector
    from ..processor.stage import build_detector

    detector = build_detector(cfg)
    src = cfg.streams[0].source
    size = dict(width=src.width, height=src.height) if src.kind == "synthetic" else {}
    t0 = time.perf_counter()
    try:
        r = evaluate_detector(detector, frames, seed, scenes, size, SWEEP if sweep else (), progress)
    finally:
        detector.engine.close()

    def rounded(v):
        return None if v != v else round(v, 4)  # NaN (nothing to divide by) is null in the JSON

    result: dict[str, Any] = {
        "model": cfg.processor.model, "seed": seed, "scenes": scenes, "frames": frames,
        **{k: r[k] for k in ("persons", "localized", "predicted_boxes")},
        **{k: rounded(r[k]) for k in ("localization_accuracy", "box_precision", "mean_best_iou", "presence_accuracy")},
        "cam_threshold": detector.threshold, "min_score": detector.min_score,
    }
    if sweep:
        result["threshold_curve"] = {str(t): rounded(v) for t, v in r["threshold_curve"].items()}
        result["max_box_acc"] = rounded(r["max_box_acc"])
        result["best_threshold"] = r["best_threshold"]
    result["seconds"] = round(time.perf_counter() - t0, 1)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
    return result
