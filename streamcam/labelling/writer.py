"""Labels -> files: the training folder, the calibration frames, the labelled-video YAML, the session.

:func:`write_dataset` writes, into ``OUT_DIR``:

* ``train/<class>/f000123.png``: every ``step``-th frame of each range, validation frames left
  out (the image-folder format of :func:`streamcam.training.data.load_image_folder`);
* ``val/f000130.png`` and ``VAL.json``: the validation frames and their boxes, in the format of
  :func:`streamcam.evaluation.calibration.labelled_frames` (``"boxes": []``: no object);
* ``labels.yaml``: the same training frames as a labelled video (``video`` + ``segments`` with
  their ``step``), split around validation frames, for :func:`~streamcam.training.data.load_labelled_video`;
* ``label-session.json``: what the page posted, reloaded by the next ``streamcam label`` on OUT_DIR.

Frames are written as stored (8-bit grey/BGR, 16-bit thermal counts as 16-bit PNG), so training and
calibration scale them as their loaders do. ``train/`` and ``val/`` are built next to the old ones
and swapped in, so a failed save leaves the previous one whole. Pure: no server, no threads.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import StreamcamError
from .labels import LabelError, Labels, check_classes, parse_labels

SESSION_FILE = "label-session.json"
OUTPUTS = ("train", "val", "VAL.json", "labels.yaml", SESSION_FILE)
"""What :func:`write_dataset` owns in OUT_DIR (a save replaces these and nothing else)."""
SESSION_VERSION = 1


class Frames(Protocol):
    """What the writer reads frames from (:class:`~streamcam.capture.indexed.IndexedFrames`)."""

    path: str
    count: int
    width: int
    height: int

    def frame(self, i: int) -> np.ndarray:
        ...


def frame_name(i: int) -> str:
    """The file name of frame ``i`` (sorts in frame order)."""
    return f"f{i:06d}.png"


def next_commands(out_dir: str | os.PathLike) -> list[str]:
    """What to run after a save: train on the folder, then calibrate the box rule on VAL.json."""
    out = Path(out_dir).as_posix().rstrip("/")
    return [f"streamcam train {out}/train --out {out}/model.onnx",
            f"streamcam calibrate {out}/model.onnx --labels {out}/VAL.json"]


def train_segments(labels: Labels) -> list[dict[str, Any]]:
    """Segments that keep exactly :meth:`Labels.training_frames`: each range, split around its
    kept validation frames, every piece with the range's ``step`` (so the kept frames do not shift)."""
    val = labels.validation_frames
    out: list[dict[str, Any]] = []
    for r in labels.ranges:
        kept = list(r.kept())
        runs: list[list[int]] = []
        for i in kept:
            if i in val:
                runs.append([])
            elif runs and runs[-1] and i == runs[-1][-1] + r.step:
                runs[-1].append(i)
            else:
                runs.append([i])
        for run in filter(None, runs):
            end = r.end if run[-1] == kept[-1] else run[-1] + 1
            out.append({"start": run[0], "end": end, "class": r.cls, "step": r.step})
    return out


def _imwrite(path: Path, image: np.ndarray) -> None:
    import cv2

    if not cv2.imwrite(str(path), image):
        raise StreamcamError(f"cannot write {path}")


def _replace_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.new")
    tmp.write_text(text)
    os.replace(tmp, path)


def _swap_in(new: Path, final: Path) -> None:
    """Replace folder ``final`` by ``new`` (the old one is removed after the rename)."""
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        os.replace(final, old)
    os.replace(new, final)
    if old.exists():
        shutil.rmtree(old)


