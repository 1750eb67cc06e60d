"""Real footage, side by side: streamcam and its peers on the second half of each shared sequence.

    python -m tools.eval_real [--config C] [--model M] [--out docs/quality/real.json]

streamcam runs as ``streamcam eval --mot`` runs it (the config's Detector and stabilizer;
default config configs/camera.yaml when present, else configs/default.yaml). Each peer
(tools/peers: YOLOv3-tiny COCO person, OpenCV 4's HOG people detector) runs once per frame
in its own OpenCV 4 process; its score thresholds (raw and stabilized) are chosen on the
FIRST half of the same sequence by best MOTA and applied unchanged to the second half,
the test half (so are its settings, e.g. HOG's frame scale, by the best stabilized MOTA). Peers' boxes are tracked by streamcam's stabilizer (same stabilizer settings,
no CAM size calibration). Prints a markdown table; writes everything to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from streamcam.evaluation.mot import find_sequences, read_sequence, real_data_dir
from streamcam.evaluation.real import StreamcamMethod, evaluate_sequence, format_table

from .peers import PEERS, VARIANTS, PeerError, missing
from .peers.method import GRID, PeerMethod, choose_thresholds, detect_all

ROOT = Path(__file__).resolve().parents[1]


def _config(path: str | None, model: str | None, sets: list[str]):
    from streamcam.cli import parse_settings
    from streamcam.config import load_config, repo_config

    overrides = parse_settings(sets)
    if model:
        overrides["processor.model"] = str(Path(model).resolve())
    return load_config(path or repo_config("camera.yaml"), overrides)


def _peer_on(name: str, seq, half: str, config, log) -> tuple[dict, dict]:
    """One peer on one sequence: settings and thresholds chosen on the first half, scored on ``half``."""
    first, test = seq.half("first"), seq.half(half)
    tried = []
    for variant in VARIANTS[name]:
        with PEERS[name](**variant) as peer:
            log(f"{name} {variant or ''} on {seq.name}: first half ({len(first.frames)} frames, OpenCV {peer.opencv})")
            ch = choose_thresholds(name, detect_all(peer, first.frames), first, GRID[name], config)
        best = max(s["stabilized_mota"] for s in ch["sweep"])
        tried.append((best, variant, ch))
    # The setting with the best stabilized MOTA on the first half (the first listed on ties).
    _, variant, ch = max(tried, key=lambda t: t[0])
    with PEERS[name](**variant) as peer:
        log(f"{name} {variant or ''} on {seq.name}: {half} half ({len(test.frames)} frames)")
        boxes = detect_all(peer, test.frames)
        opencv = peer.opencv
    r = evaluate_sequence(test, PeerMethod(name, boxes, ch["raw"], ch["stabilized"], config))
    r.update(threshold={"raw": ch["raw"], "stabilized": ch["stabilized"]}, settings=variant, opencv=opencv)
    choice = {**ch, "settings": variant, "settings_tried": [{"settings": v, "best_stabilized_mota": b} for b, v, _ in tried]}
    return r, choice


def run(cfg, seq_dirs: list[Path], peers: list[str], half: str = "second", log=print) -> dict:
    from streamcam.evaluation.tracking import _portable
    from streamcam.processor.stage import build_stabilized_detector

    seqs = [read_sequence(d) for d in seq_dirs]
    rows, choices = [], {}
    stabilized = build_stabilized_detector(cfg)
    try:
        method = StreamcamMethod(stabilized)
        for seq in seqs:
            log(f"streamcam on {seq.name} ({half} half)")
            # as streamcam eval --mot: the scored half starts with the background of the first
            rows.append(evaluate_sequence(seq.half(half), method, warmup=seq.half("first") if half == "second" else None))
    finally:
        getattr(stabilized.detector, "close", stabilized.detector.engine.close)()
    config = stabilized.config
    for name in peers:
        for seq in seqs:
            r, choice = _peer_on(name, seq, half, config, log)
            choices[f"{name}/{seq.name}"] = choice
            rows.append(r)
    order = {s.name: i for i, s in enumerate(seqs)}
    rows.sort(key=lambda r: order[r["sequence"]])  # stable: streamcam first within a sequence
    return {"half": half, "model": _portable(cfg.model_path()), "config": cfg.name,
            "protocol": "test on the second half of each sequence; peers' thresholds chosen on the first half "
                        "(best MOTA), streamcam's settings from its config",
            "timing": "median CPU ms per frame, one thread (engine: the network / the peer's detector; total: "
                      "decoded frame to tracked boxes)",
            "thresholds": choices, "sequences": rows}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", help="pipeline YAML (default configs/camera.yaml, else configs/default.yaml)")
    ap.add_argument("--model", help="ONNX model instead of the config's processor.model")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--data", help="folder of MOTChallenge sequences (default $STREAMCAM_REAL_DATA or ../shared/data/real)")
    ap.add_argument("--peers", nargs="*", default=list(PEERS), choices=list(PEERS))
    ap.add_argument("--half", default="second", choices=("first", "second", "all"))
    ap.add_argument("--out", default="docs/quality/real.json")
    ap.add_argument("--md", help="write the markdown table here too")
    a = ap.parse_args(argv)
    data = Path(a.data) if a.data else real_data_dir(ROOT)
    seq_dirs = find_sequences(data)
    if not seq_dirs:
        print(f"eval_real: no MOTChallenge sequences under {data} (set STREAMCAM_REAL_DATA)", file=sys.stderr)
        return 2
    for name in a.peers:
        why = missing(name)
        if why:
            print(f"eval_real: peer {name}: {why}", file=sys.stderr)
            return 2
    try:
        result = run(_config(a.config, a.model, a.set), seq_dirs, a.peers, a.half,
                     log=lambda m: print(m, file=sys.stderr, flush=True))
    except PeerError as exc:
        print(f"eval_real: {exc}", file=sys.stderr)
        return 2
    table = format_table(result["sequences"])
    print(table)
    if a.out and a.out != "-":
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=1, default=float) + "\n")
    if a.md:
        Path(a.md).write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
