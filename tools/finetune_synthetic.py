"""Fine-tune from <= 20 pictures per class of the synthetic IR scene, image-level labels only; evaluate held out.

    python tools/finetune_synthetic.py [--per-class 20] [--weights engines/ir-objects-tiny_gap.pt|none] \
        [--seed 0] [--out /tmp/ft.onnx] [--write docs/quality/finetune.json]

The seed's workflow: a network trained for a problem P (``engines/ir-objects-tiny_gap.pt``: which
IR object a crop holds, background/car/lamp/animal, on person-free scenes; it never saw a person)
gets a new head and is fine-tuned on a few pictures of problem Q (person / no person).

1. write what a user collects into ``root/<class>/*.png``: ``per_class`` pictures of a person
   (roughly centred, with surroundings: crops of frames of training scenes 2000..2004) and
   ``per_class`` whole frames of the same scenes without people. No box is written;
2. ``streamcam train`` on it with windows at the live scale (``--window``, ``--context``,
   ``--image-scale``; :class:`streamcam.training.data.WindowSampler`): head first, then the
   whole net;
3. calibrate the box rule and the decision bias on validation scenes 5000..5002
   (``streamcam calibrate``, as for the default model);
4. test with ``streamcam eval``'s protocol on held-out scenes 9000..9003: classification (frames with
   / without people, target >= 90 %) and localization accuracy (per GT person, a 1:1 matched box with
   IoU >= 0.5, target >= 60 %), plus WSOL metrics of the person CAM (MaxBoxAcc, pointing game).
"""

from __future__ import annotations

import argparse
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
sys.path.insert(0, str(ROOT / "tools"))

DEFAULT_WEIGHTS = "engines/ir-objects-tiny_gap.pt"

TARGET_CLS, TARGET_LOC = 0.90, 0.60


WINDOW, CONTEXT, SCALE, JITTER = (96, 72), 48, 0.5, 16
"""Input px a label speaks for, its unpooled margin, frame px -> input px (640x480 -> 320x240), and
the random shift of a person picture's window."""


def write_folder(root: Path, per_class: int, seed: int = 2000, scenes: int = 5) -> dict:
    """What a user collects: ``person/`` pictures of one person each (roughly centred, with their
    surroundings: a crop of a training frame, 2 x (window + 2 context) px), ``no_person/`` whole
    frames of the same scenes without anyone. No box is written anywhere."""
    from streamcam.datasets.synthetic import SyntheticIRScene

    rng = np.random.default_rng(seed)
    counts = {"person": 0, "no_person": 0}
    for c in counts:
        (root / c).mkdir(parents=True, exist_ok=True)
    # a window plus room for the trainer's random shift (JITTER input px each side)
    pw, ph = (int((v + 2 * CONTEXT + 2 * JITTER) / SCALE) for v in WINDOW)
    k = 0
    while counts["person"] < per_class:
        fr = SyntheticIRScene(seed=seed + k % scenes, people=4).frame(int(rng.integers(0, 30 * 300)))
        k += 1
        fits = [o.box for o in fr.persons if o.box[3] - o.box[1] <= WINDOW[1] / SCALE]
        if not fits:
            continue
        x0, y0, x1, y1 = fits[int(rng.integers(0, len(fits)))]
        cx, cy = (x0 + x1) / 2 + rng.uniform(-16, 16), (y0 + y1) / 2 + rng.uniform(-16, 16)
        padded = cv2.copyMakeBorder(fr.image, ph, ph, pw, pw, cv2.BORDER_REFLECT_101)
        ox, oy = int(round(cx - pw / 2)) + pw, int(round(cy - ph / 2)) + ph
        cv2.imwrite(str(root / "person" / f"{counts['person']:03d}.png"), padded[oy:oy + ph, ox:ox + pw])
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