def _video_entry(source: str, out: Path) -> str:
    """The source as the YAML names it: relative to OUT_DIR when possible (load_labelled_video resolves it so)."""
    src = Path(source).resolve()
    try:
        return Path(os.path.relpath(src, out.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return src.as_posix()


def labels_yaml(labels: Labels, source: str, out: Path, default_step: int) -> str:
    """``labels.yaml``: the labelled-video form of the training frames (see :func:`train_segments`)."""
    import yaml

    doc = {"video": _video_entry(source, out), "step": int(default_step), "segments": train_segments(labels)}
    head = ("# Written by `streamcam label`: the frames of train/ as a labelled video (end exclusive; validation\n"
            "# frames left out). Train on either: `streamcam train OUT/train` or `streamcam train OUT/labels.yaml`.\n")
    return head + yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)


def write_dataset(labels: Labels, frames: Frames, out_dir: str | os.PathLike, classes: tuple[str, ...],
                  default_step: int = 1) -> dict[str, Any]:
    """Write every output (see the module doc) for ``labels`` of ``frames``; returns a summary with warnings."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    new_train, new_val = out / ".train.new", out / ".val.new"
    for d in (new_train, new_val):
        if d.exists():
            shutil.rmtree(d)
        d.mkdir()
    per_class = {c: 0 for c in classes}
    try:
        for i, cls in labels.training_frames():
            (new_train / cls).mkdir(exist_ok=True)
            _imwrite(new_train / cls / frame_name(i), frames.frame(i))
            per_class[cls] += 1
        entries = []
        for v in labels.validation:
            _imwrite(new_val / frame_name(v.frame), frames.frame(v.frame))
            entries.append({"image": f"val/{frame_name(v.frame)}", "boxes": [[round(x, 2) for x in b] for b in v.boxes],
                            "frame": v.frame})
    except BaseException:
        shutil.rmtree(new_train, ignore_errors=True)
        shutil.rmtree(new_val, ignore_errors=True)
        raise
    _swap_in(new_train, out / "train")
    _swap_in(new_val, out / "val")
    val_json = out / "VAL.json"
    if entries:
        _replace_text(val_json, json.dumps({"source": Path(frames.path).name, "frames": entries}, indent=1) + "\n")
    elif val_json.exists():
        val_json.unlink()
    _replace_text(out / "labels.yaml", labels_yaml(labels, frames.path, out, default_step))
    _replace_text(out / SESSION_FILE, json.dumps(session_doc(labels, frames, classes, default_step), indent=1) + "\n")

    warnings = []
    if sum(1 for n in per_class.values() if n) < 2:
        warnings.append(f"train/: frames of {sum(1 for n in per_class.values() if n)} class(es) so far "
                        f"({per_class}); streamcam train needs at least two")
    if not any(v.boxes for v in labels.validation):
        warnings.append("VAL.json: no frame with a box yet; streamcam calibrate needs a few frames showing the object")
    return {"out": out.as_posix(), "train": per_class, "val_frames": len(labels.validation),
            "val_boxes": sum(len(v.boxes) for v in labels.validation),
            "val_empty": sum(1 for v in labels.validation if not v.boxes),
            "warnings": warnings, "next": next_commands(out_dir)}


def session_doc(labels: Labels, frames: Frames, classes: tuple[str, ...], default_step: int) -> dict[str, Any]:
    return {"version": SESSION_VERSION, "source": Path(frames.path).resolve().as_posix(), "frames": frames.count,
            "width": frames.width, "height": frames.height, "classes": list(classes), "step": int(default_step),
            "labels": labels.to_json()}


def load_session(out_dir: str | os.PathLike, frames: Frames) -> dict[str, Any] | None:
    """The saved session of ``out_dir`` (``classes``, ``step``, ``labels``: a :class:`Labels`), or None.

    Raises :class:`LabelError` when OUT_DIR holds other files than a session's, or a session of
    another recording (another frame count or size): its labels would not fit these frames.
    """
    out = Path(out_dir)
    path = out / SESSION_FILE
    if not path.exists():
        if out.is_dir() and any(out.iterdir()):
            raise LabelError("--out", f"{out} is not empty and holds no {SESSION_FILE}: choose a new or empty folder "
                                      "(a save replaces train/, val/, VAL.json and labels.yaml in it)")
        return None
    try:
        doc = json.loads(path.read_text())
    except ValueError as exc:
        raise LabelError(SESSION_FILE, f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("version") != SESSION_VERSION:
        raise LabelError(f"{SESSION_FILE}.version", f"expected {SESSION_VERSION}, got {doc.get('version') if isinstance(doc, dict) else doc!r}")
    got = (doc.get("frames"), doc.get("width"), doc.get("height"))
    if got != (frames.count, frames.width, frames.height):
        raise LabelError(SESSION_FILE, f"labelled {doc.get('source')} ({got[0]} frames of {got[1]}x{got[2]}), but "
                                       f"{frames.path} has {frames.count} frames of {frames.width}x{frames.height}: "
                                       "use another --out for another recording")
    classes = doc.get("classes")
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise LabelError(f"{SESSION_FILE}.classes", f"expected a list of names, got {classes!r}")
    check_classes(tuple(classes), f"{SESSION_FILE}.classes")
    step = doc.get("step", 1)
    if isinstance(step, bool) or not isinstance(step, int) or step < 1:
        raise LabelError(f"{SESSION_FILE}.step", f"expected an integer >= 1, got {step!r}")
    labels = parse_labels(doc.get("labels"), frames.count, frames.width, frames.height, tuple(classes), step)
    return {"classes": tuple(classes), "step": step, "labels": labels, "source": doc.get("source")}


__all__ = ["Frames", "OUTPUTS", "SESSION_FILE", "frame_name", "labels_yaml", "load_session", "next_commands",
           "session_doc", "train_segments", "write_dataset"]
