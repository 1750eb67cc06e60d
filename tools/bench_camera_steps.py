"""CPU ms of each step of a 768x576 camera's frame path outside the network: before and after, same run.

    python -m tools.bench_camera_steps [--frames 60] [--rounds 3] [--detect-every 3] [--no-engine]

The frames are PETS09-S3-MF1's (``../shared/data/real``) as a 25 fps MJPG, read as the capture stage
reads a camera (without the shared data: the synthetic scene at 768x576); the model and pipeline
settings are ``configs/camera.yaml``'s. Each path runs in **a fresh process of its own** (the memory
policy is per process), the two alternated over ``--rounds``; every step is timed by its thread's
CPU clock (``time.thread_time_ns``: user + system, page faults included, not the time the machine
gave to others) and the medians over all rounds are printed with the ratio after / before. Steps:

* capture: ``decode`` (``OpenCVSource.read``: the MJPG frame), ``frame message`` (encode + decode);
* processor: ``preprocess`` and ``engine`` per call (every ``--detect-every``-th frame), ``CAM +
  boxes``, ``stabilizer`` (a detected frame's update or a predicted frame's), ``result message``;
* publisher: ``heatmap blend``, ``draw`` (trails, boxes, banner), ``JPEG``, and the heatmap-free
  copy the web page's toggle offers (``plain copy + draw``, ``plain JPEG``).

Paths:

* **before**: glibc's own memory policy (frame buffers given back and faulted in again each frame),
  ``preprocess_reference`` (float arithmetic on the transposed view), the heatmap clipped in full;
* **after**: :func:`streamcam.lifecycle.steady_frame_memory`, the lookup-table ``preprocess``, the
  heatmap clipped only where the map has negatives.

What this does not time: ZeroMQ's transfers between the processes and the stages' loops; the
per-stage process CPU of the real pipeline is ``tools.bench_camera``'s ``cpu_ms_per_frame``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("decode", "frame message", "preprocess", "engine", "CAM + boxes", "stabilizer", "result message",
         "heatmap blend", "draw", "JPEG", "plain copy + draw", "plain JPEG")
STAGE = {"decode": "capture", "frame message": "capture", "preprocess": "processor", "engine": "processor",
         "CAM + boxes": "processor", "stabilizer": "processor", "result message": "processor",
         "heatmap blend": "publisher", "draw": "publisher", "JPEG": "publisher", "plain copy + draw": "publisher",
         "plain JPEG": "publisher"}


def _heatmap_before(image: np.ndarray, cam: np.ndarray, alpha: float) -> np.ndarray:
    """``heatmap_overlay`` as it was before this change (the whole upsampled map clipped to [0, 1])."""
    import cv2

    h, w = image.shape[:2]
    up = cv2.resize(cam, (w, h), interpolation=cv2.INTER_LINEAR)
    index = cv2.convertScaleAbs(np.clip(up, 0.0, 1.0, out=up), alpha=255.0)
    return cv2.addWeighted(image, 1.0 - alpha, cv2.applyColorMap(index, cv2.COLORMAP_JET), alpha, 0.0)


def run_path(path: str, video: str, frames: int, every: int, engine: bool) -> dict[str, dict[str, list[float]]]:
    """One path over ``frames`` frames in this process: ``{"ms": {step: [CPU ms per call]}, "faults":
    {step: [minor page faults per call]}}``."""
    import resource

    from streamcam import protocol
    from streamcam.capture.opencv_source import OpenCVSource
    from streamcam.capture.stage import frame_message
    from streamcam.config import load_config
    from streamcam.lifecycle import single_threaded_opencv, steady_frame_memory
    from streamcam.processor import preprocess as pp
    from streamcam.processor.stage import build_stabilized_detector, result_message
    from streamcam.publisher.annotate import annotate, draw_detections, draw_status, draw_trails, encode_jpeg, \
        heatmap_overlay

    after = path == "after"
    single_threaded_opencv()
    if after:
        steady_frame_memory()
    cfg = load_config(ROOT / "configs" / "camera.yaml", {"processor.model": str(ROOT / "engines" / "person-rgb.onnx")})
    tracked = build_stabilized_detector(cfg, live=False)
    det = tracked.detector
    prep = pp.preprocess if after else pp.preprocess_reference
    heat = heatmap_overlay if after else _heatmap_before
    alpha, q = cfg.publisher.alpha, cfg.publisher.jpeg_quality
    src = OpenCVSource(video, loop=True)
    t: dict[str, list[float]] = {k: [] for k in STEPS}
    faults: dict[str, list[float]] = {k: [] for k in STEPS}
    clock = time.thread_time_ns

    def minflt() -> int:
        return resource.getrusage(getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)).ru_minflt

    def timed(step: str, fn, *args, **kw):
        f0, t0 = minflt(), clock()
        out = fn(*args, **kw)
        t[step].append((clock() - t0) / 1e6)
        faults[step].append(float(minflt() - f0))
        return out

    last = None
    x = None
    for i in range(frames + 3):
        if i == 3:  # warm-up frames (the engine's first calls, the first allocations) are not counted
            for k in STEPS:
                t[k].clear()
                faults[k].clear()
        fr = timed("decode", src.read)
        msg = timed("frame message", lambda: protocol.decode(frame_message("cam0", i, fr, False)))
        image, size, t_ns = msg.part("image"), (fr.image.shape[1], fr.image.shape[0]), i * 40_000_000
        if last is None or i % every == 0:
            x, geom = timed("preprocess", prep, image, "BGR8", det.meta)
            if engine or last is None:
                out = timed("engine", det.engine.infer, x)

            def cam_boxes():
                cams, probs = det._frame_maps(det._class_maps(out.features)[0], out.logits[0], geom)
                dets, shown = det._detections(cams, probs, size, tracked.candidate_min_score)
                from streamcam.processor.detector import FrameResult

                return FrameResult(dets, shown, probs.astype(np.float32), {"engine": 0.0})

            found = timed("CAM + boxes", cam_boxes)
            result, tracks = timed("stabilizer", tracked.track, "cam0", found, size, t_ns)
            last = result
        else:
            result, tracks = timed("stabilizer", tracked.predict, "cam0", last, size, t_ns)
        res = timed("result message", lambda: protocol.decode(result_message(msg, result, {"tracks": tracks})))
        img, cam, dets = res.part("image"), res.part("cam"), res.detections()
        shown = timed("heatmap blend", heat, img, cam, alpha)

        def draw(out):
            draw_trails(out, tracks)
            draw_detections(out, dets, copy=False)
            return draw_status(out, "cam0", 25.0, 20.0, copy=False)

        timed("draw", draw, shown)
        timed("JPEG", encode_jpeg, shown, q)
        plain = timed("plain copy + draw", annotate, img, None, dets, heatmap=False, stream="cam0", fps=25.0,
                      latency_ms=20.0, tracks=tracks)
        timed("plain JPEG", encode_jpeg, plain, q)
    src.close()
    return {"ms": t, "faults": faults}


def footage(tmp: Path) -> str:
    from tools.bench_camera import footage as camera_footage

    source, _ = camera_footage(tmp)
    if source["kind"] == "file":
        return source["uri"]
    import cv2

    from streamcam.datasets.synthetic import SyntheticIRScene
    from tools.bench.clips import write_mjpg

    scene = SyntheticIRScene(seed=7, width=768, height=576)
    frames = (cv2.cvtColor(scene.frame(i).image, cv2.COLOR_GRAY2BGR) for i in range(100))
    return str(write_mjpg(tmp / "synthetic.avi", frames, 25))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tools.bench_camera_steps", description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--detect-every", type=int, default=3, help="the network on every n-th frame, as processor.detect_every")
    ap.add_argument("--no-engine", dest="engine", action="store_false", help="run the network once only (its row is then empty)")
    ap.add_argument("--path", choices=("before", "after"), help=argparse.SUPPRESS)  # a child process's one path
    ap.add_argument("--video", help=argparse.SUPPRESS)
    ap.add_argument("--out", help="write the medians as JSON here")
    a = ap.parse_args(argv)
    if a.path:
        print(json.dumps(run_path(a.path, a.video, a.frames, a.detect_every, a.engine)))
        return 0
    import os

    costs: dict[str, dict[str, list[float]]] = {"before": {k: [] for k in STEPS}, "after": {k: [] for k in STEPS}}
    faults: dict[str, dict[str, list[float]]] = {"before": {k: [] for k in STEPS}, "after": {k: [] for k in STEPS}}
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory() as tmp:
        video = footage(Path(tmp))
        for r in range(a.rounds):
            for path in (("before", "after") if r % 2 == 0 else ("after", "before")):
                cmd = [sys.executable, "-m", "tools.bench_camera_steps", "--path", path, "--video", video,
                       "--frames", str(a.frames), "--detect-every", str(a.detect_every)] + ([] if a.engine else ["--no-engine"])
                got = json.loads(subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout)
                for k, v in got["ms"].items():
                    costs[path][k] += v
                for k, v in got["faults"].items():
                    faults[path][k] += v
    load.append(os.getloadavg()[0])
    med = {p: {k: (float(np.median(v)) if v else None) for k, v in c.items()} for p, c in costs.items()}
    flt = {p: {k: (float(np.median(v)) if v else None) for k, v in c.items()} for p, c in faults.items()}
    calls = {k: (1.0 / a.detect_every if k in ("preprocess", "engine", "CAM + boxes") else 1.0) for k in STEPS}
    print(f"768x576, {a.frames} frames x {a.rounds} rounds per path, network on every {a.detect_every}th frame; "
          f"CPU ms (thread clock), medians; load average {load[0]:.2f} -> {load[1]:.2f}")
    print("| stage | step | calls per frame | before ms | after ms | after / before | page faults before / after |")
    print("|---|---|---|---|---|---|---|")
    per_frame = {"before": {}, "after": {}}
    for k in STEPS:
        b, f = med["before"][k], med["after"][k]
        for p, v in (("before", b), ("after", f)):
            if v is not None and k != "engine":
                per_frame[p][STAGE[k]] = per_frame[p].get(STAGE[k], 0.0) + v * calls[k]
        ratio = f"{f / b:.2f}" if b and f is not None else ""
        fmt = (lambda v: "" if v is None else f"{v:.2f}")
        fb, fa = flt["before"][k], flt["after"][k]
        print(f"| {STAGE[k]} | {k} | {calls[k]:.2f} | {fmt(b)} | {fmt(f)} | {ratio} | "
              f"{'' if fb is None else f'{fb:.0f}'} / {'' if fa is None else f'{fa:.0f}'} |")
    for stage in ("capture", "processor", "publisher"):
        b, f = per_frame["before"].get(stage, 0.0), per_frame["after"].get(stage, 0.0)
        print(f"| {stage} | per frame, outside the network | | {b:.2f} | {f:.2f} | {f / b if b else float('nan'):.2f} | |")
    tb, tf = sum(per_frame["before"].values()), sum(per_frame["after"].values())
    print(f"| all | per frame, outside the network | | {tb:.2f} | {tf:.2f} | {tf / tb:.2f} | |")
    if a.out:
        Path(a.out).write_text(json.dumps({"frames": a.frames, "rounds": a.rounds, "detect_every": a.detect_every,
                                           "load": load, "medians_ms": med, "medians_faults": flt, "per_frame_ms": per_frame}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
