"""The processing core shared by the live processor, `streamcam detect` and `streamcam eval`.

Pure and synchronous: frame in, result out. preprocess → engine → CAM of the chosen
classes → normalised map → boxes by the model's box rule. No sockets, no threads.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..errors import ModelError
from ..protocol import Detection
from .boxes import BoxRule, boxes_from_cam
from .peak_boxes import PeakBoxRule
from .cam import class_activation_map, normalize_ivr, normalize_minmax
from .engines import Engine
from .preprocess import crop_to_frame, preprocess

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameResult:
    """What the processor knows about one frame."""

    detections: list[Detection]
    cam: np.ndarray | None
    """Low-resolution normalised CAM ``[h, w]`` in [0, 1] of the first chosen class (None when no class is present)."""
    probs: np.ndarray
    """Softmax class probabilities ``[C]``."""
    timings_ms: dict[str, float] = field(default_factory=dict)
    batch: int = field(default=1, kw_only=True)
    """How many frames shared the engine call that made this result (batching across streams);
    keyword-only, so subclasses' positional fields (``FaceFrameResult.faces``) keep their place."""


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class Detector:
    """Turns frames into CAM boxes with one engine. ``detect(image, pixel_format) -> FrameResult``."""

    def __init__(
        self,
        engine: Engine,
        classes: Sequence[str] = (),
        cam_threshold: float | None = None,
        min_score: float = 0.5,
    ) -> None:
        self.engine = engine
        meta = engine.metadata
        self.meta = meta
        names = tuple(classes) or meta.positive_classes or meta.classes
        self.class_names = tuple(names)
        self.class_indices = [meta.class_index(n) for n in names]
        self.threshold = cam_threshold if cam_threshold is not None else meta.cam_threshold
        if not 0.0 < self.threshold < 1.0:
            raise ModelError(f"cam_threshold: expected a fraction in (0, 1), got {self.threshold}")
        self.min_score = min_score
        self.rule = meta.box_rule
        self.peak_rule = PeakBoxRule.from_dict(meta.peak_boxes) if meta.peak_boxes is not None else None
        self.grow = "flood"
        """How box regions grow from their seeds (``boxes_from_cam(grow=...)``): ``flood`` (fast) or
        ``components`` (the reference); the same boxes."""
        self.background = bool(self.peak_rule is not None and self.peak_rule.top_line is not None)
        """Keep each stream's background (:class:`~streamcam.processor.background.RunningPlate`) so that
        a peak rule with a ``top_line`` sizes boxes by head tops; on by default for such a rule."""
        self.use_silhouettes = False
        """Boxes against each stream's plate of many moments (:mod:`~streamcam.processor.silhouettes`;
        a sample every 10 s, ready after 90 s) or the plate :meth:`set_plate` gave the stream: those on
        fixtures dropped, the rest snapped to their person's blob. Off by default (``processor.silhouettes``)."""
        self.clock = time.monotonic
        """Seconds for the background's sampling: the wall clock live, a sequence's frame times offline."""
        self._plates: dict[str, Any] = {}
        self._fixture_plates: dict[str, Any] = {}
        self._announced: set[str] = set()

    @property
    def watches_background(self) -> bool:
        """Whether :meth:`observe` keeps a plate of the streams (head tops or silhouettes): such a
        detector wants the footage before a scored stretch, as a running camera has seen it."""
        return bool(self.background or self.use_silhouettes)

    def maps(self, image: np.ndarray, pixel_format: str = "GRAY8") -> tuple[np.ndarray, np.ndarray, tuple[int, int], dict]:
        """Raw CAMs ``[len(classes), h, w]`` of the chosen classes (cropped to the frame), probabilities, frame size."""
        t0 = time.perf_counter()
        x, geom = preprocess(image, pixel_format, self.meta)
        t1 = time.perf_counter()
        out = self.engine.infer(x)
        t2 = time.perf_counter()
        cams, probs = self._frame_maps(self._class_maps(out.features)[0], out.logits[0], geom)
        timings = {"preprocess": (t1 - t0) * 1e3, "engine": (t2 - t1) * 1e3}
        return cams, probs, (geom.frame_width, geom.frame_height), timings

    def _class_maps(self, features: np.ndarray) -> np.ndarray:
        """Raw CAMs ``[N, classes, h, w]`` of a batch in one matmul: every class for a multiple-instance
        model (its decision compares them), else the chosen classes only."""
        return class_activation_map(features, self.meta.cam_weights,
                                    None if self.meta.presence == "peak" else self.class_indices)

    def _frame_maps(self, cams: np.ndarray, logits: np.ndarray, geom) -> tuple[np.ndarray, np.ndarray]:
        """One frame's maps (from :meth:`_class_maps`) cropped to the frame, and its class probabilities."""
        cams = crop_to_frame(cams, geom, self.meta)
        if self.meta.presence == "peak":
            return self._peak_presence(cams)
        return cams, softmax(logits.astype(np.float64))

    def shown_map(self, cam: np.ndarray) -> np.ndarray:
        """The map as the heatmap shows it, in [0, 1], from the floor the boxes count from: min-max
        for a GAP model's map; the IVR percentile when calibrated so; zero for a multiple-instance
        model, whose negative cells are "no person here" and would otherwise tint the whole frame."""
        if self.meta.cam_floor == "ivr":
            return normalize_ivr(cam)
        if self.meta.presence == "peak":
            return normalize_minmax(np.maximum(cam, 0.0)).astype(np.float32)
        return normalize_minmax(cam).astype(np.float32)

    def _peak_presence(self, all_cams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``presence: peak``: each chosen class's map as its margin over the best other class (logit
        units: > 0 where a window there is more likely this class), and the class probabilities at
        the cell where the first chosen class leads most: the multiple-instance decision."""
        margins = []
        for c in self.class_indices:
            others = np.delete(all_cams, c, axis=0)
            margins.append(all_cams[c] - (others.max(axis=0) if len(others) else 0.0))
        cams = np.stack(margins).astype(np.float32)
        y, x = np.unravel_index(int(np.argmax(cams[0])), cams[0].shape)
        return cams, softmax(all_cams[:, y, x].astype(np.float64))

    def observe(self, image: np.ndarray, stream: str = "") -> np.ndarray | None:
        """Add ``image`` to ``stream``'s backgrounds and return its movers (None while the background is
        warming up, or without :attr:`background`). :meth:`detect` calls it; call it alone to warm a
        stream up on frames that are not to be detected (the footage before a scored half)."""
        from .background import RunningPlate
        from .silhouettes import LIVE_INTERVAL_S

        if self.use_silhouettes:
            fixed = _stream_plate(self._fixture_plates, stream, lambda: RunningPlate(interval_s=LIVE_INTERVAL_S))
            fixed.observe(image, self.clock())
        if not self.background:
            return None
        plate = _stream_plate(self._plates, stream, RunningPlate)
        plate.observe(image, self.clock())
        return plate.foreground(image)

    def set_plate(self, stream: str, plate: np.ndarray | None, frozen: bool = True) -> None:
        """Give ``stream`` a plate for its silhouettes: for good (``frozen``; a still's camera seen at
        other moments), or until the live samples are in (``streams[].plate``, ``streamcam plate``'s
        picture). None returns it to the live plate. Turns :attr:`use_silhouettes` on."""
        from .background import RunningPlate
        from .silhouettes import LIVE_INTERVAL_S

        self._fixture_plates.pop(stream, None)
        if plate is None:
            return
        self.use_silhouettes = True
        _stream_plate(self._fixture_plates, stream,
                      lambda: RunningPlate.given(plate, frozen=frozen, interval_s=LIVE_INTERVAL_S))

    def silhouettes(self, image: np.ndarray, stream: str = "") -> Any:
        """``image``'s :class:`~streamcam.processor.silhouettes.Silhouettes` against ``stream``'s plate of
        many moments (None while it warms up, or without :attr:`use_silhouettes`); call :meth:`observe` first."""
        from .silhouettes import Silhouettes

        plate = self._fixture_plates.get(stream) if self.use_silhouettes else None
        if plate is None or plate.plate is None:
            return None
        if stream not in self._announced and not plate.frozen:
            # an operator sees when boxes start to be checked against the camera's plate
            log.info("stream %s: silhouettes on, against a plate of %s", stream or "-",
                     f"{plate.samples} samples" if plate.samples >= plate.min_samples else "the given picture")
            if len(self._announced) < 1024:
                self._announced.add(stream)
        return Silhouettes.lazy(lambda: plate.foreground(image, level=True))

    def boxes(self, cam: np.ndarray, prob: float, label: str, frame_size: tuple[int, int],
              threshold: float | None = None, rule: BoxRule | None = None,
              foreground: np.ndarray | None = None, silhouettes: Any = None) -> list[Detection]:
        """Boxes of one raw class map by the model's box rule; score = probability × relative peak.

        ``rule`` overrides the model's calibrated :class:`BoxRule` (margins, aspect); ``foreground``
        is the frame's movers for a peak rule's head tops (:meth:`observe`), ``silhouettes`` its
        blobs against the plate of many moments (:meth:`silhouettes`).
        """
        # The rule runs on the raw (ReLU'd) map, as the CAM paper thresholds it.
        top = float(cam.max())
        if self.peak_rule is not None and threshold is None and rule is None:
            # a peak's own margin is its score: sigmoid(logit margin), the probability a window there holds one
            return [Detection(tuple(float(v) for v in box), float(1.0 / (1.0 + np.exp(-peak))), label)  # type: ignore[arg-type]
                    for box, peak in self.peak_rule.boxes(cam, frame_size, foreground, silhouettes)]
        if top <= 0.0:
            return []
        found = boxes_from_cam(cam, frame_size, self.threshold if threshold is None else threshold,
                               floor=self.meta.cam_floor, grow=self.grow)
        rule = self.rule if rule is None else rule
        if not rule.is_identity:
            cw, ch = frame_size[0] / cam.shape[-1], frame_size[1] / cam.shape[-2]
            found = [(rule.apply(box, cw, ch), peak) for box, peak in found]
        if silhouettes is not None:
            found = silhouettes.refine(found, nms=0.5)
        return [Detection(tuple(float(v) for v in box), prob * float(peak) / top, label)  # type: ignore[arg-type]
                for box, peak in found]

    def _detections(self, cams: np.ndarray, probs: np.ndarray, frame_size: tuple[int, int],
                    gate: float, foreground: np.ndarray | None = None,
                    silhouettes: Any = None) -> tuple[list[Detection], np.ndarray | None]:
        """One frame's boxes (each chosen class at probability >= ``gate``) and its shown map."""
        detections: list[Detection] = []
        for j, (name, c) in enumerate(zip(self.class_names, self.class_indices)):
            p = float(probs[c])
            if p >= gate:
                detections += self.boxes(cams[j], p, name, frame_size, foreground=foreground, silhouettes=silhouettes)
        return detections, (self.shown_map(cams[0]) if len(cams) else None)

    def detect(self, image: np.ndarray, pixel_format: str = "GRAY8", min_score: float | None = None,
               stream: str = "") -> FrameResult:
        """Boxes of every chosen class whose probability is at least ``min_score`` (default: the detector's).

        ``stream`` names the video the frame belongs to; a frame-by-frame detector ignores it, a
        detector with per-video state (face tracking) keeps one state per stream."""
        gate = self.min_score if min_score is None else min_score
        t0 = time.perf_counter()
        cams, probs, frame_size, timings = self.maps(image, pixel_format)
        t2 = time.perf_counter()
        foreground = self.observe(image, stream)
        silhouettes = self.silhouettes(image, stream)
        t3 = time.perf_counter()
        detections, shown = self._detections(cams, probs, frame_size, gate, foreground, silhouettes)
        timings["cam"] = (time.perf_counter() - t3) * 1e3
        if self.watches_background:
            timings["background"] = (t3 - t2) * 1e3
        timings["total"] = (time.perf_counter() - t0) * 1e3
        return FrameResult(detections, shown, probs.astype(np.float32), timings)

    def detect_batch(self, images: Sequence[np.ndarray], pixel_formats: Sequence[str],
                     min_score: float | None = None, streams: Sequence[str] | None = None) -> list[FrameResult]:
        """:meth:`detect` of several frames (of any streams) with **one** engine call and one CAM matmul.

        The slow obvious reference is ``[detect(im, pf) for im, pf in zip(images, pixel_formats)]``;
        the results are the same up to float rounding (tests compare them). Timings per frame:
        ``engine`` is this frame's share of the call, ``engine_call`` the whole call; ``batch`` the N."""
        if len(images) != len(pixel_formats):
            raise ValueError(f"detect_batch: expected one pixel format per image, got {len(images)} images "
                             f"and {len(pixel_formats)} formats")
        if not images:
            return []
        gate = self.min_score if min_score is None else min_score
        t0 = time.perf_counter()
        inputs, geoms = zip(*(preprocess(im, pf, self.meta) for im, pf in zip(images, pixel_formats)))
        x = inputs[0] if len(inputs) == 1 else np.concatenate(inputs)
        t1 = time.perf_counter()
        out = self.engine.infer(x)
        t2 = time.perf_counter()
        all_cams = self._class_maps(out.features)
        n = len(images)
        results = []
        for i, geom in enumerate(geoms):
            t3 = time.perf_counter()
            cams, probs = self._frame_maps(all_cams[i], out.logits[i], geom)
            frame_size = (geom.frame_width, geom.frame_height)
            stream = streams[i] if streams is not None else ""
            foreground = self.observe(images[i], stream)
            detections, shown = self._detections(cams, probs, frame_size, gate, foreground,
                                                 self.silhouettes(images[i], stream))
            cam_ms = (time.perf_counter() - t3) * 1e3
            timings = {"preprocess": (t1 - t0) * 1e3 / n, "engine": (t2 - t1) * 1e3 / n,
                       "engine_call": (t2 - t1) * 1e3, "cam": cam_ms}
            timings["total"] = timings["preprocess"] + timings["engine"] + cam_ms
            results.append(FrameResult(detections, shown, probs.astype(np.float32), timings, batch=n))
        return results


def _stream_plate(plates: dict[str, Any], stream: str, make) -> Any:
    """``stream``'s entry of ``plates``, made on first use; streams come and go (eval sequences), so
    past 64 the oldest leaves."""
    plate = plates.get(stream)
    if plate is None:
        if len(plates) >= 64:
            plates.pop(next(iter(plates)))
        plate = plates[stream] = make()
    return plate