def run(per_class: int = 20, backbone: str = "tiny_gap", weights: str | None = DEFAULT_WEIGHTS, out: str | None = None,
        epochs: int = 12, input_size: tuple[int, int] | None = None, samples_per_epoch: int = 256,
        max_minutes: float = 8.0, test_frames: int = 200, unfreeze: bool = True, lr: float | None = None,
        unfreeze_epochs: int = 6, lr_unfrozen: float = 3e-3, jitter: int = JITTER, val_fraction: float = 0.1,
        brightness: float = 0.06, contrast: float = 0.15, patience: int = 99, seed: int = 0,
        average_epochs: int = 0, ensemble: int = 1, flip_average: bool = False) -> dict:
    from streamcam.config import load_config
    from streamcam.evaluation.pipeline import run_eval
    from streamcam.evaluation.calibration import calibrate, synthetic_frames, synthetic_source, write_calibration
    from streamcam.processor.model_meta import read_metadata
    from streamcam.training.backbones import pretrained_info
    from streamcam.training.finetune import finetune

    t0 = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="ft-synth-"))
    counts = write_folder(tmp / "data", per_class)
    out = out or str(tmp / "model.onnx")
    if weights is None:  # nothing frozen to start from: the whole net trains for both phases' steps
        epochs, unfreeze_epochs = epochs + unfreeze_epochs, 0
    cfg = {"data": str(tmp / "data"), "backbone": backbone, "weights": weights, "out": out, "epochs": epochs,
           "input_size": input_size, "samples_per_epoch": samples_per_epoch, "val_fraction": val_fraction,
           "window_jitter": jitter, "brightness": brightness, "contrast": contrast, "seed": seed,
           "average_epochs": average_epochs, "ensemble": ensemble, "flip_average": flip_average,
           "patience": patience, "positive_classes": ("person",), "max_minutes": max_minutes, "progress": False,
           "threads": 1, "unfreeze": unfreeze, "unfreeze_epochs": unfreeze_epochs, "lr": lr,
           "lr_unfrozen": lr_unfrozen, "window": WINDOW, "context": CONTEXT, "image_scale": SCALE}
    r = finetune(cfg)
    # Box rule and decision bias on validation scenes (5000..), as for the default model.
    val_seeds, val_frames = (5000, 5001, 5002), 25
    cal = calibrate(out, synthetic_frames(val_seeds, val_frames))
    cal["source"] = synthetic_source(val_seeds, val_frames)
    write_calibration(out, cal)
    pipeline = load_config(ROOT / "configs" / "default.yaml", {"processor.model": str(Path(out).resolve())})
    test = run_eval(pipeline, frames=test_frames, seed=9000, scenes=4, progress=False, sweep=False)
    wsol = wsol_person(out, 60, 9000, 3)
    info = pretrained_info(weights) if weights else {}
    meta = read_metadata(out)
    cmd = "python tools/finetune_synthetic.py " + " ".join(shlex.quote(a) for a in _recipe_args(sys.argv[1:]))
    res = {
        "command": cmd.strip(),
        "recipe": {"per_class": per_class, "backbone": backbone,
                   "weights": (f"{weights}: pretrained on problem P = {info.get('problem', '?')}" if weights
                               else "none (random init)"),
                   "unfreeze": unfreeze, "lr": lr, "lr_unfrozen": lr_unfrozen, "epochs": epochs,
                   "unfreeze_epochs": unfreeze_epochs, "window_jitter": jitter, "val_fraction": val_fraction,
                   "brightness": brightness, "contrast": contrast, "seed": seed, "average_epochs": average_epochs, "ensemble": ensemble,
                   "flip_average": flip_average, "window": list(WINDOW), "context": CONTEXT, "image_scale": SCALE, "input_size": [meta.input_width, meta.input_height],
                   "samples_per_epoch": samples_per_epoch,
                   "labels": "image-level only: person/ = pictures of a person (centred, with surroundings), "
                             "no_person/ = whole frames without people; no boxes",
                   "train_scenes": "2000..2004 (5 scenes)"},
        "train_images": counts, "train": r["metrics"], "export_check": r["export_check"],
        "box_calibration": cal,
        "test": {"protocol": "streamcam eval (configs/default.yaml with this model), scene seeds 9000..9003",
                 "classification_accuracy": test["presence_accuracy"],
                 "localization_accuracy": test["localization_accuracy"], "persons": test["persons"],
                 "box_precision": test["box_precision"], "mean_best_iou": test["mean_best_iou"],
                 "wsol_person_cam": wsol},
        "targets": {"classification_accuracy": TARGET_CLS, "localization_accuracy": TARGET_LOC},
        "verdict": {"classification": "PASS" if test["presence_accuracy"] >= TARGET_CLS else "MISSED",
                    "localization": "PASS" if test["localization_accuracy"] >= TARGET_LOC else "MISSED"},
        "seconds": round(time.time() - t0, 1),
    }
    return res


