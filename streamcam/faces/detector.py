"""Face mode: faces → emotion (or any face classifier) → where on each face the network looked.

``FaceEmotionDetector.detect(image, pixel_format) -> FaceFrameResult`` is a drop-in for
:class:`~streamcam.processor.detector.Detector` (a :class:`FrameResult` subclass):

1. :class:`~streamcam.faces.finder.FaceFinder` finds faces (CenterFace in ONNX Runtime), on a
   copy of the frame no larger than its ``max_side``, with a minimum face size relative to the
   frame (the same settings work for a 640×480 webcam and a 1920×1080 camera). Each frame is
   searched whole: no per-stream state.
2. Each face box is made square around its centre and grown by ``margin`` on each
   side (the emotion net was trained on such crops; pixels outside the frame are
   replicated), and preprocessed by the model's metadata (64×64 grey for the fer
   model). All faces go through the engine in **one** batch.
3. Per face: softmax → top-1 class (label) and its probability (score); the CAM of
   that class (``features`` weighted by ``cam_weights``; the identity for
   mini-Xception), min-max normalised, upsampled into the crop's place in a
   low-resolution map with the frame's aspect (``cam_max_side`` on its long side),
   keeping the maximum where crops overlap. The publisher blends that map as usual,
   so the heatmap shows where on each face the net looked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import cv2
import numpy as np

from ..errors import ModelError
from ..protocol import Detection
from ..processor.cam import class_activation_map, normalize_minmax
from ..processor.detector import FrameResult, softmax
from ..processor.engines import Engine
from ..processor.preprocess import preprocess
from .finder import FaceFinder

@dataclass(frozen=True)
class FaceResult:
    """One face: its box in the frame, the class probabilities, and the normalised CAM of its top class."""

    box: tuple[float, float, float, float]
    crop: tuple[int, int, int, int]
    """The square crop ``(x0, y0, x1, y1)`` given to the network (may extend past the frame)."""
    probs: np.ndarray
    label: str
    score: float
    cam: np.ndarray = field(repr=False)
    """``[h, w]`` CAM of ``label`` in [0, 1], covering ``crop``."""


@dataclass(frozen=True)
class FaceFrameResult(FrameResult):
    """A :class:`FrameResult` (``probs`` are those of the largest face; zeros without faces) plus each face."""

    faces: tuple[FaceResult, ...] = ()


def square_crop(box: Sequence[float], margin: float) -> tuple[int, int, int, int]:
    """Square ``(x0, y0, x1, y1)`` around the box centre, side ``max(w, h) * (1 + 2 * margin)``."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * (1.0 + 2.0 * margin)
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    a, b = int(round(cx - side / 2)), int(round(cy - side / 2))
    n = max(1, int(round(side)))
    return a, b, a + n, b + n


