"""Localization on a folder of real frames with box labels: ``streamcam eval --frames-dir DIR --labels FILE``.

    streamcam eval --frames-dir ../shared/data/thermal/LLVIP-sample \\
        --labels tests/data/llvip-sample-labels.json --split evaluation [--model M.onnx | --config C.yaml]

Each frame goes through the pipeline's own :class:`~streamcam.processor.detector.Detector`
(built from the config by :func:`~streamcam.processor.stage.build_detector`: the same
preprocessing, engine, CAM, box rule and score gate as the live processor; one frame at a
time, no tracking: the frames are stills). The boxes are scored as
:mod:`streamcam.evaluation.localization` scores synthetic frames:

* ``localization_accuracy``: labelled people matched by a box at IoU >= 0.5 (1:1, greedy by
  decreasing IoU, :func:`~streamcam.evaluation.localization.match_boxes`), over all people;
* ``box_precision``: matched boxes over all boxes reported;
* ``centre_hit_rate``: boxes whose centre lies inside some labelled person box, over all boxes
  (a looser "it pointed at a person" figure: a box on the right person with the wrong size
  still counts);
* ``persons_centre_hit``: people whose box holds the centre of at least one reported box;
* ``mean_best_iou``: each person's best IoU with any box.

Labels: either the VAL.json of ``streamcam calibrate --labels`` (``{"frames": [{"image": PATH,
"boxes": [[x0, y0, x1, y1], ...], "split": NAME}, ...]}``, ``split`` optional, ``"boxes": []`` a
frame with nobody) or a CSV with a header ``image,xmin,ymin,xmax,ymax[,label]`` (one row per box,
as LLVIP's; only the frames it names are scored, rows whose label is not the class are ignored).
Image paths are relative to ``frames_dir`` (default: the labels file's folder).
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class LabelledFrame:
    """One frame of a labels file: where it is, its people, and which split it belongs to."""

    image: str
    """Path relative to the frames folder, as written in the labels file."""
    boxes: tuple[Box, ...]
    split: str | None = None


def _check_box(where: str, b: Any) -> Box:
    if not (isinstance(b, (list, tuple)) and len(b) == 4 and all(isinstance(v, (int, float)) for v in b)
            and b[0] < b[2] and b[1] < b[3]):
        raise ConfigError(f"{where}: expected [x0, y0, x1, y1] with x0 < x1 and y0 < y1, got {b!r}")
    return tuple(float(v) for v in b)  # type: ignore[return-value]


def read_labels(path: str | Path, label: str = "person") -> list[LabelledFrame]:
    """The frames and boxes of a VAL.json or a boxes CSV (see the module doc); errors name the entry."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"labels file not found: {path}") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
        need = {"image", "xmin", "ymin", "xmax", "ymax"}
        if not rows or not need <= set(rows[0]):
            raise ConfigError(f"{path}: expected a CSV with the columns {sorted(need)} (and optionally label)")
        per: dict[str, list[Box]] = {}
        for i, r in enumerate(rows):
            if r.get("label") not in (None, "", label):
                continue
            try:
                b = [float(r[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
            except (TypeError, ValueError):
                raise ConfigError(f"{path}: row {i + 2}: expected numbers in xmin..ymax, got {r!r}") from None
            per.setdefault(r["image"], []).append(_check_box(f"{path}: row {i + 2}", b))
        return [LabelledFrame(img, tuple(bs)) for img, bs in per.items()]
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    entries = data.get("frames") if isinstance(data, dict) else data
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected a non-empty list of frames (or {{\"frames\": [...]}})")
    out = []
    for i, e in enumerate(entries):
        where = f"{path}: frames[{i}]"
        if not isinstance(e, dict) or not isinstance(e.get("image"), str) or not isinstance(e.get("boxes"), list):
            raise ConfigError(f"{where}: expected {{\"image\": PATH, \"boxes\": [[x0, y0, x1, y1], ...]}}")
        boxes = tuple(_check_box(f"{where}.boxes[{j}]", b) for j, b in enumerate(e["boxes"]))
        split = e.get("split")
        if split is not None and not isinstance(split, str):
            raise ConfigError(f"{where}.split: expected a name, got {split!r}")
        out.append(LabelledFrame(e["image"], boxes, split))
    return out


def select(frames: Sequence[LabelledFrame], split: str | None) -> list[LabelledFrame]:
    """The frames of one split (all of them for ``None``); an unknown split is an error."""
    if split is None:
        return list(frames)
    chosen = [f for f in frames if f.split == split]
    if not chosen:
        names = sorted({f.split for f in frames if f.split})
        raise ConfigError(f"--split {split!r}: no frame of that split (the labels have {names or 'no splits'})")
    return chosen


def read_frame(frames_dir: str | Path, image: str) -> tuple[np.ndarray, str]:
    """A frame as the capture hands it on: uint8 grey (GRAY8) or BGR (BGR8); grey JPEGs stored
    as three equal channels come back as one channel."""
    import cv2

    from ..capture.frames import is_grey

    p = Path(frames_dir) / image
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ConfigError(f"cannot read the frame {image!r} (relative to {frames_dir})")
    if img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    if img.dtype != np.uint8:  # 16-bit thermal: stretched to 8 bits as the capture's AGC does
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 3 and is_grey(img):
        img = np.ascontiguousarray(img[..., 0])
    return img, ("GRAY8" if img.ndim == 2 else "BGR8")


def frames_config_name(frames_dir: str | Path | None, labels: str | Path) -> str:
    """The shipped config ``streamcam eval --frames-dir`` scores with when none is given: real grey
    frames (a thermal camera's, 8 or 16 bit) go to ``thermal.yaml`` (the real-LWIR person model),
    colour frames to ``camera.yaml`` (the visible-light one), as ``--mot`` real footage goes to
    ``camera.yaml``. The synthetic scene's default model finds almost no one on real LWIR
    (docs/benchmarks.md, "Real thermal frames"), so it would be the wrong first answer for a user's
    folder. Decided by the first labelled frame; unreadable labels or frames leave the choice to the
    eval, which names what is wrong."""
    try:
        first = read_labels(labels)[0]
        _, fmt = read_frame(Path(frames_dir) if frames_dir else Path(labels).parent, first.image)
    except (ConfigError, IndexError):
        return "default.yaml"
    return "thermal.yaml" if fmt == "GRAY8" else "camera.yaml"


def _inside(point: tuple[float, float], box: Sequence[float]) -> bool:
    return box[0] <= point[0] < box[2] and box[1] <= point[1] < box[3]


def score_frame(pred: Sequence[Sequence[float]], gt: Sequence[Sequence[float]]) -> dict[str, Any]:
    """Counts of one frame: matches at IoU >= 0.5, boxes whose centre is in a person, people so hit."""
    from .localization import iou, match_boxes

    centres = [((b[0] + b[2]) / 2, (b[1] + b[3]) / 2) for b in pred]
    return {
        "persons": len(gt), "boxes": len(pred), "localized": len(match_boxes(pred, gt, 0.5)),
        "centre_hits": sum(any(_inside(c, g) for g in gt) for c in centres),
        "persons_centre_hit": sum(any(_inside(c, g) for c in centres) for g in gt),
        "best_iou": [round(max((iou(p, g) for p in pred), default=0.0), 4) for g in gt],
    }


def summarize(per_frame: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Totals over frames of :func:`score_frame` counts (None where a denominator is 0)."""
    n_gt = sum(f["persons"] for f in per_frame)
    n_box = sum(f["boxes"] for f in per_frame)
    hit = sum(f["localized"] for f in per_frame)
    ious = [v for f in per_frame for v in f["best_iou"]]

    def ratio(a: int, b: int):
        return round(a / b, 4) if b else None

    return {"frames": len(per_frame), "persons": n_gt, "boxes": n_box, "localized": hit,
            "localization_accuracy": ratio(hit, n_gt), "box_precision": ratio(hit, n_box),
            "centre_hit_rate": ratio(sum(f["centre_hits"] for f in per_frame), n_box),
            "persons_centre_hit": ratio(sum(f["persons_centre_hit"] for f in per_frame), n_gt),
            "mean_best_iou": round(float(np.mean(ious)), 4) if ious else None}


def evaluate_frames(detector, frames_dir: str | Path, frames: Sequence[LabelledFrame],
                    cameras: Sequence[LabelledFrame] = ()) -> dict[str, Any]:
    """Run ``detector`` (a :class:`Detector`) on each labelled frame; totals and per-frame rows.

    With the detector's silhouettes on, each frame's plate is the median of the other frames of its
    camera among ``frames`` and ``cameras`` (their pixels only, no labels: what a live camera's plate
    is made of; :func:`~streamcam.processor.silhouettes.still_plates`)."""
    rows = []
    t0 = time.perf_counter()
    label = detector.class_names[0]
    plates = _still_plates(frames_dir, frames, cameras) if getattr(detector, "use_silhouettes", False) else {}
    with_plate = sum(plates.get(f.image) is not None for f in frames)
    if plates:
        # the figures depend on it: say how many frames had a camera seen at enough other moments
        print(f"eval: silhouettes: {with_plate} of {len(frames)} frames have a plate (the median of 3 or more "
              "other frames of their camera)", file=sys.stderr)
    for f in frames:
        image, fmt = read_frame(frames_dir, f.image)
        if plates.get(f.image) is not None:
            detector.set_plate(f.image, plates[f.image])
        # a still with a plate is a stream of its own; without, the frames share one as before
        result = detector.detect(image, fmt, stream=f.image if plates else "")
        boxes = [d.box for d in result.detections if d.label == label]
        prob = float(result.probs[detector.class_indices[0]])
        rows.append({"image": f.image, "split": f.split, "probability": round(prob, 4),
                     "pred": [[round(v, 1) for v in b] for b in boxes], **score_frame(boxes, f.boxes)})
    return {**summarize(rows), "seconds": round(time.perf_counter() - t0, 2),
            **({"silhouettes": True, "frames_with_plate": with_plate} if plates else {}),
            "per_frame": rows}


def _still_plates(frames_dir: str | Path, frames: Sequence[LabelledFrame],
                  cameras: Sequence[LabelledFrame]) -> dict[str, np.ndarray | None]:
    from ..processor.silhouettes import camera_groups, still_plates

    names = list(dict.fromkeys([f.image for f in frames] + [f.image for f in cameras]))
    images = [read_frame(frames_dir, n)[0] for n in names]
    return dict(zip(names, still_plates(images, camera_groups(images))))


def run_frames_eval(cfg, frames_dir: str | Path | None, labels: str | Path, split: str | None = None,
                    out: str | None = None) -> dict[str, Any]:
    """``streamcam eval --frames-dir``: the config's detector on the labelled frames (one split or all)."""
    from ..processor.stage import build_detector

    frames_dir = Path(frames_dir) if frames_dir else Path(labels).parent
    every = read_labels(labels)
    chosen = select(every, split)
    detector = build_detector(cfg)
    try:
        result = evaluate_frames(detector, frames_dir, chosen, cameras=every)
    finally:
        detector.engine.close()
    result = {"model": cfg.processor.model, "labels": Path(labels).name, "split": split,
              "cam_threshold": detector.threshold, "min_score": detector.min_score, **result}
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=1) + "\n")
    return result
