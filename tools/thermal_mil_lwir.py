"""The full-frame recipe as a thermal default: ImageNet trunk, trained on the lwir synthetic scenes.

    python -m tools.thermal_mil_lwir [--lwir 30] [--classic 10] [--per 6] [--neg 3] [--size 640x512]
                                     [--real-visible 0] [--objective localization]
                                     [--out runs/thermal-mil.onnx] [--data-dir DIR]
                                     [--real-part first] [--grey-check] [--real-only] [--invert]
                                     [--pseudo-lwir 0]
    python -m tools.thermal_mil_lwir --lwir 0 --classic 0 --real-visible 30 --pseudo-lwir 1 \
        --objective f1 --scale 1 --real-only --threads 1 \
        --ship engines/person-lwir.onnx          # the shipped real-LWIR model (docs/benchmarks.md)

Issue #19 asks whether the shipped thermal default could be the multiple-instance head on
MobileNetV2's ImageNet trunk (``streamcam train``'s default recipe) instead of the IR trunk's
crop recipe. This renders ``--lwir`` scenes of the lwir style (half at 1280x1024, half at 640x512)
and ``--classic`` scenes of the classic style, ``--per`` frames with people and ``--neg`` frames of
the same scene without people each (image-level labels only; every frame resized to ``--size``),
trains ``streamcam train DIR --out M`` with no flag, then calibrates a copy on the real calibration
frames of the LLVIP sample (``tests/data/llvip-sample-labels.json``, split ``calibration``) and one
on the synthetic validation scenes, and scores both on the real evaluation frames and on the
synthetic held-out scenes 9000..9003 through the pipeline's Detector. Nothing is trained on a real
LWIR frame. Prints one JSON object (docs/benchmarks.md, "Real thermal frames").

``--real-visible N`` adds real *visible-light* pedestrian footage, as grey: N frames of each shared
real sequence (``../shared/data/real``: a fixed camera seen from above, as LLVIP's) as person frames
and three empty plates of each (its temporal medians) as empty frames. Real people in white-hot LWIR
look more like a grey photograph of people (limbs, clothing, sharp edges) than like the synthetic
scene's figures, and an ImageNet trunk sees them as such. ``--objective`` is the real calibration's
(``streamcam calibrate --objective``); ``--ship PATH`` copies the model calibrated on the real
calibration frames there. ``--pseudo-lwir K`` adds each real person frame K more times with its
movers made white-hot (:func:`pseudo_lwir`).

Besides the calibrated figures the output holds, for the trained network, the map's peak AP on
both LLVIP splits (:func:`peak_ap`, free of any box rule) and a two-fold cross-validated
calibration over all 12 labelled frames (:func:`cross_validated`); ``--cv scene frame`` adds the
scene-held-out and leave-one-frame-out ones. ``--backbone``, ``--stills K`` (scikit-image pictures
without people as empty frames), ``--lwir-plates`` and ``--lwir-calibration K`` (the LLVIP calibration
frames' plates, and the frames themselves) are the variants measured in stop 27, none kept.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LABELS = ROOT / "tests" / "data" / "llvip-sample-labels.json"
DATA = Path(os.environ.get("STREAMCAM_THERMAL_DATA", ROOT / ".." / "shared" / "data" / "thermal" / "LLVIP-sample"))


def render(root: Path, lwir: int, classic: int, per: int, neg: int, size: tuple[int, int], seed: int = 0) -> None:
    """Training folder ``root/{person,empty}``: frames of each scene with people, and of the same
    scene without them (the multiple-instance recipe needs both from one camera)."""
    from streamcam.datasets.synthetic import SyntheticIRScene

    for c in ("person", "empty"):
        (root / c).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    specs = [dict(style="lwir", width=1280, height=1024, people=6, seed=1100 + k) for k in range(lwir // 2)]
    specs += [dict(style="lwir", width=640, height=512, people=6, seed=1200 + k) for k in range(lwir - lwir // 2)]
    specs += [dict(width=640, height=480, people=4, seed=1000 + k) for k in range(classic)]
    for spec in specs:
        s, people = spec.pop("seed"), spec.pop("people")
        scene, empty = SyntheticIRScene(seed=s, people=people, **spec), SyntheticIRScene(seed=s, people=0, **spec)
        n = tries = 0
        while n < per and tries < 200:
            tries += 1
            fr = scene.frame(int(rng.integers(0, 3000)))
            if any(o.label == "person" for o in fr.objects):
                cv2.imwrite(str(root / "person" / f"{s}_{n}.png"), cv2.resize(fr.image, size, interpolation=cv2.INTER_AREA))
                n += 1
        for k in range(neg):
            fr = empty.frame(int(rng.integers(0, 3000)))
            cv2.imwrite(str(root / "empty" / f"{s}_{k}.png"), cv2.resize(fr.image, size, interpolation=cv2.INTER_AREA))


def pseudo_lwir(grey: np.ndarray, plate: np.ndarray, rng: np.random.Generator, parts: bool = False) -> np.ndarray:
    """A grey visible frame as a white-hot camera might show it: the movers (where the frame differs
    from the camera's empty plate, no box involved) raised towards the top of the range with their
    own texture kept, the background left as it is. Real LWIR people are bright textured figures on
    a ground that is often as warm; a grey photograph's people are as often darker than the ground.
    ``parts``: each mover's top fifth (a walker's head) hottest and the rest at a clothing contrast
    drawn per mover and per part (torso, legs) from -0.3 to 1 of the head's over the ground: real
    skin is the hottest part and clothing may be colder than the pavement (the LLVIP overlays)."""
    diff = cv2.absdiff(cv2.GaussianBlur(grey, (5, 5), 0), cv2.GaussianBlur(plate, (5, 5), 0))
    mask = (diff > rng.uniform(18, 30)).astype(np.uint8)
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((7, 7), np.uint8))
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), rng.uniform(0.7, 1.5))
    g = grey.astype(np.float32)
    hot = rng.uniform(160, 240) + rng.uniform(0.2, 0.9) * (g - g[mask > 0].mean() if mask.any() else 0.0)
    if parts and mask.any():
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        ground = plate.astype(np.float32)
        # per mover (label): where each pixel is between its top (0) and its feet (1), and its
        # torso's and legs' share of the head's contrast over the ground (1: as hot as the head)
        t = (np.arange(g.shape[0], dtype=np.float32)[:, None] - stats[labels, cv2.CC_STAT_TOP]) \
            / np.maximum(stats[labels, cv2.CC_STAT_HEIGHT], 1)
        draws = np.r_[[[1.0, 1.0]], rng.uniform(-0.3, 1.0, (n - 1, 2))]  # label 0 (no mover): unused
        level = np.where(t < 0.2, 1.0, np.where(t < 0.55, draws[labels, 0], draws[labels, 1])).astype(np.float32)
        # the soft edge outside a mover takes its mover's level (no bright rim round a cold coat)
        m = mask.astype(np.float32)
        level = cv2.GaussianBlur(level * m, (0, 0), 3.0) / np.maximum(cv2.GaussianBlur(m, (0, 0), 3.0), 1e-6)
        hot = ground + level * (hot - ground)
    out = g * (1 - soft) + hot * soft
    return np.clip(out, 0, 255).astype(np.uint8)


CLUTTER_SHAPES = ("wide", "round", "pole", "blob")
"""Warm things a street camera sees that are not people: parked cars and benches (wider than tall),
wheels and lamps (round), posts and traffic-light poles (far thinner than a person), small spots."""


def hot_clutter(grey: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """``grey`` with ``n`` warm non-person shapes painted on, as :func:`pseudo_lwir` paints people (hot
    level 140-240, the ground's own texture kept under them, soft edges). A network that sees a bright
    blob only where a person is learns "bright" for "person"; these shapes appear in frames with and
    without people alike, so only the shape can tell. On the LLVIP sample the false boxes were a
    parked bicycle, a sunlit trunk and a traffic light."""
    h, w = grey.shape
    g = grey.astype(np.float32)
    mask = np.zeros((h, w), np.float32)
    for _ in range(n):
        kind = CLUTTER_SHAPES[int(rng.integers(len(CLUTTER_SHAPES)))]
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        s = float(rng.uniform(0.04, 0.18)) * h  # about the size of the people the camera shows
        one = np.zeros((h, w), np.uint8)
        if kind == "wide":
            rw, rh = s * rng.uniform(0.8, 2.0), s * rng.uniform(0.25, 0.7)
            cv2.ellipse(one, (cx, cy), (int(rw), int(rh)), float(rng.uniform(-20, 20)), 0, 360, 1, -1) \
                if rng.random() < 0.5 else cv2.rectangle(one, (int(cx - rw), int(cy - rh)), (int(cx + rw), int(cy + rh)), 1, -1)
        elif kind == "round":
            cv2.circle(one, (cx, cy), max(2, int(s * rng.uniform(0.2, 0.5))), 1, -1 if rng.random() < 0.6 else max(2, int(s * 0.08)))
        elif kind == "pole":
            t = max(1, int(s * rng.uniform(0.03, 0.08)))
            cv2.rectangle(one, (cx - t, int(cy - 2 * s)), (cx + t, int(cy + 2 * s)), 1, -1)
            if rng.random() < 0.5:  # a lamp or a signal head on top
                cv2.rectangle(one, (cx - 3 * t, int(cy - 2 * s)), (cx + 3 * t, int(cy - 2 * s + 6 * t)), 1, -1)
        else:
            cv2.circle(one, (cx, cy), max(1, int(s * rng.uniform(0.05, 0.15))), 1, -1)
        mask = np.maximum(mask, one.astype(np.float32) * float(rng.uniform(0.6, 1.0)))
    soft = cv2.GaussianBlur(mask, (0, 0), float(rng.uniform(0.7, 2.0)))
    inside = mask > 0
    hot = rng.uniform(140, 240) + rng.uniform(0.2, 0.9) * (g - (g[inside].mean() if inside.any() else 0.0))
    return np.clip(g * (1 - soft) + hot * soft, 0, 255).astype(np.uint8)


def render_real_visible(root: Path, per: int, size: tuple[int, int], invert: bool = False,
                        part: str = "all", pseudo: int = 0, seed: int = 0,
                        clutter: int = 0, parts: bool = False) -> list[str]:
    """``per`` grey frames of each shared real sequence (of its ``part``: all, first half) into
    ``root/person`` and three empty plates of each into ``root/empty``, resized to ``size``; with
    ``invert`` each also as its negative. ``clutter``: each white-hot person frame gets 0-3 warm
    non-person shapes (:func:`hot_clutter`) and each plate ``clutter`` more copies with 1-4 of them, so
    both classes show them. Returns the sequences used."""
    from streamcam.evaluation.mot import find_sequences, read_sequence, real_data_dir
    from streamcam.training.data import empty_plate

    for c in ("person", "empty"):
        (root / c).mkdir(parents=True, exist_ok=True)
    grey = lambda im: cv2.resize(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), size, interpolation=cv2.INTER_AREA)  # noqa: E731

    def write(path: Path, image: np.ndarray) -> None:
        cv2.imwrite(str(path.with_suffix(".png")), image)
        if invert:  # a white-hot camera shows a person bright where a grey photograph often shows them dark
            cv2.imwrite(str(path.with_name(path.name + "-neg.png")), 255 - image)

    used = []
    for d in find_sequences(real_data_dir(ROOT)):
        seq = read_sequence(d).half(part)  # type: ignore[arg-type]
        images = [cv2.imread(str(f.path)) for f in seq.frames]
        k = len(images) // 2
        plates = {name: grey(empty_plate(chunk)) for name, chunk in (("all", images), ("a", images[:k]),
                                                                     ("b", images[k:]))}
        rng = np.random.default_rng(seed)
        crng = np.random.default_rng(seed + 1)  # its own stream: without --hot-clutter the folder is as before
        for i in sorted({int(round(v)) for v in np.linspace(0, len(images) - 1, per)}):
            write(root / "person" / f"{seq.name}_{i}", grey(images[i]))
            for j in range(pseudo):
                hot = pseudo_lwir(grey(images[i]), plates["all"], rng, parts=parts)
                if clutter:
                    hot = hot_clutter(hot, crng, int(crng.integers(0, 4)))
                cv2.imwrite(str(root / "person" / f"{seq.name}_{i}-lwir{j}.png"), hot)
        for name, plate in plates.items():
            write(root / "empty" / f"{seq.name}_plate-{name}", plate)
            for j in range(clutter):
                cv2.imwrite(str(root / "empty" / f"{seq.name}_plate-{name}-clutter{j}.png"),
                            hot_clutter(plate, crng, int(crng.integers(1, 5))))
        used.append(seq.name)
    if not used:
        sys.exit(f"tools.thermal_mil_lwir: --real-visible: no sequences under {real_data_dir(ROOT)}")
    return used


STILLS = ("stereo_motorcycle", "rocket", "horse", "coffee", "chelsea", "clock", "coins", "brick", "grass", "gravel",
          "moon")
"""scikit-image's pictures without a person, vehicles and animals first: any cell of them is "no person"."""


def render_stills(root: Path, k: int, size: tuple[int, int]) -> list[str]:
    """The first ``k`` of :data:`STILLS` into ``root/empty``, grey at ``size``, each also inverted (a
    white-hot camera shows a warm object bright whatever its colour in daylight)."""
    import skimage.data

    (root / "empty").mkdir(parents=True, exist_ok=True)
    used = []
    for name in STILLS[:k]:
        im = getattr(skimage.data, name)()
        im = im[0] if isinstance(im, tuple) else im
        im = (np.asarray(im) * (255 if im.dtype == bool else 1)).astype(np.uint8)
        if im.ndim == 3:
            im = cv2.cvtColor(im[..., :3], cv2.COLOR_RGB2GRAY)
        im = cv2.resize(im, size, interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(root / "empty" / f"still-{name}.png"), im)
        cv2.imwrite(str(root / "empty" / f"still-{name}-neg.png"), 255 - im)
        used.append(name)
    return used


def render_lwir_calibration(root: Path, size: tuple[int, int], copies: int = 1, plates: bool = True) -> list[str]:
    """The LLVIP sample's *calibration* frames, image-level labels only: each frame ``copies`` times into
    ``root/person``, and (``plates``) per scene (camera) the pixel-wise minimum of its calibration frames into
    ``root/empty``: a white-hot camera's empty plate, people being warmer than what they stand on and
    elsewhere in the other frame (the LWIR counterpart of ``streamcam plate``'s median, which needs more
    than two frames). No evaluation frame is read. Returns the frames used."""
    from streamcam.evaluation.frames import read_frame, read_labels, select

    for c in ("person", "empty"):
        (root / c).mkdir(parents=True, exist_ok=True)
    by_scene: dict[str, list[np.ndarray]] = {}
    used = []
    for f in sorted(select(read_labels(LABELS), "calibration"), key=lambda f: f.image):
        img, _ = read_frame(DATA, f.image)
        grey = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        stem = Path(f.image).stem
        for j in range(copies):
            cv2.imwrite(str(root / "person" / f"llvip-{stem}-{j}.png"), grey)
        by_scene.setdefault(stem[:2], []).append(grey)
        used.append(f.image)
    for scene, frames in by_scene.items():
        if plates and len(frames) > 1:
            cv2.imwrite(str(root / "empty" / f"llvip-plate-{scene}.png"), np.minimum.reduce(frames))
    return used


def score(model: str, frames) -> dict:
    """Localization (IoU >= 0.5, 1:1) and box precision of the model's Detector on ``(image, format, boxes)``."""
    from streamcam.evaluation.localization import match_boxes
    from streamcam.processor.detector import Detector
    from streamcam.processor.engines import create_engine

    det = Detector(create_engine(model))
    hits = total = found = 0
    try:
        for image, fmt, gts in frames:
            boxes = [d.box for d in det.detect(image, fmt).detections]
            hits, total, found = hits + len(match_boxes(boxes, gts, 0.5)), total + len(gts), found + len(boxes)
    finally:
        det.engine.close()
    return {"localization": round(hits / max(total, 1), 3), "precision": round(hits / max(found, 1), 3),
            "persons": total, "boxes": found}


def peak_ap(model: str, frames) -> dict:
    """How well the raw map ranks people above everything else, free of any box rule: the map's local
    maxima (3x3) over all ``frames`` ranked by value, a maximum a hit when its cell centre falls in a
    person box no higher maximum has claimed. Average precision, and the recall once the false
    maxima outnumber the frames (one false peak per frame)."""
    from streamcam.processor.detector import Detector
    from streamcam.processor.engines import create_engine
    from streamcam.processor.peak_boxes import local_peaks

    det = Detector(create_engine(model), min_score=0.0)
    peaks, gts = [], []
    try:
        for k, (image, fmt, boxes) in enumerate(frames):
            cams, _, (fw, fh), _ = det.maps(image, fmt)
            h, w = cams[0].shape
            peaks += [(v, k, (x + 0.5) * fw / w, (y + 0.5) * fh / h) for v, x, y in local_peaks(cams[0], -np.inf, 1)]
            gts.append(list(boxes))
    finally:
        det.engine.close()
    n = sum(len(g) for g in gts)
    claimed: list[set] = [set() for _ in gts]
    tp = fp = 0
    ap, recall_at_1 = 0.0, None
    for _, k, x, y in sorted(peaks, key=lambda p: -p[0]):
        hit = next((j for j, b in enumerate(gts[k]) if j not in claimed[k] and b[0] <= x < b[2] and b[1] <= y < b[3]),
                   None)
        if hit is None:
            fp += 1
            if fp > len(gts) and recall_at_1 is None:
                recall_at_1 = tp / max(n, 1)
            continue
        claimed[k].add(hit)
        tp += 1
        ap += tp / (tp + fp) / max(n, 1)
    return {"peak_ap": round(ap, 3), "recall_at_1_false_peak_per_frame": round(recall_at_1 if recall_at_1 is not None
                                                                                else tp / max(n, 1), 3)}


CV_FOLDS = ("two", "scene", "frame")


def cv_folds(images: list[str], how: str) -> list[tuple[list[int], list[int]]]:
    """``(calibrate on, score on)`` index lists over the labelled frames (sorted by name). ``two``:
    alternate frames of each scene, both ways (12-14 calibration people a fold); ``scene``: one of the
    sample's two scenes (two camera placements) on the other, both ways: what calibrating on another
    camera gives; ``frame``: leave one frame out, twelve times (24-25 calibration people each)."""
    n = len(images)
    if how == "two":
        return [(list(range(0, n, 2)), list(range(1, n, 2))), (list(range(1, n, 2)), list(range(0, n, 2)))]
    if how == "scene":
        scene = [Path(i).name[:2] for i in images]
        names = sorted(set(scene))
        return [([j for j in range(n) if scene[j] != s], [j for j in range(n) if scene[j] == s]) for s in names]
    if how == "frame":
        return [([j for j in range(n) if j != i], [i]) for i in range(n)]
    raise ValueError(f"cross-validation folds: expected one of {CV_FOLDS}, got {how!r}")


def cross_validated(model: str, objective: str, scale: float | None = None, how: str = "two") -> dict:
    """All 12 labelled LLVIP frames split by :func:`cv_folds`: a copy of ``model`` calibrated on each
    fold's calibration frames, scored on its others; pooled over the folds. With 4 calibration frames
    (5 people) the box rule is chosen on too little to say what calibrating on a camera gives."""
    from streamcam.evaluation.calibration import calibrate, write_calibration
    from streamcam.evaluation.frames import read_frame, read_labels, select

    labelled = sorted(select(read_labels(LABELS), None), key=lambda f: f.image)
    frames = [read_frame(DATA, f.image) + (list(f.boxes),) for f in labelled]
    folds = cv_folds([f.image for f in labelled], how)
    hits = persons = boxes = 0
    out: dict = {"how": how, "folds": [[labelled[j].image for j in test] for _, test in folds]}
    with tempfile.TemporaryDirectory() as tmp:
        for k, (cal, test) in enumerate(folds):
            m = str(Path(tmp) / f"fold{k}.onnx")
            shutil.copy(model, m)
            write_calibration(m, calibrate(m, [frames[j] for j in cal], objective=objective, scale=scale))
            s = score(m, [frames[j] for j in test])
            if how != "frame":
                out[f"calibrated_on_fold{k}"] = s
            hits += round(s["localization"] * s["persons"])
            persons, boxes = persons + s["persons"], boxes + s["boxes"]
    out["pooled"] = {"localization": round(hits / max(persons, 1), 3), "precision": round(hits / max(boxes, 1), 3),
                     "persons": persons, "boxes": boxes}
    return out


def grey_halves(cal_frames: int = 15, every: int = 1) -> dict[str, tuple[list, list]]:
    """Per shared real sequence, grey: ``cal_frames`` box-labelled frames of its first half (spread
    evenly, so with ``--real-part first`` some are training frames too: the rule is fitted where the
    network was taught, as a user calibrating on their own footage would) and every ``every``-th frame
    of its second half, never trained or calibrated on, as ``(image, "GRAY8", boxes)``."""
    from streamcam.evaluation.mot import find_sequences, read_sequence, real_data_dir

    def frames(seq_frames):
        return [(cv2.cvtColor(cv2.imread(str(f.path)), cv2.COLOR_BGR2GRAY), "GRAY8", [b for _, b in f.gt])
                for f in seq_frames]

    out = {}
    for d in find_sequences(real_data_dir(ROOT)):
        seq = read_sequence(d)
        first, second = seq.half("first").frames, seq.half("second").frames
        pick = [first[int(round(v))] for v in np.linspace(0, len(first) - 1, min(cal_frames, len(first)))]
        out[seq.name] = (frames([f for f in pick if f.gt]), frames(second[::every]))
    return out


def grey_second_half(model: str, objective: str) -> dict:
    """A rule-fair check on many real people that is not the LLVIP evaluation: per shared sequence
    seen as grey, a copy of ``model`` calibrated on 15 boxed first-half frames (that camera's
    geometry), scored on its second half. Only meaningful for a model trained on first halves."""
    from streamcam.evaluation.calibration import calibrate, write_calibration

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (cal, test) in grey_halves().items():
            m = str(Path(tmp) / f"{name}.onnx")
            shutil.copy(model, m)
            write_calibration(m, calibrate(m, cal, objective=objective))
            out[name] = score(m, test)
    return out


def held_out_frames():
    from streamcam.datasets.synthetic import SyntheticIRScene

    for s in range(9000, 9004):
        for people in (4, 0):
            scene = SyntheticIRScene(seed=s, people=people)
            for i in range(50 if people else 25):
                fr = scene.frame(i * 37)
                yield fr.image, "GRAY8", [o.box for o in fr.objects if o.label == "person"]


def main(argv: list[str] | None = None) -> int:
    from streamcam.evaluation.calibration import calibrate, frames_of_split, synthetic_frames, write_calibration
    from streamcam.cli import parse_settings
    from streamcam.training.finetune import FinetuneConfig, finetune

    ap = argparse.ArgumentParser(prog="tools.thermal_mil_lwir", description=__doc__.splitlines()[0])
    ap.add_argument("--lwir", type=int, default=30)
    ap.add_argument("--classic", type=int, default=10)
    ap.add_argument("--per", type=int, default=6)
    ap.add_argument("--neg", type=int, default=3)
    ap.add_argument("--size", default="640x512")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="the training's seed (streamcam train --seed)")
    ap.add_argument("--backbone", help="streamcam train --backbone (default: the train default)")
    ap.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                    help="another streamcam train setting (a FinetuneConfig field, YAML value), e.g. flip_average=true")
    ap.add_argument("--real-visible", type=int, default=0, help="grey frames of each shared real sequence")
    ap.add_argument("--pseudo-lwir", type=int, default=0,
                    help="each real person frame also this many times with its movers made white-hot")
    ap.add_argument("--pseudo-parts", action="store_true",
                    help="--pseudo-lwir movers with a hot head and colder or warmer clothing (pseudo_lwir(parts=True))")
    ap.add_argument("--hot-clutter", type=int, default=0,
                    help="warm non-person shapes in the white-hot person frames, and this many cluttered copies of each plate")
    ap.add_argument("--stills", type=int, default=0,
                    help="the first K scikit-image pictures without people (STILLS) as empty frames, each also inverted")
    ap.add_argument("--lwir-calibration", type=int, default=0,
                    help="the LLVIP calibration frames K times as person frames and each scene's pixel-wise "
                         "minimum of them as an empty plate (image-level labels; no evaluation frame is read)")
    ap.add_argument("--lwir-plates", action="store_true",
                    help="only each scene's pixel-wise minimum of the LLVIP calibration frames, as empty plates")
    ap.add_argument("--invert", action="store_true", help="each real grey frame also as its negative (polarity)")
    ap.add_argument("--real-part", choices=("all", "first"), default="all",
                    help="which part of each real sequence the frames come from (first: the second half stays unseen)")
    ap.add_argument("--objective", choices=("localization", "f1"), default="localization",
                    help="the real calibration's objective")
    ap.add_argument("--scale", type=float,
                    help="the real calibration at this trained input scale (streamcam calibrate --scale; "
                         "the shipped model: 1)")
    ap.add_argument("--cv", nargs="*", choices=CV_FOLDS, default=["two"],
                    help="cross-validations over all 12 labelled frames besides the two-fold one: scene (one "
                         "scene calibrated on the other), frame (leave one frame out; ~2 min)")
    ap.add_argument("--real-only", action="store_true", help="skip the synthetic calibration and scores (faster)")
    ap.add_argument("--grey-check", action="store_true",
                    help="also score on the shared sequences' second halves as grey (with --real-part first)")
    ap.add_argument("--ship", help="copy the model calibrated on the real calibration frames here")
    ap.add_argument("--out", help="keep the trained model here (and its two calibrated copies beside it)")
    ap.add_argument("--data-dir", help="keep the rendered training folder here")
    a = ap.parse_args(argv)
    if a.grey_check and a.real_visible and a.real_part != "first":
        ap.error("--grey-check scores the shared sequences' second halves: train with --real-part first, "
                 "or those halves were seen in training")
    if not (DATA / "ir").is_dir():
        sys.exit(f"tools.thermal_mil_lwir: no LLVIP sample at {DATA} (STREAMCAM_THERMAL_DATA)")
    size = tuple(int(v) for v in a.size.lower().split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(a.data_dir or Path(tmp) / "data")
        t0 = time.time()
        render(data, a.lwir, a.classic, a.per, a.neg, size)  # type: ignore[arg-type]
        real = render_real_visible(data, a.real_visible, size, a.invert, a.real_part, a.pseudo_lwir,
                                   clutter=a.hot_clutter, parts=a.pseudo_parts) if a.real_visible else []  # type: ignore[arg-type]
        stills = render_stills(data, a.stills, size) if a.stills else []  # type: ignore[arg-type]
        llvip = render_lwir_calibration(data, size, a.lwir_calibration, plates=a.lwir_plates or a.lwir_calibration > 0) \
            if a.lwir_calibration or a.lwir_plates else []  # type: ignore[arg-type]
        model = a.out or str(Path(tmp) / "m.onnx")
        # engines/person-lwir.onnx's recipe has no flip averaging (on the LLVIP frames it lowered the
        # map's AP, docs/benchmarks.md); --train-set flip_average=true measures it.
        settings = {"flip_average": False, **parse_settings(a.train_set, "--train-set")}
        train = finetune(FinetuneConfig(data=str(data), out=model, threads=a.threads, progress=False, seed=a.seed,
                                        **({"backbone": a.backbone} if a.backbone else {}), **settings))
        out: dict = {"scenes": {"lwir": a.lwir, "classic": a.classic, "per": a.per, "neg": a.neg, "size": list(size),
                                "real_visible": {"per": a.real_visible, "sequences": real, "invert": a.invert,
                                                 "part": a.real_part, "pseudo_lwir": a.pseudo_lwir,
                                                 "pseudo_parts": a.pseudo_parts,
                                                 "hot_clutter": a.hot_clutter}, "stills": stills,
                                "lwir_calibration": {"copies": a.lwir_calibration, "plates": a.lwir_plates or a.lwir_calibration > 0,
                                                     "frames": llvip}},
                     "seed": a.seed, "backbone": a.backbone, "train_set": a.train_set, "train_seconds": train["metrics"]["train_seconds"], "render_and_train_s": round(time.time() - t0)}
        for name, frames in (("real_calibration", frames_of_split(LABELS, DATA, "calibration")),
                             ("synthetic_validation", [] if a.real_only else list(synthetic_frames()))):
            if not frames:
                continue
            m = model.replace(".onnx", f"-{name}.onnx")
            shutil.copy(model, m)
            real_cal = name == "real_calibration"
            cal = calibrate(m, frames, objective=a.objective if real_cal else "localization",
                            scale=a.scale if real_cal else None)
            write_calibration(m, cal)
            if real_cal and a.ship:
                shutil.copy(m, a.ship)
            out[name] = {"calibration": {k: cal.get(k) for k in ("input_width", "input_height", "cam_floor",
                                                                  "cam_threshold", "peak_boxes")},
                         "real_evaluation": score(m, frames_of_split(LABELS, DATA, "evaluation")),
                         **({} if a.real_only else {"synthetic_held_out": score(m, held_out_frames())})}
        out["map"] = {split: peak_ap(model, frames_of_split(LABELS, DATA, split))
                      for split in ("calibration", "evaluation")}
        out["cross_validated"] = cross_validated(model, a.objective, a.scale)
        for how in a.cv:
            if how != "two":
                out[f"cross_validated_{how}"] = cross_validated(model, a.objective, a.scale, how)
        if a.grey_check:
            out["grey_second_half"] = grey_second_half(model, a.objective)
    print(json.dumps(out, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
