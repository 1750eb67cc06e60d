"""Coordinate search of stabilizer knobs on the FIRST half of real sequences (the tuning half).

    python -m tools.tune_stabilizer_real --model engines/person-rgb.onnx --seq PETS09-S3-MF1 [--rounds 2]
    python -m tools.tune_stabilizer_real --model PETS09-S3-MF1=runs/fs/PETS09-S3-MF1.onnx \
        --model TUD-Campus=runs/fs/TUD-Campus.onnx      # each camera its own few-shot model
                                                        # (python -m tools.fewshot_real --keep runs/fs)

The detector runs once per frame (results cached); each candidate stabilizer config then replays
the cached results, scored by stabilized MOTA averaged over the sequences (IDF1 breaks ties). The
second half is never read. ``--model SEQ=PATH`` (repeatable) gives a sequence its own model (a
camera's few-shot model and box geometry); a bare ``--model PATH`` serves every sequence.
Prints the best knobs as ``--set`` lines for ``configs/camera.yaml``. ``--detect-every N`` scores as a
live run that detects on every N-th frame only, the tracks' prediction between (``streamcam eval
--mot --detect-every``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GRID = {
    "hits_to_confirm": [1, 2, 3],
    "score_enter": [0.5, 0.6, 0.7, 0.8],
    "score_leave": [0.25, 0.4, 0.5],
    "max_misses": [2, 5, 10],
    "coast_publish": [0, 1, 2],
    "max_merged": [0, 60],
    "one_euro_min_cutoff": [1.0, 2.0, 5.0, 20.0],
    "kalman.accel_std": [60.0, 200.0, 600.0],
    "kalman.size_accel_std": [30.0, 100.0, 300.0],
    "kalman.accel_std_rel": [0.0, 1.0, 3.0, 10.0],
    "kalman.size_accel_std_rel": [0.0, 0.5, 2.0],
    "max_distance": [0.5, 1.0, 2.0],
}


def _with(config, key: str, value):
    if key.startswith("kalman."):
        return dataclasses.replace(config, kalman=dataclasses.replace(config.kalman, **{key[7:]: value}))
    return dataclasses.replace(config, **{key: value})


def _get(config, key: str):
    return getattr(config.kalman, key[7:]) if key.startswith("kalman.") else getattr(config, key)


def main(argv: list[str] | None = None) -> int:
    import cv2

    from streamcam.config import load_config
    from streamcam.evaluation.mot import find_sequences, read_sequence, real_data_dir
    from streamcam.evaluation.real import score_tracks
    from streamcam.processor.stabilized import StabilizedDetector
    from streamcam.processor.stage import build_stabilized_detector

    ap = argparse.ArgumentParser(prog="tools.tune_stabilizer_real", description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, action="append", help="PATH, or SEQ=PATH per sequence")
    ap.add_argument("--config", default=str(ROOT / "configs" / "camera.yaml"))
    ap.add_argument("--seq", nargs="*")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--detect-every", type=int, default=1, metavar="N",
                    help="score as a live run detecting on every N-th frame scores (streamcam eval --mot --detect-every)")
    a = ap.parse_args(argv)
    if a.detect_every < 1:
        ap.error(f"--detect-every: expected >= 1, got {a.detect_every}")
    per_seq = dict(m.split("=", 1) for m in a.model if "=" in m)
    shared = [m for m in a.model if "=" not in m]
    seqs = a.seq or (list(per_seq) if per_seq and not shared else None)
    found = find_sequences(real_data_dir(ROOT))
    unknown = sorted(set(seqs or ()) - {d.name for d in found})
    if unknown or not found:
        ap.error(f"no sequence {unknown or 'at all'} under {real_data_dir(ROOT)} (found {[d.name for d in found]})")
    dirs = [d for d in found if not seqs or d.name in seqs]
    cached = []
    for d in dirs:
        model = per_seq.get(d.name) or (shared[0] if shared else None)
        if model is None:
            ap.error(f"no --model for {d.name} (give SEQ=PATH or a bare PATH)")
        base = build_stabilized_detector(load_config(a.config, {"processor.model": str(Path(model).resolve())}))
        seq = read_sequence(d).half("first")
        det = base.detector
        images = [cv2.imread(str(f.path), cv2.IMREAD_COLOR) for f in seq.frames]
        times = [(f.index - 1) / seq.fps for f in seq.frames]
        if getattr(det, "watches_background", False):
            # a detector keeping a background (head tops) starts with one, as a running camera does
            # (`streamcam eval --mot` warms on the first half): here the tuning half itself
            for image, t in zip(images, times):
                det.clock = lambda t=t: t
                det.observe(image, seq.name)
        frames = []
        for f, image, t in zip(seq.frames, images, times):
            det.clock = lambda t=t: t  # the background samples by the sequence's time
            frames.append((det.detect(image, "BGR8", min_score=0.0, stream=seq.name), (image.shape[1], image.shape[0]),
                           int(round(t * 1e9)), list(f.gt), list(f.ignore)))
        cached.append((seq.name, base.detector, frames))

    def score(config) -> tuple[float, float]:
        motas, idf1s = [], []
        for name, detector, frames in cached:
            td = StabilizedDetector(detector, config)
            gt, ig, pred = [], [], []
            for k, (result, size, t, g, i) in enumerate(frames):
                if k % a.detect_every:  # a frame the network skips: the tracks' prediction
                    out, _ = td.predict(name, result, size, t)
                else:
                    keep = dataclasses.replace(result, detections=[d for d in result.detections
                                                                   if d.score >= td.candidate_min_score])
                    out, _ = td.track(name, keep, size, t)
                pred.append([(int(d.track_id), d.box) for d in out.detections if d.track_id is not None])
                gt.append(g)
                ig.append(i)
            s = score_tracks(gt, ig, pred)
            motas.append(s["mota"])
            idf1s.append(s["idf1"])
        return sum(motas) / len(motas), sum(idf1s) / len(idf1s)

    config = base.config  # one YAML for every sequence: only the model differs
    best = score(config)
    print(f"start: MOTA {best[0]:.3f} IDF1 {best[1]:.3f}", file=sys.stderr)
    for r in range(a.rounds):
        for key, values in GRID.items():
            for v in values:
                try:
                    cand = _with(config, key, v)
                except (ValueError, TypeError):
                    continue
                s = score(cand)
                if s > best:
                    best, config = s, cand
                    print(f"round {r}: {key}={v}: MOTA {s[0]:.3f} IDF1 {s[1]:.3f}", file=sys.stderr, flush=True)
    out = {key: _get(config, key) for key in GRID}
    print(json.dumps({"first_half_mota": round(best[0], 4), "first_half_idf1": round(best[1], 4),
                      "detect_every": a.detect_every, "stabilizer": out}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
