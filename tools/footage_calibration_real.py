"""A new camera with no box drawn: peak models calibrated on the first half's footage, tested on the second.

    python -m tools.footage_calibration_real [--model engines/person-rgb.onnx] [--own DIR]
                                             [--seq TUD-Campus ...] [--out docs/quality/footage-calibration-real.json]

For each shared sequence (``../shared/data/real``), each model is copied and calibrated by
``streamcam calibrate --footage`` on the first half's frames (their lone walkers as boxes, nobody's
box read: :mod:`streamcam.evaluation.footage`), then scored on the second half by ``streamcam eval
--mot`` with ``configs/camera.yaml``, beside the same model as it was. ``--model``: the shipped
visible default (trained on PETS09's first half). ``--own DIR``: each camera's own few-shot model,
``DIR/SEQ.onnx`` (``python -m tools.fewshot_real --keep DIR``), so that the whole path runs on
image-level labels alone: trained from 20 + 3 labelled pictures, calibrated from footage. The
pseudo boxes' quality is measured against the first half's ground truth (read for that figure only).
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]


def walker_quality(model: Path, seq, frames) -> dict:
    """How many of the first half's walker boxes, at the calibrated input size, are a labelled person."""
    from streamcam.evaluation.footage import footage_items, foreground_mask, plausible_walkers
    from streamcam.geometry import iou
    from streamcam.processor.detector import Detector
    from streamcam.processor.engines import create_engine
    from streamcam.processor.background import empty_plate

    det = Detector(create_engine(str(model)), min_score=0.0)  # at the input size the calibration wrote
    plate = empty_plate(frames)
    try:
        items = footage_items(det, frames, [foreground_mask(f, plate) for f in frames], "BGR8", keep_empty=True)
    finally:
        det.engine.close()
    good = total = 0
    for f, (_, boxes, _, _) in zip(seq.frames, plausible_walkers(items, keep_empty=True)):
        gts = [b for _, b in f.gt]
        for b in boxes:
            total += 1
            good += max([iou(b, g) for g in gts] or [0.0]) >= 0.5
    return {"walkers": total, "a_person_at_iou_0.5": round(good / max(total, 1), 3)}


def main(argv: list[str] | None = None) -> int:
    from streamcam.evaluation.calibration import write_calibration
    from streamcam.evaluation.footage import calibrate_from_footage
    from streamcam.evaluation.mot import find_sequences, read_sequence, real_data_dir
    from tools.fewshot_real import _brief, evaluate, report

    ap = argparse.ArgumentParser(prog="tools.footage_calibration_real", description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(ROOT / "engines" / "person-rgb.onnx"))
    ap.add_argument("--own", help="a folder of each camera's own few-shot model, SEQ.onnx")
    ap.add_argument("--seq", nargs="*", help="sequence names (default: all under ../shared/data/real)")
    ap.add_argument("--out", help="write the results JSON here")
    a = ap.parse_args(argv)
    root = real_data_dir(ROOT)
    dirs = [d for d in find_sequences(root) if not a.seq or d.name in a.seq]
    if not dirs:
        print(f"tools.footage_calibration_real: no sequences under {root}", file=sys.stderr)
        return 2
    results, rows = {"protocol": __doc__.split("\n\n")[2].strip(), "sequences": {}}, []
    with tempfile.TemporaryDirectory() as tmp:
        for d in dirs:
            seq = read_sequence(d)
            first = seq.half("first")
            frames = [cv2.imread(str(f.path)) for f in first.frames]
            models = [("shipped", Path(a.model))]
            own = Path(a.own or ".") / f"{seq.name}.onnx"
            if a.own and own.is_file() and not filecmp.cmp(own, a.model, shallow=False):  # the shipped one is PETS09's
                models.append(("own few-shot", own))
            entry = {}
            for what, model in models:
                copy = Path(tmp) / f"{seq.name}-{what.replace(' ', '-')}.onnx"
                shutil.copy(model, copy)
                cal = calibrate_from_footage(str(copy), frames, "BGR8")
                cal["source"] = f"footage: the {len(frames)} first-half frames"
                write_calibration(str(copy), cal)
                cal["walker_boxes"] = walker_quality(copy, first, frames)
                before = evaluate(model, d)
                after = evaluate(copy, d)
                entry[what] = {"model": model.name, "calibration": cal, "as_it_was": before, "footage_calibrated": after}
                rows += [(seq.name, f"{what} ({model.name}) as it was", before),
                         (seq.name, f"{what}, calibrated from footage", after)]
                print(f"{seq.name} {what}: {json.dumps(_brief(after))}", file=sys.stderr, flush=True)
            results["sequences"][seq.name] = entry
    report(rows, results, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
