"""The full-frame few-shot recipe on thermal frames: ImageNet trunk on replicated grey vs the IR trunk.

    python -m tools.fewshot_thermal_mil [--seed 0] [--out /tmp/m.onnx]

What `make finetune-check` measures for the IR trunk's windows recipe (20 + 20 pictures of
training scenes 2000..2004, calibrated on synthetic validation scenes 5000..5002, tested on
held-out scenes 9000..9003), for the default of `streamcam train DATA --out M.onnx` with no flag:
20 whole grey frames with people (anywhere) and 20 without, MobileNetV2's ImageNet trunk at stride
16 on the grey frame replicated to three channels, the multiple-instance head. Tested through the
pipeline's Detector (its presence and box rule), 50 frames with people and 25 without per test
scene: classification, localization (IoU >= 0.5, 1:1) and box precision.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np


def main(argv: list[str] | None = None) -> int:
    from streamcam.datasets.synthetic import SyntheticIRScene
    from streamcam.evaluation.calibration import calibrate, synthetic_frames, write_calibration
    from streamcam.evaluation.localization import match_boxes
    from streamcam.processor.detector import Detector
    from streamcam.processor.engines import create_engine
    from streamcam.training.finetune import FinetuneConfig, finetune

    ap = argparse.ArgumentParser(prog="tools.fewshot_thermal_mil", description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="keep the model here")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        for c in ("person", "empty"):
            (root / c).mkdir(parents=True)
        rng = np.random.default_rng(a.seed)
        for k in range(20):
            s = 2000 + k % 5
            for c, people in (("person", 4), ("empty", 0)):
                fr = SyntheticIRScene(seed=s, people=people).frame(int(rng.integers(0, 2000)))
                cv2.imwrite(str(root / c / f"{k:02d}.png"), fr.image)
        model = a.out or str(Path(tmp) / "m.onnx")
        train = finetune(FinetuneConfig(data=str(root), out=model, seed=a.seed, progress=False))
        cal = calibrate(model, synthetic_frames())
        write_calibration(model, cal)
        det = Detector(create_engine(model))
        hits = total = found = 0
        right = []
        for s in range(9000, 9004):
            for people in (4, 0):
                scene = SyntheticIRScene(seed=s, people=people)
                for i in range(50 if people else 25):
                    fr = scene.frame(i * 37)
                    gts = [o.box for o in fr.objects if o.label == "person"]
                    res = det.detect(fr.image, "GRAY8")
                    boxes = [d.box for d in res.detections]
                    right.append(bool(res.probs[det.class_indices[0]] >= 0.5) == bool(gts))
                    if people:
                        hits, total, found = hits + len(match_boxes(boxes, gts, 0.5)), total + len(gts), found + len(boxes)
        det.engine.close()
    out = {"classification": round(float(np.mean(right)), 3), "localization": round(hits / max(total, 1), 3),
           "precision": round(hits / max(found, 1), 3), "persons": total, "seed": a.seed,
           "train_seconds": train["metrics"]["train_seconds"],
           "calibration": {k: cal.get(k) for k in ("input_width", "input_height", "cam_floor", "peak_boxes",
                                                   "val_localization_accuracy", "val_peak_localization_accuracy")}}
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
