"""Events: the added cost per frame of zones + lifecycle, and event precision/recall on synthetic clips.

    python -m tools.bench_events [--tracks 20] [--frames 2000] [--clips 3] [--clip-frames 400]

1. **Cost** — 20 tracked detections per frame moving through 3 zones, a mask and a counting
   line; ``EventTracker.update`` timed per frame (median, p95) against the 0.5 ms target and,
   as the peer measured in the same run, the publisher's JPEG encode of one 640x480 frame
   (the cost every published frame already pays).
2. **Quality** — synthetic IR clips (``SyntheticIRScene``: people and confusers, ground
   truth per frame) through the live code: the default model and the stabilizer
   (``StabilizedDetector``), then ``EventTracker`` with one zone (the lower half, where people
   walk nearer the camera). Ground-truth events are the same lifecycle run on the ground-truth
   persons (their ids as track ids). Events are paired one to one (Hungarian) on the fraction
   of the frames both have a box in where the detected box hits the ground-truth one (its centre
   inside the ground-truth box grown by 25 % per side, or IoU >= 0.3); a pair needs half of
   them. Precision = paired events / events, recall = paired ground truth / ground truth; events
   starting in a clip's first or last 30 frames are left out on both sides.
   Static confusers (lamps) must give at most one event each, however long the clip.
3. **A stationary confuser that flickers** (:func:`parked_flicker`): one event, whatever the bursts.
4. **Ring buffer memory** per camera: the JPEGs of ``pre_roll_s`` seconds at the stream rate.

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
    frame = np.random.default_rng(1).integers(0, 255, (60, 80, 3), np.uint8)
    frame = np.ascontiguousarray(np.repeat(np.repeat(frame, 8, 0), 8, 1))  # 640x480, JPEG-like blocks
    times, enc = [], []
    # Interleaved, frame by frame: a load that comes and goes (a shared machine) hits both alike.
    for i, dets in enumerate(data):
        t0 = time.perf_counter()
        tr.update(dets, i * 40_000_000, i, 640, 480)
        t1 = time.perf_counter()
        if i >= 200:  # warmed up: every track has its state
            times.append(t1 - t0)
            t0 = time.perf_counter()
            encode_jpeg(frame, 80)
            enc.append(time.perf_counter() - t0)
    med, p95, jpeg = (float(np.median(times)) * 1e3, float(np.percentile(times, 95)) * 1e3,
                      float(np.median(enc)) * 1e3)
    return {"tracks": tracks, "frames": frames, "zones": len(ZONES), "ms_median": round(med, 4),
            "ms_p95": round(p95, 4), "target_ms": TARGET_MS, "ratio_to_target": round(med / TARGET_MS, 3),
            "peer_jpeg_encode_640x480_ms": round(jpeg, 4), "ratio_to_jpeg_encode": round(med / jpeg, 3)}


def _events(frames_dets: list[list[Detection]], cfg: EventsConfig) -> list[dict[str, Any]]:
    """Run the lifecycle; one record per event: label, first/last frame, its box per frame."""
    tr = EventTracker("q", cfg, (QUALITY_ZONE,))
    got: dict[str, dict[str, Any]] = {}
    n = len(frames_dets)
    for i, dets in enumerate(frames_dets + [[]] * (cfg.lost_frames + 2)):
        for e in tr.update(dets, int(i * 1e9 / 10), i, 640, 480).events:
            rec = got.setdefault(e["id"], {"label": e["label"], "new": i, "end": None, "stationary": False,
                                           "boxes": {}})
            rec["stationary"] |= e["stationary"]
            if e["type"] == "end":
                rec["end"] = min(i, n - 1)
        for ev in tr.open_events:
            if ev.id in got and ev.last_seen_ns == int(i * 1e9 / 10):
                got[ev.id]["boxes"][i] = ev.box
    for e in tr.close(int(n * 1e8)).events:
        if got[e["id"]]["end"] is None:
            got[e["id"]]["end"] = n - 1
    return list(got.values())


def _hit(det_box, gt_box, grow: float = 0.25) -> bool:
    """The detected box's centre inside the ground-truth box grown by ``grow`` of its size per side
    (the centre-hit rule of ``streamcam eval --frames-dir``), or IoU >= 0.3."""
    cx, cy = (det_box[0] + det_box[2]) / 2, (det_box[1] + det_box[3]) / 2
    gw, gh = gt_box[2] - gt_box[0], gt_box[3] - gt_box[1]
    inside = gt_box[0] - grow * gw <= cx <= gt_box[2] + grow * gw and gt_box[1] - grow * gh <= cy <= gt_box[3] + grow * gh
    return inside or _iou(det_box, gt_box) >= 0.3


def _clip_frames(seed: int, clip_frames: int, model: str, cache: str | None):
    """Per frame: the tracked detections of the live code, the ground-truth persons, and the lamps."""
    import os

    path = os.path.join(cache, f"events-{seed}-{clip_frames}.json") if cache else None
    if path and os.path.exists(path):
        with open(path) as fh:
            raw = json.load(fh)
    else:
        from streamcam.datasets.synthetic import SyntheticIRScene
        from streamcam.config import config_from_dict
        from streamcam.processor.stage import build_stabilized_detector

        scene = SyntheticIRScene(640, 480, seed=seed, people=3, confusers=3, fps=10)
        tracked = build_stabilized_detector(config_from_dict({"processor": {"model": model}}))
        raw = {"det": [], "gt": [], "lamps": {}}
        for i in range(clip_frames):
            f = scene.frame(i)
            r, _ = tracked.process("q", f.image, "GRAY8", int(i * 1e8))
            raw["det"].append([[list(d.box), d.score, d.label, d.track_id] for d in r.detections if d.track_id is not None])
            raw["gt"].append([[list(map(float, o.box)), 1.0, "person", int(o.id)] for o in f.persons])
            raw["lamps"].update({str(o.id): list(o.box) for o in f.objects if o.label == "lamp"})
        getattr(tracked.detector, "close", tracked.detector.engine.close)()
        if path:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)  # a --cache folder not made yet
            with open(path, "w") as fh:
                json.dump(raw, fh)

    def dets(frames):
        return [[Detection(tuple(b), s, lab, t) for b, s, lab, t in f] for f in frames]

    return dets(raw["det"]), dets(raw["gt"]), list(raw["lamps"].values())


def _brief(e: dict[str, Any]) -> dict[str, Any]:
    first = min(e["boxes"]) if e["boxes"] else None
    return {"new": e["new"], "end": e["end"], "first_box": e["boxes"].get(first), "stationary": e["stationary"]}


def quality_config() -> EventsConfig:
    """The lifecycle settings of the quality runs."""
    return EventsConfig(min_frames=5, lost_frames=10, leave_frames=5)


def event_overlap(det: list[dict], gt: list[dict]) -> np.ndarray:
    """``[len(det), len(gt)]``: of the frames both events have a box in, the fraction where the
    detected box hits the ground-truth one (the score the one-to-one pairing maximises)."""
    score = np.zeros((len(det), len(gt)))
    for a, e in enumerate(det):
        for b, g in enumerate(gt):
            both = [f for f in e["boxes"] if f in g["boxes"]]
            if both:
                score[a, b] = sum(_hit(e["boxes"][f], g["boxes"][f]) for f in both) / len(both)
    return score


def quality(clips: int, clip_frames: int, model: str, cache: str | None = None, margin: int = 30) -> dict[str, Any]:
    """Event precision/recall; events starting in the first or last ``margin`` frames of a clip are
    left out on both sides (the detector's tracks need a few frames to confirm, and an event that
    starts as the clip ends is cut: neither is a property of the events)."""
    cfg = quality_config()
    tp_d = tp_g = n_d = n_g = 0
    confuser_events: list[int] = []
    per_clip = []
    for c in range(clips):
        seed = 100 + c
        det_frames, gt_frames, lamps = _clip_frames(seed, clip_frames, model, cache)
        scored = lambda e: margin <= e["new"] < clip_frames - margin  # noqa: E731
        det = _events(det_frames, cfg)
        gt = _events(gt_frames, cfg)
        # One-to-one matching (Hungarian) on the fraction of the frames both events have a box in
        # where the detected box hits the ground-truth one; a pair needs half of them.
        from scipy.optimize import linear_sum_assignment

        score = event_overlap(det, gt)
        used: set[int] = set()
        if score.size:
            rows, cols = linear_sum_assignment(-score)
            for a, b in zip(rows, cols):
                if score[a, b] >= 0.5:
                    det[a]["matched"] = int(b)
                    used.add(int(b))
        for lamp_box in lamps:  # events of the detector on a lamp: unpaired, and on the lamp most of the time
            confuser_events.append(sum(1 for e in det if "matched" not in e and e["boxes"] and sum(
                _iou(b, lamp_box) >= 0.3 for b in e["boxes"].values()) >= len(e["boxes"]) / 2))
        det_s = [e for e in det if scored(e)]
        gt_s = [j for j, g in enumerate(gt) if scored(g)]
        matched_d = sum(1 for e in det_s if "matched" in e)
        matched_g = sum(1 for j in gt_s if j in used)
        tp_d += matched_d
        tp_g += matched_g
        n_d += len(det_s)
        n_g += len(gt_s)
        per_clip.append({"seed": seed, "events": len(det_s), "truth": len(gt_s), "matched_events": matched_d,
                         "matched_truth": matched_g,
                         "unmatched_events": [_brief(e) for e in det_s if "matched" not in e],
                         "missed_truth": [_brief(gt[j]) for j in gt_s if j not in used]})
    return {"clips": per_clip, "margin_frames": margin, "precision": round(tp_d / n_d, 3) if n_d else None,
            "recall": round(tp_g / n_g, 3) if n_g else None, "target": 0.9,
            "static_confuser_events": confuser_events, "max_events_per_static_confuser": max(confuser_events, default=0)}


def parked_flicker(clip_frames: int = 3000, seed: int = 5) -> dict[str, Any]:
    """A stationary confuser the detector keeps losing: a fixed box (with 2 px jitter) seen in bursts
    of 2-8 s, gone for 1-4 s between them (longer than ``lost_frames``), a new track id each burst,
    beside a person walking through. It must stay one (stationary) event, however many bursts."""
    rng = np.random.default_rng(seed)
    cfg = EventsConfig(min_frames=5, lost_frames=10, stationary_s=5.0)
    tr = EventTracker("q", cfg, (QUALITY_ZONE,))
    tid, on, left, news, bursts = 100, True, 50, [], 1
    for i in range(clip_frames):
        left -= 1
        if left <= 0:
            on = not on
            left = int(rng.uniform(20, 80) if on else rng.uniform(10, 40))
            if on:
                tid += 1
                bursts += 1
        dets = []
        if on:
            j = rng.normal(0, 2, 4)
            dets.append(Detection((300 + j[0], 300 + j[1], 340 + j[2], 420 + j[3]), 0.8, "person", tid))
        x = (i * 6) % 900 - 100  # a walker every 150 frames, through the zone, with its own ids
        if 0 <= x <= 600:
            dets.append(Detection((x, 330, x + 40, 450), 0.9, "person", 1000 + i // 150))
        news += [e for e in tr.update(dets, int(i * 1e8), i, 640, 480).events if e["type"] == "new"]
    parked = [e for e in news if 280 <= e["box"][0] <= 320 and e["box"][3] < 425]
    return {"frames": clip_frames, "bursts": bursts, "track_ids": tid - 99, "events_on_the_confuser": len(parked),
            "walker_events": len(news) - len(parked), "walkers": clip_frames // 150}


def ring_memory(fps: float = 25.0, pre_roll_s: float = 5.0, width: int = 640, height: int = 480) -> dict[str, Any]:
    from streamcam.datasets.synthetic import SyntheticIRScene
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
    ap.add_argument("--cache", help="keep each clip's detections here (re-runs score without the detector)")
    args = ap.parse_args(argv)
    out: dict[str, Any] = {"cost": cost(args.tracks, args.frames), "ring_buffer": ring_memory(),
                           "parked_flicker": parked_flicker()}
    if not args.skip_quality:
        out["quality"] = quality(args.clips, args.clip_frames, args.model, args.cache)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
