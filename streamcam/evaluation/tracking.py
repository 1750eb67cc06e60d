"""Tracking quality on synthetic IR clips: raw per-frame CAM detections vs the stabilizer.

For each held-out scene seed (default 9000.., the test seeds of the default model) a clip
of ``frames`` frames at ``fps`` is rendered; the per-frame detector
(:class:`streamcam.processor.detector.Detector`) gives boxes and the CAM; then these
*methods* produce tracked boxes, all compared with the ground-truth persons:

* ``raw``: the detector's boxes with ids from a greedy frame-to-frame IoU association
  (IoU >= 0.3 with a box of the previous frame keeps its id, otherwise a new id): the
  "no stabilizer" baseline. (Fresh ids every frame would make IDF1 and ID switches
  meaningless, so the baseline gets this much help.)
* ``stabilized``: :class:`streamcam.stabilizer.Stabilizer` fed the detector's boxes, scored
  ``p(person) x CAM peak`` and *not* cut at ``min_score`` (the hysteresis decides).
* ``stabilized_peaks``: the Stabilizer fed :func:`streamcam.stabilizer.find_peaks` of the
  CAM (one box per peak), scored ``p(person) x peak value``.
* ``norfair``: norfair's ``Tracker`` (IoU distance, its own Kalman filter) fed the same
  boxes as ``stabilized``, for a side-by-side.
* ``norfair_corrected``: the same, fed the boxes after the stabilizer's size calibration
  (``StabilizerConfig.box_correction``): how much of the stabilizer's gain is that calibration.
* ``sort``, ``bytetrack``, ``ocsort``: roboflow's ``trackers`` package fed the same boxes as
  ``norfair`` (:mod:`.peer_trackers`), and ``*_corrected`` the calibrated ones. A peer that is not
  installed is left out and named in the result's ``peers_missing``.

The size calibration is fitted with :func:`fit_box_correction` (``--fit-box-correction``)
on scene seeds other than the evaluation's (5000.. for the default model; the evaluation
uses 9000..) and stored in the model's metadata (``--write``): it describes that model's
boxes, so it travels with the model. A config's ``stabilizer.box_correction``
overrides it.

Metrics (py-motmetrics, IoU distance, a match needs IoU >= 0.5): MOTA, IDF1, ID switches,
misses, false positives. And, identity-free (each frame's boxes matched 1:1 to GT by
Hungarian on IoU >= 0.5):

* **jitter** (px/frame): mean over consecutive matched frames of one GT person of
  ``|(c_pred - c_gt)_t - (c_pred - c_gt)_{t-1}|`` (the true motion removed);
* **flicker** (per 100 person-frames): gaps of 1-2 frames in the matches of one GT person
  that are followed by a match again.

Without a model (``simulate=True``) a noisy detector is simulated from the ground truth
(centre and size jitter, dropouts, false positives) to tune the stabilizer.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..datasets.synthetic import SyntheticIRScene
from ..protocol import Detection
from ..stabilizer import Stabilizer, StabilizerConfig, find_peaks
from ..geometry import iou_matrix
from ..stabilizer.box_correction import BoxCorrection
from .peer_trackers import peer_method, peer_methods

Box = Sequence[float]
Tracked = list[tuple[int, Box]]  # (id, box) of one frame
DEFAULT_OUT = "docs/quality/tracking.json"


# --------------------------------------------------------------------------- metrics
def _match(gt: Tracked, pred: Tracked, min_iou: float = 0.5) -> list[tuple[int, int]]:
    if not gt or not pred:
        return []
    iou = iou_matrix(np.array([b for _, b in gt], float), np.array([b for _, b in pred], float))
    r, c = linear_sum_assignment(-iou)
    return [(i, j) for i, j in zip(r, c) if iou[i, j] >= min_iou]


def _centre(b: Box) -> np.ndarray:
    return np.array([(b[0] + b[2]) / 2, (b[1] + b[3]) / 2])


def tracking_metrics(gt_frames: Sequence[Tracked], pred_frames: Sequence[Tracked], min_iou: float = 0.5) -> dict:
    """MOTA, IDF1, ID switches (motmetrics) plus jitter and flicker of ``pred`` against ``gt``."""
    import motmetrics as mm

    if len(gt_frames) != len(pred_frames):
        raise ValueError(f"tracking_metrics: expected as many GT as predicted frames, got "
                         f"{len(gt_frames)} and {len(pred_frames)}")
    acc = mm.MOTAccumulator(auto_id=True)
    offsets: dict[int, tuple[int, np.ndarray]] = {}
    steps: list[float] = []
    seen: dict[int, list[bool]] = {}
    for f, (gt, pred) in enumerate(zip(gt_frames, pred_frames)):
        if gt and pred:
            iou = iou_matrix(np.array([b for _, b in gt], float), np.array([b for _, b in pred], float))
            dist = np.where(iou >= min_iou, 1.0 - iou, np.nan)
        else:
            dist = np.zeros((len(gt), len(pred)))
        acc.update([g for g, _ in gt], [p for p, _ in pred], dist)
        matched = dict(_match(gt, pred, min_iou))
        for i, (gid, gbox) in enumerate(gt):
            seen.setdefault(gid, []).append(i in matched)
            if i in matched:
                off = _centre(pred[matched[i]][1]) - _centre(gbox)
                prev = offsets.get(gid)
                if prev is not None and prev[0] == f - 1:
                    steps.append(float(np.linalg.norm(off - prev[1])))
                offsets[gid] = (f, off)
    flicker = 0
    person_frames = sum(len(s) for s in seen.values())
    for s in seen.values():
        run = 0
        started = False
        for ok in s:
            if ok:
                if started and 1 <= run <= 2:
                    flicker += 1
                started, run = True, 0
            elif started:
                run += 1
    mh = mm.metrics.create()
    names = ["mota", "motp", "idf1", "num_switches", "num_misses", "num_false_positives", "num_objects",
             "num_unique_objects", "mostly_tracked"]
    summary = mh.compute(acc, metrics=names, name="clip")
    out = {k: float(summary[k].iloc[0]) for k in names}
    for k in ("num_switches", "num_misses", "num_false_positives", "num_objects", "num_unique_objects",
              "mostly_tracked"):
        out[k] = int(out[k])
    out["motp_iou"] = 1.0 - out.pop("motp") if math.isfinite(out["motp"]) else float("nan")
    out["jitter_px"] = float(np.mean(steps)) if steps else float("nan")
    out["flicker_gaps"] = flicker
    out["flicker_per_100"] = 100.0 * flicker / person_frames if person_frames else float("nan")
    out["person_frames"] = person_frames
    return out


# --------------------------------------------------------------------------- methods
class GreedyIoUIds:
    """The "no stabilizer" baseline: a box keeps the id of the previous frame's box it overlaps best."""

    def __init__(self, min_iou: float = 0.3) -> None:
        self.min_iou = min_iou
        self.prev: Tracked = []
        self.next_id = 1

    def update(self, boxes: Sequence[Box]) -> Tracked:
        out: Tracked = []
        used: set[int] = set()
        if boxes and self.prev:
            iou = iou_matrix(np.array(boxes, float), np.array([b for _, b in self.prev], float))
            pairs = sorted(((iou[i, j], i, j) for i in range(len(boxes)) for j in range(len(self.prev))), reverse=True)
            assign: dict[int, int] = {}
            for v, i, j in pairs:
                if v < self.min_iou:
                    break
                if i not in assign and j not in used:
                    assign[i] = j
                    used.add(j)
        else:
            assign = {}
        for i, b in enumerate(boxes):
            if i in assign:
                tid = self.prev[assign[i]][0]
            else:
                tid, self.next_id = self.next_id, self.next_id + 1
            out.append((tid, tuple(b)))
        self.prev = out
        return out


