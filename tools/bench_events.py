"""Events: the added cost per frame of zones + lifecycle, and event precision/recall on synthetic clips.

    python -m tools.bench_events [--tracks 20] [--frames 2000] [--clips 3] [--clip-frames 400]

1. **Cost** — 20 tracked detections per frame moving through 3 zones, a mask and a counting
   line; ``EventTracker.update`` timed per frame (median, p95) against the 0.5 ms target and,
   as the peer measured in the same run, the publisher's JPEG encode of one 640x480 frame
   (the cost every published frame already pays).
2. **Quality** — synthetic IR clips (``SyntheticIRScene``: people and confusers, ground
   truth per frame) through the live code: the default model and the stabilizer
   (``TrackedDetector``), then ``EventTracker`` with one zone (the lower half, where people
   walk nearer the camera). Ground-truth events are the same lifecycle run on the ground-truth
   persons (their ids as track ids). An event is matched when a ground-truth event of the
   same clip overlaps it in time and its box at ``new`` overlaps the ground-truth person's box
   then (IoU >= 0.3); precision = matched / events, recall = matched ground truth / ground truth.
   Static confusers (lamps) must give at most one event each, however long the clip.
3. **Ring buffer memory** per camera: the JPEGs of ``pre_roll_s`` seconds at the stream rate.

Prints one JSON object; ``docs/benchmarks.md`` ("Events") records the figures.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np

from streamcam.events.config import EventsConfig
from streamcam.events.lifecycle import EventTracker, _iou
from streamcam.events.zones import LineConfig, MaskConfig, ZoneConfig
from streamcam.protocol import Detection

TARGET_MS = 0.5
ZONES = (ZoneConfig("left", ((0.0, 0.3), (0.4, 0.3), (0.4, 1.0), (0.0, 1.0))),
         ZoneConfig("right", ((0.6, 0.3), (1.0, 0.3), (1.0, 1.0), (0.6, 1.0))),
         ZoneConfig("middle", ((0.3, 0.4), (0.7, 0.4), (0.8, 0.9), (0.5, 1.0), (0.2, 0.9))))
MASK = MaskConfig(((0.0, 0.0), (1.0, 0.0), (1.0, 0.1), (0.0, 0.1)))
LINE = LineConfig("gate", ((0.5, 0.2), (0.5, 1.0)))
QUALITY_ZONE = ZoneConfig("near", ((0.0, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)))


def moving_tracks(tracks: int, frames: int, seed: int = 0) -> list[list[Detection]]:
    rng = np.random.default_rng(seed)
    pos = rng.uniform([40, 100], [600, 460], size=(tracks, 2))
    vel = rng.uniform(-2, 2, size=(tracks, 2))
    out = []
    for f in range(frames):
        c = np.abs((pos + vel * f + 640) % 1280 - 640)
        c[:, 1] = np.clip(c[:, 1], 60, 479)
        out.append([Detection((x - 15, y - 60, x + 15, y), 0.8, "person", k) for k, (x, y) in enumerate(c)])
    return out


def cost(tracks: int, frames: int) -> dict[str, Any]:
    from streamcam.publisher.annotate import encode_jpeg

    data = moving_tracks(tracks, frames + 200)
    tr = EventTracker("bench", EventsConfig(min_frames=3), ZONES, (MASK,), (LINE,))
    times = []
    for i, dets in enumerate(data):
        t0 = time.perf_counter()
        tr.update(dets, i * 40_000_000, i, 640, 480)
        if i >= 200:  # warmed up: every track has its state
            times.append(time.perf_counter() - t0)
    frame = np.random.default_rng(1).integers(0, 255, (480, 640, 3), np.uint8)
    frame = np.ascontiguousarray(np.repeat(np.repeat(frame[::8, ::8], 8, 0), 8, 1))  # JPEG-like content
    enc = []
    for _ in range(200):
        t0 = time.perf_counter()
        encode_jpeg(frame, 80)
        enc.append(time.perf_counter() - t0)
    med, p95, jpeg = (float(np.median(times)) * 1e3, float(np.percentile(times, 95)) * 1e3,
                      float(np.median(enc)) * 1e3)
    return {"tracks": tracks, "frames": frames, "zones": len(ZONES), "ms_median": round(med, 4),
            "ms_p95": round(p95, 4), "target_ms": TARGET_MS, "ratio_to_target": round(med / TARGET_MS, 3),
            "peer_jpeg_encode_640x480_ms": round(jpeg, 4), "ratio_to_jpeg_encode": round(med / jpeg, 3)}


def _events(frames_dets: list[list[Detection]], cfg: EventsConfig) -> list[dict[str, Any]]:
    """Run the lifecycle; one record per event: label, first/last frame, box at new, track id."""
    tr = EventTracker("q", cfg, (QUALITY_ZONE,))
    got: dict[str, dict[str, Any]] = {}
    n = len(frames_dets)
    for i, dets in enumerate(frames_dets + [[]] * (cfg.lost_frames + 2)):
        for e in tr.update(dets, int(i * 1e9 / 10), i, 640, 480).events:
            rec = got.setdefault(e["id"], {"label": e["label"], "new": i, "box": e["box"], "track": e["track_id"],
                                           "end": None, "stationary": False})
            rec["stationary"] |= e["stationary"]
            if e["type"] == "end":
                rec["end"] = min(i, n - 1)
    for e in tr.close(int(n * 1e8)).events:
        got[e["id"]]["end"] = got[e["id"]]["end"] if got[e["id"]]["end"] is not None else n - 1
    return list(got.values())


def quality(clips: int, clip_frames: int, model: str) -> dict[str, Any]:
    from streamcam.capture.synthetic import SyntheticIRScene
    from streamcam.config import config_from_dict
    from streamcam.processor.stage import build_tracked_detector

    cfg = EventsConfig(min_frames=5, lost_frames=10, leave_frames=5)
    conf = config_from_dict({"processor": {"model": model}})
    tp_d = tp_g = n_d = n_g = 0
    confuser_events: list[int] = []
    per_clip = []
    for c in range(clips):
        seed = 100 + c
        scene = SyntheticIRScene(640, 480, seed=seed, people=3, confusers=3, fps=10)
        tracked = build_tracked_detector(conf)
        det_frames, gt_frames, lamps = [], [], {}
        for i in range(clip_frames):
            f = scene.frame(i)
            r, _ = tracked.process("q", f.image, "GRAY8", int(i * 1e8))
            det_frames.append([d for d in r.detections if d.track_id is not None])
            gt_frames.append([Detection(tuple(map(float, o.box)), 1.0, "person", int(o.id)) for o in f.persons])
            for o in f.objects:
                if o.label == "lamp":
                    lamps[o.id] = o.box
        det = _events(det_frames, cfg)
        gt = _events(gt_frames, cfg)
        gt_boxes = [{d.track_id: d.box for d in dets} for dets in gt_frames]
        used: set[int] = set()
        matched = 0
        for e in det:
            for j, g in enumerate(gt):
                if j in used or g["end"] < e["new"] or e["end"] < g["new"]:
                    continue
                box = gt_boxes[e["new"]].get(g["track"])
                if box is not None and _iou(e["box"], box) >= 0.3:
                    e["matched"] = j
                    used.add(j)
                    matched += 1
                    break
        for lamp_box in lamps.values():
            confuser_events.append(sum(1 for e in det if _iou(e["box"], lamp_box) >= 0.3))
        tp_d += matched
        tp_g += len(used)
        n_d += len(det)
        n_g += len(gt)
        per_clip.append({"seed": seed, "events": len(det), "truth": len(gt), "matched": matched,
                         "unmatched_events": [e for e in det if e.get("matched") is None],
                         "missed_truth": [g for j, g in enumerate(gt) if j not in used]})
        getattr(tracked.detector, "close", tracked.detector.engine.close)()
    return {"clips": per_clip, "precision": round(tp_d / n_d, 3) if n_d else None,
            "recall": round(tp_g / n_g, 3) if n_g else None, "target": 0.9,
            "static_confuser_events": confuser_events, "max_events_per_static_confuser": max(confuser_events, default=0)}


def ring_memory(fps: float = 25.0, pre_roll_s: float = 5.0, width: int = 640, height: int = 480) -> dict[str, Any]:
    from streamcam.capture.synthetic import SyntheticIRScene
    from streamcam.events.media import FrameRing
    from streamcam.publisher.annotate import annotate, encode_jpeg

    scene = SyntheticIRScene(width, height, seed=3, people=4, confusers=3, fps=fps)
    ring = FrameRing(pre_roll_s)
    for i in range(int(fps * pre_roll_s * 1.5)):
        ring.add(int(i * 1e9 / fps), encode_jpeg(annotate(scene.frame(i).image, None, []), 80))
    return {"fps": fps, "pre_roll_s": pre_roll_s, "frames": len(ring.frames), "bytes": ring.nbytes,
            "mib_per_camera": round(ring.nbytes / 2**20, 2), "size": f"{width}x{height}", "jpeg_quality": 80}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tracks", type=int, default=20)
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--clips", type=int, default=3)
    ap.add_argument("--clip-frames", type=int, default=400)
    ap.add_argument("--model", default="engines/person-ir.onnx")
    ap.add_argument("--skip-quality", action="store_true")
    args = ap.parse_args(argv)
    out: dict[str, Any] = {"cost": cost(args.tracks, args.frames), "ring_buffer": ring_memory()}
    if not args.skip_quality:
        out["quality"] = quality(args.clips, args.clip_frames, args.model)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
