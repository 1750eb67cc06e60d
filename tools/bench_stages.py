"""Per-frame CPU cost of each step of the frame path at 640x480: the lean path against the reference.

    python tools/bench_stages.py [--model engines/person-ir.onnx] [--frames 60] [--rounds 3] [--batch 4]

Steps, per frame of the synthetic IR scene: render (the capture of a synthetic camera), preprocess,
engine (one frame per call, and ``--batch`` frames of as many streams per call, per frame), CAM
(class maps, crop, probabilities, shown map), boxes (the box rule), stabilizer, the result message
(encode + decode: JSON header and the zero-copy frame), annotate (heatmap, boxes, trails, banner),
JPEG encode. Two paths, interleaved in rounds in the same process, medians:

* **reference**: the previous frame path: OpenCV's own thread pool (a thread per core), box
  regions grown by labelling the whole map per seed (``grow="components"``), one engine call per frame;
* **lean**: what the stages run now: one OpenCV thread per stage process, regions grown by flood
  fill from each seed (``grow="flood"``, the same boxes), frames of all streams in one engine call.

The budget column is the share of the 33.3 ms a 30 fps camera gives each frame; "cameras per
2 cores" = 2 x 33.3 ms / the path's total, the camera count the whole frame path fits on this
machine at 30 fps if nothing else ran. Speed targets are checked here and in tools/bench, not in
unit tests (the machines are noisy).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEPS = ("render", "preprocess", "engine", "cam", "boxes", "stabilizer", "message", "annotate", "jpeg")
BUDGET_MS = 1000 / 30


def _path_costs(lean: bool, det, scene_frames, batch: int, stab_factory) -> dict[str, list[float]]:
    """One round of every step over the frames, in ms per frame."""
    import cv2

    from streamcam import protocol
    from streamcam.processor.preprocess import Geometry, preprocess
    from streamcam.publisher.annotate import annotate, encode_jpeg

    cv2.setNumThreads(1 if lean else cv2.getNumberOfCPUs())
    det.grow = "flood" if lean else "components"
    t: dict[str, list[float]] = {k: [] for k in STEPS}
    stab = stab_factory()
    inputs = [preprocess(fr.image, "GRAY8", det.meta)[0] for fr in scene_frames]
    for i, fr in enumerate(scene_frames):
        t0 = time.perf_counter()
        x, _ = preprocess(fr.image, "GRAY8", det.meta)
        t1 = time.perf_counter()
        if lean and batch > 1:
            if i % batch == 0:  # frames of `batch` streams share one call; its time is spread over them
                b = np.concatenate(inputs[i:i + batch])
                out = det.engine.infer(b)
                share = (time.perf_counter() - t1) / b.shape[0]
            t2 = t1 + share
            feats, logits = out.features[i % batch: i % batch + 1], out.logits[i % batch]
        else:
            out = det.engine.infer(x)
            t2 = time.perf_counter()
            feats, logits = out.features, out.logits[0]
        t2b = time.perf_counter()
        geom = Geometry(fr.image.shape[1], fr.image.shape[0], 1.0, 1.0, 0, 0)
        maps, probs = det._frame_maps(det._class_maps(feats)[0], logits, geom)
        shown = det.shown_map(maps[0])
        t3 = time.perf_counter()
        dets = det.boxes(maps[0], float(probs[det.class_indices[0]]), det.class_names[0], (640, 480))
        t4 = time.perf_counter()
        tracked = stab.update(dets, i / 30.0, (640, 480))
        t5 = time.perf_counter()
        msg = protocol.encode("result", "cam0", i, i, [protocol.raw_part("image", fr.image, "GRAY8"),
                                                         protocol.raw_part("cam", shown, "CAM32")],
                              detections=[d.to_json() for d in tracked], probs=[round(float(p), 4) for p in probs])
        protocol.decode(msg)
        t6 = time.perf_counter()
        img = annotate(fr.image, shown, tracked, stream="cam0", fps=30.0, latency_ms=20.0)
        t7 = time.perf_counter()
        encode_jpeg(img, 80)
        t8 = time.perf_counter()
        for k, a, b_ in (("preprocess", t0, t1), ("cam", t2b, t3), ("boxes", t3, t4), ("stabilizer", t4, t5),
                         ("message", t5, t6), ("annotate", t6, t7), ("jpeg", t7, t8)):
            t[k].append((b_ - a) * 1e3)
        t["engine"].append((t2 - t1) * 1e3)
    return t


def main(argv: list[str] | None = None) -> int:
    from streamcam.datasets.synthetic import SyntheticIRScene
    from streamcam.processor.detector import Detector
    from streamcam.processor.engines import create_engine
    from streamcam.stabilizer.stabilizer import Stabilizer, StabilizerConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(ROOT / "engines" / "person-ir.onnx"))
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4, help="streams per engine call on the lean path")
    args = ap.parse_args(argv)

    scene = SyntheticIRScene(seed=7)
    det = Detector(create_engine(args.model))
    meta_corr = det.meta.box_correction
    frames = []
    render: list[float] = []
    for i in range(args.frames + 5):
        t0 = time.perf_counter()
        fr = scene.frame(i)
        render.append((time.perf_counter() - t0) * 1e3)
        frames.append(fr)
    frames, render = frames[5:], render[5:]
    config = StabilizerConfig().for_model(meta_corr)
    costs = {"reference": {k: [] for k in STEPS}, "lean": {k: [] for k in STEPS}}
    for _ in range(args.rounds):
        for name in costs:
            got = _path_costs(name == "lean", det, frames, args.batch, lambda: Stabilizer(config))
            for k, v in got.items():
                costs[name][k] += v
    for name in costs:
        costs[name]["render"] = render
    med = {name: {k: float(np.median(v)) for k, v in c.items()} for name, c in costs.items()}
    print(f"frames {args.frames} x {args.rounds} rounds, interleaved; lean engine batch {args.batch}")
    print(f"| step | reference ms | lean ms | lean / reference | lean share of {BUDGET_MS:.1f} ms |")
    print("|---|---|---|---|---|")
    for k in STEPS:
        r, lean = med["reference"][k], med["lean"][k]
        print(f"| {k} | {r:.2f} | {lean:.2f} | {lean / r if r else float('nan'):.2f} | {lean / BUDGET_MS:.1%} |")
    tot = {name: sum(m.values()) for name, m in med.items()}
    print(f"| total | {tot['reference']:.2f} | {tot['lean']:.2f} | {tot['lean'] / tot['reference']:.2f} | "
          f"{tot['lean'] / BUDGET_MS:.1%} |")
    net = {name: m["engine"] for name, m in med.items()}
    print(f"| work outside the network / network | {(tot['reference'] - net['reference']) / net['reference']:.2f} | "
          f"{(tot['lean'] - net['lean']) / net['lean']:.2f} | | |")
    print(f"| cameras per 2 cores at 30 fps | {2 * BUDGET_MS / tot['reference']:.1f} | {2 * BUDGET_MS / tot['lean']:.1f} | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