class SimulatedDetector:
    """Ground-truth persons made noisy like CAM boxes: jitter, dropouts, false positives."""

    def __init__(self, seed: int, center_std: float = 4.0, size_std_rel: float = 0.1, dropout: float = 0.08,
                 fp_rate: float = 0.1, frame_size: tuple[int, int] = (640, 480)) -> None:
        self.rng = np.random.default_rng(seed)
        self.center_std, self.size_std_rel, self.dropout, self.fp_rate = center_std, size_std_rel, dropout, fp_rate
        self.frame_size = frame_size

    def detect(self, persons) -> list[Detection]:
        rng, out = self.rng, []
        for o in persons:
            if rng.random() < self.dropout:
                continue
            x0, y0, x1, y1 = o.box
            w, h = (x1 - x0) * (1 + rng.normal(0, self.size_std_rel)), (y1 - y0) * (1 + rng.normal(0, self.size_std_rel))
            cx, cy = (x0 + x1) / 2 + rng.normal(0, self.center_std), (y0 + y1) / 2 + rng.normal(0, self.center_std)
            out.append(Detection((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), float(rng.uniform(0.5, 1)), "person"))
        if rng.random() < self.fp_rate:
            cx, cy = rng.uniform(40, self.frame_size[0] - 40), rng.uniform(100, self.frame_size[1] - 40)
            out.append(Detection((cx - 12, cy - 30, cx + 12, cy + 30), float(rng.uniform(0.5, 0.8)), "person"))
        return out


