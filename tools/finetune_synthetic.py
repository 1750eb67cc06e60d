"""Fine-tune from <= 20 frames per class of the synthetic IR scene, image-level labels only; evaluate held out.

    python tools/finetune_synthetic.py [--per-class 20] [--backbone tiny_gap] [--out /tmp/ft-synth.onnx] \
        [--write docs/quality/finetune.json]

No pretrained weights exist for the thermal domain (and torchvision's cannot be downloaded here), so
the net starts from random init (``weights=None``): this measures the few-shot recipe alone.

1. write ``per_class`` ``person`` frames (>= 1 GT person; the boxes are *not* written) and
   ``per_class`` ``no_person`` frames (the same scenes rendered with ``people=0``) of training
   scene seeds 2000.. into ``root/<class>/*.png``: exactly what a user's folder looks like;
2. ``streamcam.training.finetune`` on it (``streamcam train``);
3. choose the CAM box threshold on validation scenes (seed 5000..) by the localization-accuracy
   sweep (:func:`streamcam.evaluation.localization.sweep_thresholds`), store it in the model;
4. test on held-out scenes (seed 9000..): classification accuracy (frames with / without people,
   target >= 90 %) and localization accuracy (per GT person, 1:1 matched box with IoU >= 0.5, the
   streamcam box rule, target >= 60 %), plus WSOL metrics of the person CAM (MaxBoxAcc, pointing game).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_CLS, TARGET_LOC = 0.90, 0.60


def write_folder(root: Path, per_class: int, seed: int = 2000, scenes: int = 5) -> dict:
    from streamcam.capture.synthetic import SyntheticIRScene

    rng = np.random.default_rng(seed)
    counts = {"person": 0, "no_person": 0}
    for c in counts:
        (root / c).mkdir(parents=True, exist_ok=True)
    k = 0
    while counts["person"] < per_class:
        s = seed + k % scenes
        fr = SyntheticIRScene(seed=s, people=4).frame(int(rng.integers(0, 30 * 300)))
        k += 1
        if len(fr.persons) == 0:
            continue
        cv2.imwrite(str(root / "person" / f"{counts['person']:03d}.png"), fr.image)
        counts["person"] += 1
    for i in range(per_class):
        fr = SyntheticIRScene(seed=seed + i % scenes, people=0).frame(int(rng.integers(0, 30 * 300)))
        cv2.imwrite(str(root / "no_person" / f"{i:03d}.png"), fr.image)
        counts["no_person"] += 1
    return counts


def wsol_person(model_path: str, frames: int, seed: int, scenes: int) -> dict:
    from streamcam.evaluation.localization import infer_synthetic
    from streamcam.evaluation.wsol import WSOLEvaluator
    from streamcam.processor.cam import upsample

    r = infer_synthetic(model_path, frames, seed, scenes, negatives=0)
    fw, fh = r["frame_size"]
    ev = WSOLEvaluator(thresholds=[round(t, 2) for t in np.arange(0, 1, 0.05)])
    for cam, gt in zip(r["cams"], r["gts"]):
        if gt:
            ev.update(upsample(np.maximum(cam, 0), (fh, fw)), gt)
    return ev.result()


def run(per_class: int = 20, backbone: str = "tiny_gap", out: str | None = None, epochs: int = 12,
        input_size: tuple[int, int] = (160, 120), samples_per_epoch: int = 256, max_minutes: float = 5.0,
        test_frames: int = 60) -> dict:
    from streamcam.evaluation.localization import evaluate_synthetic, sweep_thresholds
    from streamcam.processor.model_meta import read_metadata
    from streamcam.training.export import export_onnx
    from streamcam.training.finetune import finetune

    t0 = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="ft-synth-"))
    counts = write_folder(tmp / "data", per_class)
    out = out or str(tmp / "model.onnx")
    cfg = {"data": str(tmp / "data"), "backbone": backbone, "weights": None, "out": out, "epochs": epochs,
           "input_size": input_size, "samples_per_epoch": samples_per_epoch, "val_fraction": 0.2,
           "patience": 4, "positive_classes": ("person",), "max_minutes": max_minutes, "progress": False,
           "augment_scale": (0.7, 1.0), "threads": 1}
    r = finetune(cfg)
    thresholds = [0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
    sweep = sweep_thresholds(out, thresholds, frames=45, seed=5000, scenes=3)
    best_t = max(sweep, key=lambda t: (sweep[t], -abs(t - 0.5)))
    meta = read_metadata(out)
    meta = dataclasses.replace(meta, cam_threshold=best_t,
                               provenance={**meta.provenance, "cam_threshold_sweep": {str(k): v for k, v in sweep.items()}})
    export_onnx(r["model"], out, meta)
    test = evaluate_synthetic(out, frames=test_frames, seed=9000, scenes=3)
    wsol = wsol_person(out, test_frames, 9000, 3)
    cmd = "python tools/finetune_synthetic.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    res = {
        "command": cmd.strip(),
        "recipe": {"per_class": per_class, "backbone": backbone, "weights": "none (random init: no thermal "
                   "pretrained weights exist, torchvision's cannot be downloaded here)", "epochs": epochs,
                   "input_size": list(input_size), "samples_per_epoch": samples_per_epoch,
                   "labels": "image-level only (person / no_person)"},
        "train_images": counts, "train": r["metrics"], "export_check": r["export_check"],
        "val_threshold_sweep": {str(k): v for k, v in sweep.items()}, "cam_threshold": best_t,
        "test": {"scene_seeds": "9000..9002 (held out)",
                 "classification_accuracy": test["classification_accuracy"],
                 "classification_frames": test["classification_frames"],
                 "localization_accuracy": test["localization_accuracy"], "persons": test["persons"],
                 "box_precision": test["box_precision"], "mean_iou": test["mean_iou"], "wsol_person_cam": wsol},
        "targets": {"classification_accuracy": TARGET_CLS, "localization_accuracy": TARGET_LOC},
        "verdict": {"classification": "PASS" if test["classification_accuracy"] >= TARGET_CLS else "MISSED",
                    "localization": "PASS" if test["localization_accuracy"] >= TARGET_LOC else "MISSED"},
        "seconds": round(time.time() - t0, 1),
    }
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--backbone", default="tiny_gap", choices=["tiny_gap", "mobilenet_v3_small"])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--input-size", default="160x120")
    ap.add_argument("--samples-per-epoch", type=int, default=256)
    ap.add_argument("--max-minutes", type=float, default=5.0, help="training time cap (the whole run stays < 8 min)")
    ap.add_argument("--out", help="ONNX to write (default: a temp dir)")
    ap.add_argument("--write", help="write the results JSON here (docs/quality/finetune.json)")
    a = ap.parse_args(argv)
    w, h = (int(v) for v in a.input_size.split("x"))
    res = run(a.per_class, a.backbone, a.out, a.epochs, (w, h), a.samples_per_epoch, a.max_minutes)
    text = json.dumps(res, indent=2)
    print(text)
    t = res["test"]
    print(f"classification {t['classification_accuracy']:.3f} (target {TARGET_CLS}) {res['verdict']['classification']}; "
          f"localization {t['localization_accuracy']:.3f} (target {TARGET_LOC}) {res['verdict']['localization']}; "
          f"{res['seconds']} s", file=sys.stderr)
    if a.write:
        Path(a.write).parent.mkdir(parents=True, exist_ok=True)
        Path(a.write).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
