"""Image-level training data for fine-tuning: image folders, labelled videos, a stratified split, augmentation.

Sources (all give :class:`LabelledImages`: uint8 images as OpenCV reads them, BGR ``[H, W, 3]`` or grey
``[H, W]``, one class label per image; no boxes anywhere):

* an **image folder** ``root/<class>/*.jpg|jpeg|png|bmp|tif|tiff``: one sub-folder per class
  (16-bit PNG/TIFF thermal frames are min-max scaled to 8 bit);
* a **labelled video**: a YAML or CSV file of frame ranges -> class, e.g.::

      video: hall.mp4            # relative to the YAML file
      step: 5                    # keep every 5th frame of each range
      segments:
        - {start: 0, end: 120, class: empty}     # end exclusive
        - {start: 120, end: 300, class: person, step: 2}   # a segment's own step

  or a CSV with the header ``video,start,end,class`` (one range per row, ``video`` may repeat).
  ``video`` may also be an image folder or a ``.npy``/TIFF thermal sequence (frame i: its i-th
  image, in natural order), as ``streamcam label`` writes it for such recordings.

:func:`stratified_split` keeps every class's share in train and validation (seeded).
:class:`Augment` is a numpy/cv2 augmentation that works for grey (IR) and colour images alike:
random resized crop, horizontal flip, brightness / contrast jitter.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from ..errors import ConfigError, SourceError
from ..processor.background import empty_plate  # the empty class of a camera never seen empty

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass
class LabelledImages:
    """Images with one class index each; ``classes[label]`` is the class name."""

    images: list[np.ndarray]
    labels: np.ndarray
    classes: tuple[str, ...]
    source: str = ""
    files: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if len(self.images) != len(self.labels):
            raise ValueError(f"LabelledImages: expected as many labels as images, got {len(self.labels)} "
                             f"and {len(self.images)}")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= len(self.classes)):
            raise ValueError(f"LabelledImages: labels must index classes {self.classes}")

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, idx: Sequence[int]) -> "LabelledImages":
        idx = list(int(i) for i in idx)
        return LabelledImages([self.images[i] for i in idx], self.labels[idx], self.classes, self.source,
                              [self.files[i] for i in idx] if self.files else [])

    def counts(self) -> dict[str, int]:
        return {c: int((self.labels == i).sum()) for i, c in enumerate(self.classes)}

    @property
    def is_grey(self) -> bool:
        return all(im.ndim == 2 for im in self.images)

    def summary(self) -> dict:
        return {"source": self.source, "images": len(self), "classes": list(self.classes),
                "per_class": self.counts(), "grey": self.is_grey}


def to_uint8(image: np.ndarray) -> np.ndarray:
    """8-bit image: uint8 unchanged; 16-bit / float min-max scaled (thermal counts); 4 channels -> BGR."""
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.dtype == np.uint8:
        return image
    a = image.astype(np.float32)
    lo, hi = float(a.min()), float(a.max())
    return np.zeros(a.shape, np.uint8) if hi <= lo else ((a - lo) * (255.0 / (hi - lo)) + 0.5).astype(np.uint8)


def _grey_if_colourless(image: np.ndarray) -> np.ndarray:
    """A 3-channel image whose channels are equal (a saved grey/IR frame) becomes [H, W]."""
    if image.ndim == 3 and np.array_equal(image[:, :, 0], image[:, :, 1]) and np.array_equal(image[:, :, 1],
                                                                                            image[:, :, 2]):
        return image[:, :, 0].copy()
    return image


def load_image_folder(root: str | os.PathLike, classes: Sequence[str] | None = None,
                      max_side: int | None = 640) -> LabelledImages:
    """``root/<class>/*.{jpg,png,...}`` -> :class:`LabelledImages` (classes sorted unless given).

    Images larger than ``max_side`` are shrunk (INTER_AREA) on load to bound memory.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"data: expected a folder with one sub-folder per class, got {root} (not a directory)")
    names = list(classes) if classes else sorted(p.name for p in root.iterdir() if p.is_dir() and
                                                 not p.name.startswith("."))
    if len(names) < 2:
        raise ConfigError(f"data: {root} must hold at least two class sub-folders, found {names}")
    images, labels, files = [], [], []
    for ci, name in enumerate(names):
        folder = root / name
        if not folder.is_dir():
            raise ConfigError(f"data: class folder {folder} does not exist")
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not paths:
            raise ConfigError(f"data: class folder {folder} has no images ({', '.join(IMAGE_EXTENSIONS)})")
        for p in paths:
            img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise ConfigError(f"data: cannot read image {p}")
            img = _grey_if_colourless(to_uint8(img))
            images.append(_shrink(img, max_side))
            labels.append(ci)
            files.append(str(p))
    return LabelledImages(images, np.array(labels), tuple(names), f"folder {root.as_posix()}", files)


def _shrink(img: np.ndarray, max_side: int | None) -> np.ndarray:
    h, w = img.shape[:2]
    if max_side and max(h, w) > max_side:
        s = max_side / max(h, w)
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    return img


def _read_segments(path: Path) -> tuple[list[tuple[str, int, int, str, int | None]], int]:
    """[(video, start, end, class, the segment's own step or None)], step from a YAML or CSV label file."""
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        with open(path) as fh:
            doc = yaml.safe_load(fh) or {}
        if "segments" not in doc or "video" not in doc:
            raise ConfigError(f"{path}: expected keys 'video' and 'segments' (a list of {{start, end, class}})")
        step = int(doc.get("step", 1))
        segs = []
        for i, s in enumerate(doc["segments"]):
            try:
                own = int(s["step"]) if s.get("step") is not None else None
                segs.append((str(s.get("video", doc["video"])), int(s["start"]), int(s["end"]), str(s["class"]), own))
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"{path}: segments[{i}]: expected start, end (ints) and class, got {s!r}") from exc
        return segs, step
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        need = {"video", "start", "end", "class"}
        if not rows or not need <= set(rows[0]):
            raise ConfigError(f"{path}: expected a CSV header with columns {sorted(need)} (and optional step)")
        segs = []
        for i, r in enumerate(rows):
            try:
                segs.append((r["video"], int(r["start"]), int(r["end"]), r["class"].strip(), None))
            except ValueError as exc:
                raise ConfigError(f"{path}: row {i + 2}: start/end must be integers, got {r!r}") from exc
        return segs, int(rows[0].get("step") or 1)
    raise ConfigError(f"{path}: expected a .yaml/.yml or .csv label file")


def _segment_frames(path: Path, vpath: Path, start: int, end: int, step: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(i, frame)`` for every ``step``-th frame ``start <= i < end`` of a video, image folder or thermal sequence."""
    if vpath.is_dir() or vpath.suffix.lower() in (".npy", ".tif", ".tiff"):
        from ..capture.indexed import IndexedFrames

        try:
            with IndexedFrames(vpath) as frames:
                if end > frames.count:
                    raise ConfigError(f"{path}: {vpath} has {frames.count} frames, fewer than the segment's end {end}")
                for i in range(start, end, step):
                    yield i, frames.frame(i)
        except SourceError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        return
    cap = cv2.VideoCapture(str(vpath))
    if not cap.isOpened():
        raise ConfigError(f"{path}: cannot open video {vpath}")
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, start)
        for i in range(start, end):
            ok, frame = cap.read()
            if not ok:
                raise ConfigError(f"{path}: video {vpath} ended at frame {i}, before the segment's end {end}")
            if (i - start) % step == 0:
                yield i, frame
    finally:
        cap.release()


def load_labelled_video(label_file: str | os.PathLike, classes: Sequence[str] | None = None, step: int | None = None,
                        max_side: int | None = 640) -> LabelledImages:
    """Frames of the labelled ranges (every ``step``-th) of one or more videos, read with cv2.

    ``step`` given here overrides every segment's; else a segment's own ``step``, else the file's."""
    path = Path(label_file)
    segs, file_step = _read_segments(path)
    names = list(classes) if classes else sorted({s[3] for s in segs})
    images, labels, files = [], [], []
    for video, start, end, cls, own_step in segs:
        seg_step = int(step or own_step or file_step)
        if seg_step < 1:
            raise ConfigError(f"{path}: step: expected >= 1, got {seg_step}")
        if end <= start:
            raise ConfigError(f"{path}: segment {start}..{end} of {video}: expected end > start (end exclusive)")
        if cls not in names:
            raise ConfigError(f"{path}: class {cls!r} is not among {names}")
        vpath = Path(video) if Path(video).is_absolute() else path.parent / video
        for i, frame in _segment_frames(path, vpath, start, end, seg_step):
            images.append(_shrink(_grey_if_colourless(to_uint8(frame)), max_side))
            labels.append(names.index(cls))
            files.append(f"{vpath.as_posix()}#{i}")
    if len(set(labels)) < 2:
        raise ConfigError(f"{path}: expected frames of at least two classes, got {sorted(set(labels))}")
    return LabelledImages(images, np.array(labels), tuple(names), f"video labels {path.as_posix()}", files)


def load_data(source: str | os.PathLike, classes: Sequence[str] | None = None, **kwargs) -> LabelledImages:
    """A folder of class sub-folders, or a ``.yaml``/``.csv`` labelled-video file."""
    p = Path(source)
    if p.is_dir():
        return load_image_folder(p, classes, **{k: v for k, v in kwargs.items() if k == "max_side"})
    if p.suffix.lower() in (".yaml", ".yml", ".csv"):
        return load_labelled_video(p, classes, **kwargs)
    raise ConfigError(f"data: expected a folder root/<class>/*.jpg or a .yaml/.csv labelled-video file, got {p}")


def stratified_split(labels: Sequence[int], val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, val_idx)``: per class, ``round(val_fraction * n)`` images (at least 1 when n >= 2) to validation."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction: expected 0 <= value < 1, got {val_fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        idx = np.nonzero(labels == c)[0]
        idx = idx[rng.permutation(len(idx))]
        n_val = int(round(val_fraction * len(idx)))
        if val_fraction > 0 and len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val += idx[:n_val].tolist()
        train += idx[n_val:].tolist()
    return np.array(sorted(train), dtype=np.int64), np.array(sorted(val), dtype=np.int64)


def flip_and_jitter(out: np.ndarray, rng: np.random.Generator, flip: bool, brightness: float,
                    contrast: float) -> np.ndarray:
    """Random horizontal flip, then gain ``1 +- contrast`` around the mean and shift ``+- brightness * 255``
    (what AGC changes between frames and cameras look like)."""
    if flip and rng.uniform() < 0.5:
        out = out[:, ::-1]
    if brightness or contrast:
        g = rng.uniform(1 - contrast, 1 + contrast)
        b = rng.uniform(-brightness, brightness) * 255.0
        f = out.astype(np.float32)
        m = float(f.mean())
        out = np.clip((f - m) * g + m + b, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)


@dataclass(frozen=True)
class Augment:
    """Random resized crop + horizontal flip + brightness/contrast jitter, to ``size=(W, H)`` uint8.

    Works on grey ``[H, W]`` and colour ``[H, W, 3]`` alike (IR frames: brightness/contrast
    jitter stands for AGC changes between frames and cameras).
    """

    size: tuple[int, int]
    scale: tuple[float, float] = (0.5, 1.0)
    """Crop area as a fraction of the image (torchvision's RandomResizedCrop uses (0.08, 1); objects
    fill few-shot images less reliably, so the lower bound is higher)."""
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    """Crop aspect ratio range, relative to the output's aspect."""
    flip: bool = True
    brightness: float = 0.2
    """Additive shift up to +/- this fraction of 255."""
    contrast: float = 0.2
    """Multiplicative gain in [1 - c, 1 + c] around the image mean."""

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = image.shape[:2]
        ow, oh = self.size
        area = h * w
        for _ in range(10):
            a = area * rng.uniform(*self.scale)
            r = (ow / oh) * np.exp(rng.uniform(np.log(self.ratio[0]), np.log(self.ratio[1])))
            cw, ch = int(round(np.sqrt(a * r))), int(round(np.sqrt(a / r)))
            if 0 < cw <= w and 0 < ch <= h:
                x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
                break
        else:
            cw, ch, x0, y0 = w, h, 0, 0
        crop = image[y0:y0 + ch, x0:x0 + cw]
        interp = cv2.INTER_AREA if cw > ow else cv2.INTER_LINEAR
        out = cv2.resize(crop, (ow, oh), interpolation=interp)
        return flip_and_jitter(out, rng, self.flip, self.brightness, self.contrast)


def _pad_to(image: np.ndarray, w: int, h: int) -> np.ndarray:
    """Reflect-pad an image smaller than ``w x h`` (centred), so every window fits."""
    ih, iw = image.shape[:2]
    if iw >= w and ih >= h:
        return image
    px, py = max(0, w - iw), max(0, h - ih)
    return cv2.copyMakeBorder(image, py // 2, py - py // 2, px // 2, px - px // 2, cv2.BORDER_REFLECT_101)


@dataclass
class WindowSampler:
    """Training windows cut at the live frames' scale, each labelled by the image it came from.

    Whole-image training stretches a picture to the network input, so an object fills more of it
    than it will of a live frame, and the net may learn a frame-level cue instead of the object:
    its CAM then says *that*, not *where*. Windows keep the scale (images are resized by
    ``image_scale`` once, e.g. 0.5 when 640x480 frames feed a 320x240 input) and the label stays
    true by construction, with image-level labels only:

    * an image of a **positive** class shows its object roughly centred: the window is centred on
      the image (+- ``jitter`` px), and the label speaks for its inner ``window``;
    * an image of a **negative** class has the object nowhere: *any* window of it is negative, so
      each one yields many different negatives (multiple-instance reasoning, Dietterich et al. 1997).

    Each window carries ``context`` px of margin on every side: seen by the network, not pooled by
    the trainer (the default model's recipe): a person standing in the margin of a negative window
    must not light up its inner cells, which keeps CAM blobs tight.
    Returned windows are ``[H + 2c, W + 2c]`` (+ channels) uint8, flipped and jittered in
    brightness/contrast like :class:`Augment`.
    """

    window: tuple[int, int]
    context: int = 0
    image_scale: float = 1.0
    jitter: int = 8
    flip: bool = True
    brightness: float = 0.2
    contrast: float = 0.2

    def __post_init__(self) -> None:
        self._cache: dict[int, np.ndarray] = {}

    @property
    def size(self) -> tuple[int, int]:
        return self.window[0] + 2 * self.context, self.window[1] + 2 * self.context

    def scaled(self, image: np.ndarray) -> np.ndarray:
        key = id(image)
        if key not in self._cache:
            if self.image_scale != 1.0:
                interp = cv2.INTER_AREA if self.image_scale < 1 else cv2.INTER_LINEAR
                image = cv2.resize(image, None, fx=self.image_scale, fy=self.image_scale, interpolation=interp)
            self._cache[key] = _pad_to(image, *self.size)
        return self._cache[key]

    def __call__(self, image: np.ndarray, positive: bool, rng: np.random.Generator | None) -> np.ndarray:
        """One window of ``image``; ``rng=None``: the deterministic validation window (centred)."""
        img = self.scaled(image)
        ih, iw = img.shape[:2]
        ww, wh = self.size
        if positive or rng is None:
            cx, cy = (iw - ww) // 2, (ih - wh) // 2
            j = self.jitter if rng is not None else 0
            x0 = int(np.clip(cx + (rng.integers(-j, j + 1) if j else 0), 0, iw - ww))
            y0 = int(np.clip(cy + (rng.integers(-j, j + 1) if j else 0), 0, ih - wh))
        else:
            x0, y0 = int(rng.integers(0, iw - ww + 1)), int(rng.integers(0, ih - wh + 1))
        out = img[y0:y0 + wh, x0:x0 + ww]
        if rng is None:
            return np.ascontiguousarray(out)
        return flip_and_jitter(out, rng, self.flip, self.brightness, self.contrast)


def resize_to(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Plain stretch resize to ``size=(W, H)``, as the pipeline's preprocessing does (validation images)."""
    ow, oh = size
    h, w = image.shape[:2]
    return cv2.resize(image, (ow, oh), interpolation=cv2.INTER_AREA if w > ow else cv2.INTER_LINEAR)


__all__ = ["Augment", "IMAGE_EXTENSIONS", "empty_plate", "LabelledImages", "load_data", "load_image_folder", "load_labelled_video",
           "resize_to", "stratified_split", "to_uint8", "WindowSampler"]