# --------------------------------------------------------------------------- clips
def _clip_inputs(scene: SyntheticIRScene, frames: int, detector=None, sim: SimulatedDetector | None = None,
                 peak_kwargs: dict | None = None, candidate_min_score: float = 0.25) -> dict[str, list]:
    """Per frame: GT, raw boxes (probability >= the detector's min_score), the stabilizer's
    candidates (as the live processor makes them: the same boxes and box rule, gated at
    ``candidate_min_score``, the stabilizer's ``score_leave``), peaks."""
    gt, raw, cand, peaks, ms = [], [], [], [], []
    size = (scene.width, scene.height)
    for i in range(frames):
        fr = scene.frame(i)
        gt.append([(o.id, o.box) for o in fr.persons])
        if sim is not None:
            dets = sim.detect(fr.persons)
            raw.append(dets)
            cand.append(dets)
            peaks.append(dets)
            continue
        t0 = time.perf_counter()
        gate = min(detector.min_score, candidate_min_score)
        res = detector.detect(fr.image, "GRAY8", min_score=gate)
        ms.append((time.perf_counter() - t0) * 1e3)
        p = float(res.probs[detector.class_indices[0]])
        raw.append(list(res.detections) if p >= detector.min_score else [])
        cand.append(list(res.detections))  # hysteresis needs the weak ones too (StabilizedDetector)
        if res.cam is None:
            peaks.append([])
            continue
        peaks.append([Detection(pk.box, p * pk.value, "person")
                      for pk in find_peaks(res.cam, size, **(peak_kwargs or {}))])
    return {"gt": gt, "raw": raw, "cand": cand, "peaks": peaks, "detector_ms": ms}


