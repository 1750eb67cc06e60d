"""Few-shot on real footage, as a user with one camera would: teach, calibrate, test on new people.

    python -m tools.fewshot_real [--seq PETS09-S3-MF1 ...] [--out docs/quality/fewshot-real.json]
                                 [--ship engines/person-rgb.onnx --ship-from PETS09-S3-MF1] [--keep DIR]

Protocol (issue "Real cameras"), for each shared sequence (``../shared/data/real``):

* **train** on the first half, image-level labels only: 20 frames with people (evenly spaced),
  and, since these cameras never show an empty scene, empty plates made from the same footage
  (``streamcam.training.data.empty_plate``: the temporal median of the first half and of its two
  halves: 3 pictures);
* **calibrate** the box rule on 15 other first-half frames with their boxes (``streamcam calibrate
  --labels``);
* **test** on the second half (people never seen in training): ``streamcam eval --mot`` with
  ``configs/camera.yaml``.

Everything runs with the defaults of ``streamcam train`` (no recipe flag), through the same files
and commands a user would have (a class folder, a VAL.json). ``--ship`` copies the model trained
on ``--ship-from`` to that path (the shipped visible default) and evaluates it on the other
sequences too, recalibrated on their first half (a new camera: 15 boxed frames, no training) and
as shipped.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TRAIN_FRAMES, CAL_FRAMES = 20, 15


def make_protocol_data(seq, work: Path) -> tuple[Path, Path]:
    """``work/data/{person,empty}`` and ``work/val/VAL.json`` from the first half of ``seq``."""
    from streamcam.training.data import empty_plate

    first = seq.half("first").frames
    pick = sorted({int(round(v)) for v in np.linspace(0, len(first) - 1, TRAIN_FRAMES)})
    rest = [i for i in range(len(first)) if i not in pick]
    cal = [rest[int(round(v))] for v in np.linspace(0, len(rest) - 1, min(CAL_FRAMES, len(rest)))]
    data = work / "data"
    (data / "person").mkdir(parents=True)
    (data / "empty").mkdir(parents=True)
    for i in pick:
        shutil.copy(first[i].path, data / "person" / first[i].path.name)
    images = [cv2.imread(str(f.path)) for f in first]
    k = len(images) // 2
    for name, part in (("plate-all", images), ("plate-a", images[:k]), ("plate-b", images[k:])):
        cv2.imwrite(str(data / "empty" / f"{name}.png"), empty_plate(part))
    val = work / "val"
    val.mkdir()
    entries = []
    for i in cal:
        f = first[i]
        shutil.copy(f.path, val / f.path.name)
        entries.append({"image": f.path.name, "boxes": [list(map(float, b)) for _, b in f.gt]})
    (val / "VAL.json").write_text(json.dumps({"frames": entries}))
    return data, val / "VAL.json"


def evaluate(model: Path, seq_dir: Path) -> dict:
    from streamcam.config import load_config
    from streamcam.evaluation.real import evaluate_mot

    cfg = load_config(ROOT / "configs" / "camera.yaml", {"processor.model": str(model.resolve())})
    return evaluate_mot(cfg, [str(seq_dir)], half="second", progress=False)["sequences"][0]


def calibrate_on(model: Path, labels: Path) -> dict:
    from streamcam.evaluation.calibration import calibrate, labelled_frames, write_calibration

    result = calibrate(str(model), labelled_frames(labels))
    result["source"] = "labels VAL.json (15 first-half frames)"
    write_calibration(str(model), result)
    return result


def main(argv: list[str] | None = None) -> int:
    from streamcam.evaluation.mot import find_sequences, read_sequence, real_data_dir
    from streamcam.cli import parse_settings
    from streamcam.training.finetune import FinetuneConfig, finetune

    ap = argparse.ArgumentParser(prog="tools.fewshot_real", description=__doc__.splitlines()[0])
    ap.add_argument("--seq", nargs="*", help="sequence names (default: all under ../shared/data/real)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="write the results JSON here")
    ap.add_argument("--ship", help="copy the model trained on --ship-from here")
    ap.add_argument("--ship-from", default="PETS09-S3-MF1")
    ap.add_argument("--keep", help="keep each sequence's trained, calibrated model here as SEQ.onnx")
    ap.add_argument("--backbone", help="streamcam train --backbone (default: the train default)")
    ap.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                    help="another streamcam train setting (a FinetuneConfig field, YAML value), e.g. flip_average=true")
    a = ap.parse_args(argv)
    extra = parse_settings(a.train_set, "--train-set")
    root = real_data_dir(ROOT)
    dirs = [d for d in find_sequences(root) if not a.seq or d.name in a.seq]
    if not dirs:
        print(f"tools.fewshot_real: no sequences under {root}", file=sys.stderr)
        return 2
    results, rows = {"protocol": __doc__.split("Protocol")[1].split("Everything")[0].strip(), "sequences": {},
                     "train_settings": {**({"backbone": a.backbone} if a.backbone else {}), **extra}}, []
    with tempfile.TemporaryDirectory() as tmp:
        models = {}
        for d in dirs:
            seq = read_sequence(d)
            work = Path(tmp) / seq.name
            data, labels = make_protocol_data(seq, work)
            model = work / "person.onnx"
            train = finetune(FinetuneConfig(data=str(data), out=str(model), seed=a.seed, progress=False,
                                            **({"backbone": a.backbone} if a.backbone else {}), **extra))
            cal = calibrate_on(model, labels)
            row = evaluate(model, d)
            models[seq.name] = (model, labels)
            if a.keep:
                Path(a.keep).mkdir(parents=True, exist_ok=True)
                shutil.copy(model, Path(a.keep) / f"{seq.name}.onnx")
            results["sequences"][seq.name] = {"train": {k: train[k] for k in ("metrics", "total_seconds")},
                                              "calibration": cal, "test": row}
            rows.append((seq.name, "few-shot (own camera)", row))
            print(f"{seq.name}: {json.dumps(_brief(row))}", file=sys.stderr, flush=True)
        if a.ship and a.ship_from in models:
            ship = Path(a.ship)
            shutil.copy(models[a.ship_from][0], ship)
            for name, (_, labels) in models.items():
                if name == a.ship_from:
                    continue
                row = evaluate(ship, root / name)
                rows.append((name, f"{ship.name} as shipped", row))
                recal = Path(tmp) / f"{name}-recal.onnx"
                shutil.copy(ship, recal)
                calibrate_on(recal, labels)
                row2 = evaluate(recal, root / name)
                rows.append((name, f"{ship.name} + 15 boxed frames (calibrate only)", row2))
                results["sequences"][name]["shipped"] = {"as_shipped": row, "recalibrated": row2}
    report(rows, results, a.out)
    return 0


def report(rows: list, results: dict, out: str | None) -> None:
    """Print ``(sequence, model, eval --mot row)`` as a markdown table; write ``results`` to ``out``."""
    print("| sequence | model | localization | precision | MOTA | IDF1 | ID sw. | raw loc | raw MOTA | ms/frame |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, what, row in rows:
        b = _brief(row)
        print(f"| {name} | {what} | {b['loc']:.3f} | {b['prec']:.3f} | {b['mota']:.3f} | {b['idf1']:.3f} | "
              f"{b['idsw']} | {b['raw_loc']:.3f} | {b['raw_mota']:.3f} | {b['ms']:.1f} |")
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(results, indent=1, default=str) + "\n")


def _brief(row: dict) -> dict:
    s, r = row["stabilized"], row["raw"]
    return {"loc": s["localization"], "prec": s["precision"], "mota": s["mota"], "idf1": s["idf1"],
            "idsw": s["id_switches"], "raw_loc": r["localization"], "raw_mota": r["mota"],
            "ms": row.get("ms_per_frame", {}).get("total") or 0.0}


if __name__ == "__main__":
    raise SystemExit(main())
