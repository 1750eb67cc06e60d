"""Real-footage evaluation: a detection method on a MOTChallenge sequence, raw and stabilized.

A *method* turns one frame into two sets of boxes: ``raw``, its per-frame output (no
memory across frames), and ``stabilized``, the same boxes after the stabilizer
(:class:`streamcam.stabilizer.Stabilizer`) with track ids. streamcam itself is one method
(:class:`StreamcamMethod`: the ``Detector`` and stabilizer exactly as
``build_stabilized_detector`` builds them for the live processor); the peers in
``tools/peers`` are others, so all are scored by the same code.

Per sequence (or half), for ``raw`` and ``stabilized``:

* **localization**: fraction of ground-truth boxes matched 1:1 at IoU >= 0.5
  (:func:`streamcam.evaluation.localization.localization_accuracy`);
* **precision**: matched boxes / predicted boxes;
* **MOTA, IDF1, ID switches** (py-motmetrics, IoU >= 0.5; the code of the synthetic
  tracking evaluation, :func:`streamcam.evaluation.tracking.tracking_metrics`); raw boxes
  get ids by greedy frame-to-frame IoU (``GreedyIoUIds``), the no-stabilizer baseline;
* **HOTA** (TrackEval's, averaged over IoU 0.05..0.95) when ``trackeval`` is installed.

Boxes flagged "ignore" in the ground truth (flag 0) are not people to find, and a
predicted box that matches no person but overlaps an ignored box with IoU >= 0.5 is
removed before scoring, so it is no false positive either (MOTChallenge's treatment of
ignore regions, done here with greedy matching).

Time per frame (CPU, median): ``engine`` (the network alone) and ``total`` (everything
from the decoded frame to the tracked boxes; JPEG decoding excluded). Each run starts
the stabilizer afresh at the first frame of the part evaluated.
"""

from __future__ import annotations

import contextlib
import io
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from ..protocol import Detection
from .localization import iou, localization_accuracy, match_boxes
from .mot import Box, MotFrame, MotSequence
from .tracking import GreedyIoUIds, Tracked, tracking_metrics


@dataclass(frozen=True)
class MethodFrame:
    """One frame through a method."""

    raw: list[Detection]
    """Per-frame boxes (no tracking)."""
    stabilized: list[Detection]
    """Tracked boxes with ``track_id``."""
    engine_ms: float
    """The network (or the peer's detector) alone."""
    total_ms: float
    """Decoded frame to tracked boxes."""
    extra: dict[str, Any] = field(default_factory=dict)


class Method(Protocol):
    """A detection method as the real-footage evaluation sees it."""

    name: str

    def reset(self) -> None:
        """Forget all tracks (a new sequence starts)."""

    def frame(self, frame: MotFrame, t: float, frame_size: tuple[int, int]) -> MethodFrame:
        """Boxes of one frame at time ``t`` (s, the media's clock)."""


class StreamcamMethod:
    """streamcam's detector + stabilizer (a ``StabilizedDetector``), as the live processor runs them.

    ``detect_every`` n: the network sees every n-th frame of a sequence only and the stabilizer's
    prediction stands in between (``processor.detect_every`` live, where the machine cannot run the
    network on every frame); a skipped frame's raw boxes are the last detected frame's."""

    def __init__(self, stabilized, name: str = "streamcam", detect_every: int = 1) -> None:
        if int(detect_every) < 1:
            raise ValueError(f"detect_every: expected >= 1, got {detect_every!r}")
        self.stabilized = stabilized
        self.name = name
        self.detect_every = int(detect_every)
        self._stream = 0
        self._seen = 0
        self._last: tuple[Any, list] | None = None

    def reset(self) -> None:
        self._stream += 1  # a fresh stream id: the StabilizedDetector keeps one stabilizer per stream
        self._seen = 0
        self._last = None

    def warm(self, frame: MotFrame, t: float) -> None:
        """Show the detector a frame that is not scored (the footage before the scored part), so that
        a detector keeping a background (:meth:`~streamcam.processor.detector.Detector.observe`)
        starts with one, as a camera that has been running does."""
        det = self.stabilized.detector
        if getattr(det, "watches_background", False):
            det.clock = lambda: t
            det.observe(_read(frame), f"{self.name}-{self._stream}")

    def frame(self, frame: MotFrame, t: float, frame_size: tuple[int, int]) -> MethodFrame:
        stream = f"{self.name}-{self._stream}"
        skip = self._last is not None and self._seen % self.detect_every != 0
        self._seen += 1
        if skip:
            last, raw = self._last
            t0 = time.perf_counter()
            predicted, _ = self.stabilized.predict(stream, last, frame_size, int(round(t * 1e9)))
            return MethodFrame(list(raw), list(predicted.detections), float("nan"),
                               (time.perf_counter() - t0) * 1e3, {"probs": last.probs, "predicted": True})
        image = _read(frame)
        det = self.stabilized.detector
        det.clock = lambda: t  # the background samples by the sequence's time, not this machine's
        t0 = time.perf_counter()
        result = det.detect(image, "BGR8", min_score=self.stabilized.candidate_min_score, stream=stream)
        size = (image.shape[1], image.shape[0])
        tracked, _ = self.stabilized.track(stream, result, size, int(round(t * 1e9)))
        total = (time.perf_counter() - t0) * 1e3
        # The per-frame output: boxes of the classes whose probability passes processor.min_score.
        names = list(det.class_names)
        raw = [d for d in result.detections
               if d.label not in names or float(result.probs[det.class_indices[names.index(d.label)]]) >= det.min_score]
        self._last = (result, raw)
        return MethodFrame(raw, list(tracked.detections), float(result.timings_ms.get("engine", float("nan"))), total,
                           {"probs": result.probs})