def _run_methods(inp: dict, fps: float, config: StabilizerConfig, frame_size: tuple[int, int],
                 min_score: float, peers: Sequence[str] = ("norfair", "norfair_corrected"),
                 detect_every: int = 1) -> dict[str, list[Tracked]]:
    """Each method over one clip's inputs. ``detect_every`` n: the network sees every n-th frame only
    (a detect rate below the frame rate, as ``processor.detect_every`` / ``detect_fps`` run it live):
    between, the stabilizer publishes its prediction, and the raw boxes and the peers hold the last
    detected frame's boxes (what publishing without a tracker would show)."""
    out: dict[str, list[Tracked]] = {m: [] for m in ("raw", "stabilized", "stabilized_peaks", *peers)}
    greedy = GreedyIoUIds()
    st, stp = Stabilizer(config), Stabilizer(config)
    others = {m: peer_method(m, fps) for m in peers}
    ms = []
    for i in range(len(inp["gt"])):
        t = i / fps
        k = i - i % detect_every  # the last frame the network saw
        out["raw"].append(greedy.update([d.box for d in inp["raw"][k]]))
        t0 = time.perf_counter()
        if i == k:
            out["stabilized"].append([(d.track_id, d.box) for d in st.update(inp["cand"][i], t, frame_size)])
            ms.append((time.perf_counter() - t0) * 1e3)
            out["stabilized_peaks"].append([(d.track_id, d.box) for d in stp.update(inp["peaks"][i], t, frame_size)])
        else:
            out["stabilized"].append([(d.track_id, d.box) for d in st.predict(t, frame_size)])
            out["stabilized_peaks"].append([(d.track_id, d.box) for d in stp.predict(t, frame_size)])
        strong = [d for d in inp["cand"][k] if d.score >= min_score * 0.5]
        scores = [d.score for d in strong]
        plain = [d.box for d in strong]
        fixed = [tuple(b) for b in config.box_correction.apply(np.array(plain, float).reshape(-1, 4))]
        for m, tracker in others.items():
            out[m].append(tracker.update(fixed if m.endswith("_corrected") else plain, scores))
    out["_stabilizer_ms"] = ms  # type: ignore[assignment]
    return out


def _portable(path) -> str:
    """A path inside the working directory as a relative one: result files name no machine paths."""
    p = Path(path).resolve()
    try:
        return p.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


def evaluate_tracking(model_path: str | None = None, seeds: Sequence[int] = (9000, 9001, 9002, 9003),
                      frames: int = 300, fps: float = 30.0, width: int = 640, height: int = 480,
                      config: StabilizerConfig | None = None, simulate: bool = False, min_score: float | None = None,
                      scene_kwargs: dict | None = None, detect_every: int = 1) -> dict:
    """Raw vs stabilized (and norfair) tracking metrics over synthetic clips; see the module doc.
    ``detect_every``: the network on every n-th frame only (:func:`_run_methods`)."""
    if int(detect_every) < 1:
        raise ValueError(f"detect_every: expected >= 1, got {detect_every!r}")
    config = config or StabilizerConfig()
    detector = None
    if not simulate:
        if model_path is None:
            raise ValueError("evaluate_tracking: expected a model_path (or simulate=True)")
        from ..processor.detector import Detector
        from ..processor.engines import create_engine

        engine = create_engine(str(model_path))
        ms = min_score if min_score is not None else float(getattr(engine.metadata, "min_score", 0.5) or 0.5)
        detector = Detector(engine, min_score=ms)
        config = config.for_model(engine.metadata.box_correction)
    else:
        config = config.for_model(None)
        ms = min_score if min_score is not None else 0.5
    peers, peers_missing = peer_methods()
    methods = ("raw", "stabilized", "stabilized_peaks", *peers)
    per_method: dict[str, dict[str, list]] = {m: {"gt": [], "pred": []} for m in methods}
    per_clip = []
    det_ms: list[float] = []
    st_ms: list[float] = []
    for seed in seeds:
        scene = SyntheticIRScene(width, height, seed=seed, fps=fps, **(scene_kwargs or {}))
        sim = SimulatedDetector(seed, frame_size=(width, height)) if simulate else None
        inp = _clip_inputs(scene, frames, detector, sim, candidate_min_score=config.score_leave)
        det_ms += inp["detector_ms"]
        res = _run_methods(inp, fps, config, (width, height), ms, peers, int(detect_every))
        st_ms += res.pop("_stabilizer_ms")  # type: ignore[arg-type]
        clip = {"seed": seed}
        for m in methods:
            # Offset ids per clip so that clips never share an id.
            per_method[m]["gt"] += [[(seed * 100000 + g, b) for g, b in fr] for fr in inp["gt"]]
            per_method[m]["pred"] += [[(seed * 100000 + p, b) for p, b in fr] for fr in res[m]]
            clip[m] = tracking_metrics(inp["gt"], res[m])
        per_clip.append(clip)
    totals = {m: tracking_metrics(per_method[m]["gt"], per_method[m]["pred"]) for m in methods}
    raw, stab = totals["raw"], totals["stabilized"]

    def ratio(a: float, b: float) -> float:
        return float(a / b) if b > 0 else float("inf")

    return {
        "model": None if simulate else _portable(model_path),
        "detector": "simulated from ground truth (jitter, dropouts, false positives)" if simulate else "CAM",
        "seeds": list(seeds), "frames_per_clip": frames, "fps": fps, "frame_size": [width, height],
        "min_score": ms, "stabilizer_config": _config_dict(config), "detect_every": int(detect_every),
        "baseline": "raw: detector boxes, ids by greedy frame-to-frame IoU >= 0.3",
        "metrics": totals,
        "peers_missing": peers_missing,
        "improvement": {
            "jitter_reduction": ratio(raw["jitter_px"], stab["jitter_px"]),
            "flicker_reduction": ratio(raw["flicker_per_100"], stab["flicker_per_100"]),
            "mota_gain": stab["mota"] - raw["mota"], "idf1_gain": stab["idf1"] - raw["idf1"],
        },
        "per_clip": per_clip,
        "timing_ms": {"detector_median": float(np.median(det_ms)) if det_ms else None,
                      "stabilizer_median": float(np.median(st_ms)) if st_ms else None},
    }