def _recipe_args(argv: list[str]) -> list[str]:
    """The command line without ``--out PATH``: where the model went is not part of the recipe."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--out":
            skip = True
        elif not a.startswith("--out="):
            out.append(a)
    return out


def main(argv=None) -> int:
    global WINDOW
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=20)
    ap.add_argument("--backbone", default="tiny_gap", choices=["tiny_gap", "mobilenet_v3_small"])
    ap.add_argument("--weights", default=DEFAULT_WEIGHTS,
                    help="pretrained trunk (problem P) to start from, or 'none' for random init")
    ap.add_argument("--lr", type=float, help="head-phase learning rate (default: streamcam train's)")
    ap.add_argument("--head-only", action="store_true", help="keep the trunk frozen (no second phase)")
    ap.add_argument("--epochs", type=int, default=2, help="head-only epochs before the trunk is unfrozen")
    ap.add_argument("--unfreeze-epochs", type=int, default=6)
    ap.add_argument("--lr-unfrozen", type=float, default=3e-3)
    ap.add_argument("--input-size", help="WxH (default: the pretrained trunk's, else 320x240)")
    ap.add_argument("--jitter", type=int, default=JITTER, help="random shift (input px) of a person picture's window")
    ap.add_argument("--val-fraction", type=float, default=0.1)
    ap.add_argument("--window", help=f"WxH input px a person picture's label speaks for (default {WINDOW[0]}x{WINDOW[1]})")
    ap.add_argument("--seed", type=int, default=0, help="training seed (the pictures stay the same)")
    ap.add_argument("--average-epochs", type=int, default=0, help="average the weights of the last n epochs")
    ap.add_argument("--ensemble", type=int, default=1,
                    help="members fine-tuned from seeds SEED, SEED+1, ... and exported as their average")
    ap.add_argument("--flip-average", action="store_true",
                    help="export each member averaged with itself on the mirrored frame")
    ap.add_argument("--samples-per-epoch", type=int, default=1600)
    ap.add_argument("--max-minutes", type=float, default=8.0, help="training time cap")
    ap.add_argument("--out", help="ONNX to write (default: a temp dir)")
    ap.add_argument("--write", help="write the results JSON here (docs/quality/finetune.json)")
    a = ap.parse_args(argv)
    if a.window:
        WINDOW = tuple(int(v) for v in a.window.split("x"))
    size = tuple(int(v) for v in a.input_size.split("x")) if a.input_size else None
    weights = None if str(a.weights).lower() == "none" else a.weights
    res = run(a.per_class, a.backbone, weights, a.out, a.epochs, size, a.samples_per_epoch, a.max_minutes,
              unfreeze=not a.head_only, lr=a.lr, unfreeze_epochs=a.unfreeze_epochs, lr_unfrozen=a.lr_unfrozen,
              jitter=a.jitter, val_fraction=a.val_fraction, seed=a.seed, average_epochs=a.average_epochs,
              ensemble=a.ensemble, flip_average=a.flip_average)
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