# --------------------------------------------------------------------------- scoring
def _read(frame: MotFrame):
    import cv2

    image = cv2.imread(str(frame.path), cv2.IMREAD_COLOR)
    if image is None:
        from ..errors import DataError

        raise DataError(f"{frame.path}: not a readable image")
    return image


def drop_ignored(pred: Tracked, gt: Sequence[tuple[int, Box]], ignore: Sequence[Box], min_iou: float = 0.5) -> Tracked:
    """``pred`` without the boxes that match no GT person but an ignored box (IoU >= ``min_iou``)."""
    if not ignore or not pred:
        return list(pred)
    matched = {i for i, _, _ in match_boxes([b for _, b in pred], [b for _, b in gt], min_iou)}
    return [p for i, p in enumerate(pred) if i in matched or max(iou(p[1], g) for g in ignore) < min_iou]


def hota(gt_frames: Sequence[Tracked], pred_frames: Sequence[Tracked]) -> dict[str, float] | None:
    """TrackEval's HOTA, DetA, AssA (means over IoU 0.05..0.95); None when trackeval is not installed."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # it reports optional datasets it cannot import
            from trackeval.metrics import HOTA
    except ImportError:
        return None
    from ..geometry import iou_matrix

    gmap: dict[int, int] = {}
    pmap: dict[int, int] = {}
    data: dict[str, Any] = {"gt_ids": [], "tracker_ids": [], "similarity_scores": []}
    for gt, pred in zip(gt_frames, pred_frames):
        data["gt_ids"].append(np.array([gmap.setdefault(g, len(gmap)) for g, _ in gt], int))
        data["tracker_ids"].append(np.array([pmap.setdefault(p, len(pmap)) for p, _ in pred], int))
        a = np.array([b for _, b in gt], float).reshape(-1, 4)
        b = np.array([b for _, b in pred], float).reshape(-1, 4)
        data["similarity_scores"].append(iou_matrix(a, b) if len(a) and len(b) else np.zeros((len(a), len(b))))
    data.update(num_gt_ids=len(gmap), num_tracker_ids=len(pmap), num_gt_dets=sum(len(f) for f in gt_frames),
                num_tracker_dets=sum(len(f) for f in pred_frames))
    r = HOTA().eval_sequence(data)
    return {k.lower(): float(np.mean(r[k])) for k in ("HOTA", "DetA", "AssA")}


def score_tracks(gt_frames: Sequence[Tracked], ignore_frames: Sequence[Sequence[Box]],
                 pred_frames: Sequence[Tracked]) -> dict[str, Any]:
    """Localization, precision, MOTA, IDF1, ID switches (and HOTA) of tracked boxes (see the module doc)."""
    pred = [drop_ignored(p, g, ig) for p, g, ig in zip(pred_frames, gt_frames, ignore_frames)]
    gts = [[b for _, b in g] for g in gt_frames]
    boxes = [[b for _, b in p] for p in pred]
    hits = sum(len(match_boxes(p, g, 0.5)) for p, g in zip(boxes, gts))
    n_pred = sum(len(p) for p in boxes)
    m = tracking_metrics(gt_frames, pred)
    out = {"localization": localization_accuracy(boxes, gts), "precision": hits / n_pred if n_pred else float("nan"),
           "mota": m["mota"], "idf1": m["idf1"], "id_switches": m["num_switches"], "misses": m["num_misses"],
           "false_positives": m["num_false_positives"], "gt_boxes": m["num_objects"], "predicted_boxes": n_pred,
           "ignored_dropped": sum(len(a) for a in pred_frames) - n_pred}
    h = hota(gt_frames, pred)
    if h is not None:
        out.update(h)
    return out


def evaluate_sequence(seq: MotSequence, method: Method, warmup: MotSequence | None = None) -> dict[str, Any]:
    """Run ``method`` over the frames of ``seq`` (from a fresh start) and score raw and stabilized boxes.
    ``warmup``: frames shown first and not scored, to a method that keeps a background (``warm``)."""
    method.reset()
    if warmup is not None and hasattr(method, "warm"):
        for f in warmup.frames:
            method.warm(f, (f.index - 1) / warmup.fps)
    ids = GreedyIoUIds()
    gt, ignore, raw, stab, engine_ms, total_ms = [], [], [], [], [], []
    size = (seq.width, seq.height)
    for f in seq.frames:
        out = method.frame(f, (f.index - 1) / seq.fps, size)
        gt.append(list(f.gt))
        ignore.append(list(f.ignore))
        raw.append(ids.update([d.box for d in out.raw]))
        stab.append([(int(d.track_id), d.box) for d in out.stabilized if d.track_id is not None])
        engine_ms.append(out.engine_ms)
        total_ms.append(out.total_ms)
    return {"sequence": seq.name, "half": seq.part, "frames": len(seq.frames),
            "first_frame": seq.frames[0].index if seq.frames else None, "gt_boxes": seq.boxes, "gt_ids": len(seq.ids),
            "method": method.name, "raw": score_tracks(gt, ignore, raw), "stabilized": score_tracks(gt, ignore, stab),
            "ms_per_frame": {"engine": _median(engine_ms), "total": _median(total_ms)}}


def _median(v: Sequence[float]) -> float | None:
    v = [x for x in v if x == x]
    return round(float(np.median(v)), 3) if v else None


def format_table(rows: Sequence[dict[str, Any]]) -> str:
    """A markdown table of :func:`evaluate_sequence` results: one line per method x (raw, stabilized)."""
    lines = ["| sequence (half) | method | localization | precision | MOTA | IDF1 | ID sw | HOTA | ms/frame (engine / total) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ms = r["ms_per_frame"]
        for kind in ("raw", "stabilized"):
            v = r[kind]
            name = r["method"] + "".join(f" {k} {v:g}" for k, v in (r.get("settings") or {}).items())
            if isinstance(r.get("threshold"), dict):
                name += f" (thr {r['threshold'][kind]:g})"
            hota_s = f"{v['hota']:.3f}" if "hota" in v else "-"
            lines.append(f"| {r['sequence']} ({r['half']}) | {name}, {kind} | {v['localization']:.3f} | "
                         f"{_f(v['precision'])} | {v['mota']:.3f} | {_f(v['idf1'])} | {v['id_switches']} | {hota_s} | "
                         f"{_f(ms['engine'], 1)} / {_f(ms['total'], 1)} |")
    return "\n".join(lines)


def _f(v, digits: int = 3) -> str:
    return "-" if v is None or v != v else f"{v:.{digits}f}"


def evaluate_mot(cfg, seq_dirs: Sequence[str], half: str = "second", progress: bool = True,
                 detect_every: int = 1) -> dict[str, Any]:
    """``streamcam eval --mot``: the config's detector + stabilizer on each sequence's ``half``, the
    network on every ``detect_every``-th frame (:class:`StreamcamMethod`)."""
    import sys

    from ..processor.stage import build_stabilized_detector
    from .mot import read_sequence
    from .tracking import _portable

    whole = [read_sequence(d) for d in seq_dirs]  # every folder checked before the model loads
    seqs = [w.half(half) for w in whole]
    # the second half starts where a running camera would be: its background seen in the first half
    warmups = [w.half("first") if half == "second" else None for w in whole]
    stabilized = build_stabilized_detector(cfg)
    method = StreamcamMethod(stabilized, detect_every=detect_every)
    rows = []
    try:
        for seq, warmup in zip(seqs, warmups):
            if progress:
                print(f"eval --mot: {seq.name} ({seq.part} half, {len(seq.frames)} frames)", file=sys.stderr, flush=True)
            rows.append(evaluate_sequence(seq, method, warmup=warmup))
    finally:
        getattr(stabilized.detector, "close", stabilized.detector.engine.close)()
    return {"model": _portable(cfg.model_path()), "config": cfg.name, "half": half, "detect_every": int(detect_every),
            "min_score": stabilized.detector.min_score, "cam_threshold": stabilized.detector.threshold,
            "stabilizer": {"enabled": cfg.stabilizer.enabled, "input": cfg.stabilizer.input},
            "hota": "TrackEval" if rows and "hota" in rows[0]["raw"] else "not computed (pip install --no-deps trackeval)",
            "sequences": rows}