def fit_box_correction(model_path: str, seeds: Sequence[int] = (5000, 5001, 5002, 5003, 5004, 5005, 5006, 5007),
                       frames: int = 300, fps: float = 30.0, width: int = 640, height: int = 480,
                       min_iou: float = 0.2) -> BoxCorrection:
    """Least-squares size calibration of the detector's boxes against ground truth (see BoxCorrection).

    Every detector box (the stabilizer's candidates, probability >= 0.25) is paired with a
    ground-truth person (Hungarian on IoU, pairs with IoU >= ``min_iou``); boxes holding the
    centres of two or more persons (merged blobs, which the stabilizer treats apart) are left
    out. Fits ``log(w_gt / w) = a + b' log w + c log h`` and the same for ``h``. Use seeds
    that the evaluation does not (the evaluation uses 9000..).
    """
    from ..processor.detector import Detector
    from ..processor.engines import create_engine

    detector = Detector(create_engine(str(model_path)), min_score=0.25)
    feats, targets = [], []
    for seed in seeds:
        scene = SyntheticIRScene(width, height, seed=seed, fps=fps)
        for i in range(frames):
            fr = scene.frame(i)
            res = detector.detect(fr.image, "GRAY8")
            gts = np.array([o.box for o in fr.persons], float).reshape(-1, 4)
            cand = np.array([d.box for d in res.detections], float).reshape(-1, 4)
            if not len(gts) or not len(cand):
                continue
            gc = np.stack([(gts[:, 0] + gts[:, 2]) / 2, (gts[:, 1] + gts[:, 3]) / 2], axis=1)
            iou = iou_matrix(gts, cand)
            for a, b in zip(*linear_sum_assignment(-iou)):
                x0, y0, x1, y1 = cand[b]
                holds = np.sum((gc[:, 0] >= x0) & (gc[:, 0] <= x1) & (gc[:, 1] >= y0) & (gc[:, 1] <= y1))
                if iou[a, b] < min_iou or holds > 1:
                    continue
                w, h = x1 - x0, y1 - y0
                gw, gh = gts[a, 2] - gts[a, 0], gts[a, 3] - gts[a, 1]
                feats.append((1.0, math.log(w), math.log(h)))
                targets.append((math.log(gw / w), math.log(gh / h)))
    if len(feats) < 10:
        raise ValueError(f"fit_box_correction: expected at least 10 matched boxes, got {len(feats)}")
    coef = np.linalg.lstsq(np.array(feats), np.array(targets), rcond=None)[0]  # [3, 2]
    width_c = coef[:, 0] + np.array([0.0, 1.0, 0.0])
    height_c = coef[:, 1] + np.array([0.0, 0.0, 1.0])
    return BoxCorrection(tuple(round(float(v), 4) for v in width_c), tuple(round(float(v), 4) for v in height_c))