def crop_replicate(image: np.ndarray, crop: tuple[int, int, int, int]) -> np.ndarray:
    """``image[y0:y1, x0:x1]`` with out-of-frame pixels replicated from the border."""
    x0, y0, x1, y1 = crop
    h, w = image.shape[:2]
    inner = image[max(0, y0):min(h, y1), max(0, x0):min(w, x1)]
    top, left = max(0, -y0), max(0, -x0)
    bottom, right = max(0, y1 - h), max(0, x1 - w)
    if inner.size == 0:
        raise ValueError(f"crop {crop} lies outside the {w}x{h} frame")
    if top or left or bottom or right:
        inner = cv2.copyMakeBorder(inner, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return inner


class FaceEmotionDetector:
    """Faces → per-face class and CAM with one engine. ``detect(image, pixel_format) -> FaceFrameResult``."""

    def __init__(
        self,
        engine: Engine,
        classes: Sequence[str] = (),
        min_score: float = 0.0,
        face_finder: FaceFinder | None = None,
        margin: float = 0.1,
        max_faces: int = 8,
        cam_max_side: int = 160,
    ) -> None:
        """
        classes: labels that are reported (empty = all of the model's classes).
        min_score: a face whose top-1 probability is below this is not reported.
        face_finder: default :class:`~streamcam.faces.finder.FaceFinder()`.
        margin: crop grows by this fraction of the face size on each side (fer uses ~10 %).
        max_faces: the largest faces kept per frame (bounds the engine batch).
        cam_max_side: long side of the frame-aspect CAM map sent to the publisher.
        """
        self.engine = engine
        self.meta = engine.metadata
        for name in classes:
            self.meta.class_index(name)  # raises ModelError naming the class
        self.class_names = tuple(classes) or self.meta.classes
        if not 0.0 <= min_score <= 1.0:
            raise ModelError(f"min_score: expected a probability in [0, 1], got {min_score}")
        if not 0.0 <= margin <= 1.0:
            raise ModelError(f"margin: expected a fraction in [0, 1], got {margin}")
        self.min_score, self.margin, self.max_faces, self.cam_max_side = min_score, margin, max_faces, cam_max_side
        self.faces = face_finder or FaceFinder()

    def _map_shape(self, w: int, h: int) -> tuple[int, int]:
        s = min(1.0, self.cam_max_side / max(w, h))
        return max(1, round(h * s)), max(1, round(w * s))

    def detect(self, image: np.ndarray, pixel_format: str = "BGR8", min_score: float | None = None,
               stream: str = "") -> FaceFrameResult:
        """Faces, their classes and CAMs. ``stream`` is accepted as by every detector and not needed: each
        frame is searched whole (the stabilizer, after this, follows the faces)."""
        if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0:
            raise ValueError(f"detect: expected a non-empty uint8 [H, W] or [H, W, 3] image, got {image.dtype} {image.shape}")
        t0 = time.perf_counter()
        h, w = image.shape[:2]
        gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        boxes, _ = self.faces.detect(image, pixel_format if image.ndim == 3 else "GRAY8")
        if len(boxes) > self.max_faces:
            areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            boxes = boxes[np.argsort(-areas)[: self.max_faces]]
        t1 = time.perf_counter()
        crops = [square_crop(b, self.margin) for b in boxes]
        src = gray if self.meta.input_channels == 1 else image
        fmt = "GRAY8" if src.ndim == 2 else pixel_format
        batch = [preprocess(crop_replicate(src, c), fmt, self.meta)[0] for c in crops]
        t2 = time.perf_counter()
        c_count = len(self.meta.classes)
        if not batch:
            return FaceFrameResult([], np.zeros(self._map_shape(w, h), np.float32), np.zeros(c_count, np.float32),
                                   {"faces": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3, "engine": 0.0, "cam": 0.0}, ())
        out = self.engine.infer(np.concatenate(batch))
        t3 = time.perf_counter()
        probs = softmax(out.logits.astype(np.float64)).astype(np.float32)
        top = probs.argmax(axis=1)
        # CAM of each face's own top class: [N, h, w].
        cams = np.stack([class_activation_map(out.features[i:i + 1], self.meta.cam_weights, [int(c)])[0, 0]
                         for i, c in enumerate(top)])
        cams = normalize_minmax(cams)
        mh, mw = self._map_shape(w, h)
        sx, sy = mw / w, mh / h
        frame_map = np.zeros((mh, mw), np.float32)
        faces, detections = [], []
        for box, crop, p, c, cam in zip(boxes, crops, probs, top, cams):
            label, score = self.meta.classes[int(c)], float(p[c])
            # The crop's place in the map (it may extend past the frame: draw, then clip).
            mx0, my0 = int(round(crop[0] * sx)), int(round(crop[1] * sy))
            mx1, my1 = max(mx0 + 1, int(round(crop[2] * sx))), max(my0 + 1, int(round(crop[3] * sy)))
            up = cv2.resize(cam, (mx1 - mx0, my1 - my0), interpolation=cv2.INTER_LINEAR)
            cx0, cy0, cx1, cy1 = max(mx0, 0), max(my0, 0), min(mx1, mw), min(my1, mh)
            if cx1 > cx0 and cy1 > cy0:
                region = frame_map[cy0:cy1, cx0:cx1]
                np.maximum(region, up[cy0 - my0:cy1 - my0, cx0 - mx0:cx1 - mx0], out=region)
            bx = tuple(float(v) for v in box)
            faces.append(FaceResult(bx, crop, p, label, score, cam))  # type: ignore[arg-type]
            if label in self.class_names and score >= (self.min_score if min_score is None else min_score):
                detections.append(Detection(bx, score, label))  # type: ignore[arg-type]
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        t4 = time.perf_counter()
        timings = {"faces": (t1 - t0) * 1e3, "preprocess": (t2 - t1) * 1e3, "engine": (t3 - t2) * 1e3,
                   "cam": (t4 - t3) * 1e3}
        return FaceFrameResult(detections, frame_map, probs[int(np.argmax(areas))], timings, tuple(faces))
