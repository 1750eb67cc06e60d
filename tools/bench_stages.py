"""Per-frame CPU cost of each pipeline step at 640x480, against the 30 fps frame budget.

    python tools/bench_stages.py [--model engines/person-ir.onnx] [--frames 100]

Steps: render the synthetic IR frame (capture), Detector (preprocess + engine + CAM + boxes),
stabilizer update, annotate (heatmap + boxes + trails + banner), JPEG encode. Medians
over ``--frames`` frames after warm-up; the budget column is the share of 33.3 ms.
Speed targets are checked here and in tools/bench, not in unit tests (the machines are noisy).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    from streamcam.capture.synthetic import SyntheticIRScene
    from streamcam.config import StabilizerConfig
    from streamcam.processor.detector import Detector
    from streamcam.processor.engines import create_engine
    from streamcam.processor.stabilized import TrackedDetector
    from streamcam.publisher.annotate import annotate, encode_jpeg

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "engines" / "person-ir.onnx"))
    ap.add_argument("--frames", type=int, default=100)
    args = ap.parse_args(argv)

    scene = SyntheticIRScene(seed=7)
    tracked = TrackedDetector(Detector(create_engine(args.model)), StabilizerConfig())
    t: dict[str, list[float]] = {k: [] for k in ("render", "detector", "stabilizer", "annotate", "jpeg")}
    for i in range(args.frames + 10):
        t0 = time.perf_counter()
        fr = scene.frame(i)
        t1 = time.perf_counter()
        result, tracks = tracked.process("s", fr.image, "GRAY8", int(i * 1e9 / 30))
        t2 = time.perf_counter()
        img = annotate(fr.image, result.cam, result.detections, stream="s", fps=30.0, latency_ms=20.0, tracks=tracks)
        t3 = time.perf_counter()
        encode_jpeg(img, 80)
        t4 = time.perf_counter()
        if i >= 10:
            t["render"].append(t1 - t0)
            t["stabilizer"].append(result.timings_ms.get("track", 0.0) / 1e3)
            t["detector"].append(t2 - t1 - t["stabilizer"][-1])
            t["annotate"].append(t3 - t2)
            t["jpeg"].append(t4 - t3)
    print(f"{'step':12s} {'median ms':>10s} {'p95 ms':>8s} {'of 33.3 ms':>10s}")
    total = 0.0
    for k, v in t.items():
        med, p95 = 1e3 * float(np.median(v)), 1e3 * float(np.percentile(v, 95))
        total += med
        print(f"{k:12s} {med:10.2f} {p95:8.2f} {med / 33.3:10.1%}")
    print(f"{'total':12s} {total:10.2f} {'':8s} {total / 33.3:10.1%}  (spread over 3 processes on 2 cores)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