def _config_dict(config: StabilizerConfig) -> dict[str, Any]:
    import dataclasses

    # The settings the stabilizer ran with; enabled and input are not among them (every method here
    # runs, each on its own input).
    d = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("enabled", "input")}
    return json.loads(json.dumps(d, default=str))


def _fmt(r: dict) -> str:
    lines = [f"{'method':20s} {'MOTA':>7s} {'IDF1':>7s} {'IDsw':>5s} {'FN':>6s} {'FP':>6s} {'jitter':>7s} {'flicker':>8s}"]
    for m, v in r["metrics"].items():
        lines.append(f"{m:20s} {v['mota']:7.3f} {v['idf1']:7.3f} {v['num_switches']:5d} {v['num_misses']:6d} "
                     f"{v['num_false_positives']:6d} {v['jitter_px']:7.2f} {v['flicker_per_100']:8.2f}")
    imp = r["improvement"]
    lines.append(f"jitter reduced {imp['jitter_reduction']:.2f}x, flicker reduced {imp['flicker_reduction']:.2f}x, "
                 f"MOTA {imp['mota_gain']:+.3f}, IDF1 {imp['idf1_gain']:+.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``streamcam eval --tracking``: write the tracking quality file and print a table."""
    ap = argparse.ArgumentParser(prog="streamcam eval --tracking", description="Tracking quality on synthetic IR clips")
    ap.add_argument("--model", default="engines/person-ir.onnx")
    ap.add_argument("--seeds", type=int, nargs="+", default=[9000, 9001, 9002, 9003])
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--simulate", action="store_true", help="no model: noisy ground truth as the detector")
    ap.add_argument("--config", default="configs/default.yaml", help="pipeline YAML whose stabilizer settings are used")
    ap.add_argument("--fit-box-correction", action="store_true",
                    help="fit stabilizer.box_correction on --seeds (not the evaluation's) and print it")
    ap.add_argument("--write", action="store_true",
                    help="with --fit-box-correction: store it in the model's metadata, where the stabilizer reads it")
    ap.add_argument("--detect-every", type=int, default=1,
                    help="the network on every n-th frame, the stabilizer's prediction between (a detect rate)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="JSON output ('-' for none)")
    a = ap.parse_args(argv)
    if a.detect_every < 1:
        ap.error(f"--detect-every: expected >= 1, got {a.detect_every}")
    if a.fit_box_correction:
        bc = fit_box_correction(a.model, seeds=a.seeds, frames=a.frames, fps=a.fps)
        print(f"box_correction: {{width: {list(bc.width)}, height: {list(bc.height)}}}  # seeds {a.seeds}")
        if a.write:
            from ..processor.model_meta import read_metadata, update_metadata

            prov = dict(read_metadata(a.model).provenance)
            prov["box_correction_fit"] = {"seeds": list(a.seeds), "frames": a.frames, "fps": a.fps,
                                          "command": "python -m streamcam.evaluation.tracking --fit-box-correction "
                                                     "--write --seeds " + " ".join(map(str, a.seeds))}
            update_metadata(a.model, box_correction={"width": list(bc.width), "height": list(bc.height)},
                            provenance=prov)
            print(f"wrote it into {a.model}")
        return 0
    from ..config import load_config

    config = StabilizerConfig() if a.simulate else load_config(a.config).stabilizer
    r = evaluate_tracking(a.model, seeds=a.seeds, frames=a.frames, fps=a.fps, simulate=a.simulate, config=config,
                          detect_every=a.detect_every)
    print(_fmt(r))
    if a.out != "-":
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(r, indent=1, default=float) + "\n")
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
