"""Face finding per 640×480 frame: the reference Haar evaluator vs the fast one vs the tracker, one core.

    python tools/bench_faces.py [--frames 24] [--reference-every 4]

The scene is skimage's astronaut photograph (one face, ~100 px) sliding 4 px a frame over a
grey 640×480 frame. Each frame is given, interleaved so all see the same machine load, to
``FaceDetector(evaluator="reference").detect`` (the slow obvious numpy evaluator; every
``--reference-every``-th frame, it is slow), ``FaceDetector().detect`` (the fast evaluator, a full
scan) and ``FaceDetector().track`` (rolling scan + search near known faces: what face mode runs).
Prints the median and p90 wall-clock and CPU ms per frame of each and the ratios to the reference
(CPU time is what this process used: on a shared machine it moves less than wall-clock).
The first tracked frame (a full scan) is left out of the tracker's figures and reported alone.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import time  # noqa: E402

import numpy as np  # noqa: E402


def scene(frames: int, shift: int = 4) -> list[np.ndarray]:
    import cv2
    from skimage import data

    g = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2GRAY)
    out = []
    for t in range(frames):
        frame = np.full((480, 640), 90, np.uint8)
        dx = (shift * t) % 128
        frame[:, dx:dx + 512] = g[:480, :min(512, 640 - dx)]
        out.append(frame)
    return out


def timed(fn, *args) -> tuple[float, float, object]:
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return (time.perf_counter() - w) * 1e3, (time.process_time() - c) * 1e3, out


def run(frames: int = 24, reference_every: int = 4) -> dict:
    import cv2

    from streamcam.processor.faces import FaceDetector

    cv2.setNumThreads(1)
    ref, fast, tracker = FaceDetector(evaluator="reference"), FaceDetector(), FaceDetector()
    video = scene(frames)
    fast.detect(video[0])  # warm caches
    first = timed(tracker.track, video[0])
    times: dict[str, list[tuple[float, float]]] = {"reference": [], "fast": [], "track": []}
    agree = 0
    for t, frame in enumerate(video[1:], 1):
        w, c, boxes = timed(tracker.track, frame)
        times["track"].append((w, c))
        w, c, full = timed(fast.detect, frame)
        times["fast"].append((w, c))
        agree += len(boxes) == len(full) == 1
        if t % reference_every == 1:
            w, c, _ = timed(ref.detect, frame)
            times["reference"].append((w, c))
    stats = {k: {"wall_ms": np.median([a for a, _ in v]), "wall_p90_ms": np.percentile([a for a, _ in v], 90),
                 "cpu_ms": np.median([b for _, b in v]), "cpu_p90_ms": np.percentile([b for _, b in v], 90)}
             for k, v in times.items()}
    return {"stats": stats, "first_track_ms": first[:2], "frames": frames, "agree": agree}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--reference-every", type=int, default=4)
    args = ap.parse_args(argv)
    r = run(args.frames, args.reference_every)
    s = r["stats"]
    print(f"640x480 frames, one core, {r['frames']} frames; tracker found the face in the same frames as the "
          f"full scan: {r['agree']}/{r['frames'] - 1}")
    print(f"{'':10s} {'wall ms':>8s} {'p90':>7s} {'cpu ms':>8s} {'p90':>7s} {'cpu vs reference':>17s}")
    for k in ("reference", "fast", "track"):
        v = s[k]
        print(f"{k:10s} {v['wall_ms']:8.1f} {v['wall_p90_ms']:7.1f} {v['cpu_ms']:8.1f} {v['cpu_p90_ms']:7.1f} "
              f"{s['reference']['cpu_ms'] / v['cpu_ms']:16.1f}x")
    print(f"first tracked frame (full scan): wall {r['first_track_ms'][0]:.1f} ms, cpu {r['first_track_ms'][1]:.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
