"""Frame paths: one frame in → the raw CAMs of the chosen classes, the class probabilities, and
the frame with the heatmap already blended in (``processor.frame_path``).

Two implementations of one interface (:class:`FramePath`):

* :class:`GpuFramePath` (``gpu``): the uint8 frame crosses to the GPU once; resize,
  normalisation and HWC→CHW run there (:class:`.preprocess.GpuPreprocess`), TensorRT runs on
  that device buffer (:meth:`TensorRTEngine.infer_gpu`), and one launch of the fused kernel
  (:class:`.fused_cam.FusedCam`) computes CAM, min/max, upsampling, colour map and blend over
  the part of the feature map that covers the frame. Only the blended frame, the logits and the
  raw low-res maps (≤ 4 KiB each) come back to the host.
* :class:`ReferenceFramePath` (``reference``): the same steps on the CPU, built from the CPU
  preprocessing, ONNX Runtime and the numpy reference of the kernel (:mod:`.reference`). Its
  CAMs are computed exactly as :class:`Detector.maps <streamcam.processor.detector.Detector.maps>`
  computes them, so its detections equal the cpu path's; the tests run the whole pipeline with
  it on machines without a GPU.

:class:`OverlayDetector` is a :class:`~streamcam.processor.detector.Detector` driven by a frame
path: the box rule, the scores, the low-res map for the stabilizer's peaks and the stabilizer
itself are the Detector's own code; its results also carry ``blended``, which the processor
sends as the ``image`` part with ``heatmap_blended: true`` (docs/protocol.md), so the publisher
only draws boxes, trails and the banner. Pure and synchronous, like the Detector.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

import numpy as np

from ..processor.cam import class_activation_map, normalize_minmax
from ..processor.detector import Detector, FrameResult, softmax
from ..processor.engines import Engine
from ..processor.preprocess import Geometry, crop_to_frame, preprocess
from .reference import blend_reference, colormap_lut, feature_window

log = logging.getLogger(__name__)

FRAME_PATHS = ("cpu", "gpu", "reference")


def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.size == 0 or not (
            image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3))):
        raise ValueError(f"image: expected a non-empty uint8 [H, W] or [H, W, 3] frame, got "
                         f"{getattr(image, 'dtype', type(image).__name__)} {list(getattr(image, 'shape', ()))}")
    return image


@dataclass(frozen=True)
class CamFrame:
    """What a frame path returns for one frame."""

    cams: np.ndarray
    """float32 ``[S, h, w]``: raw CAMs of the chosen classes over the part of the map that covers the frame."""
    probs: np.ndarray
    """``[C]`` softmax class probabilities."""
    blended: np.ndarray
    """uint8 ``[H, W, 3]`` BGR: the frame with the first chosen class's normalised CAM blended in."""
    geometry: Geometry
    timings_ms: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.cams.ndim != 3 or self.cams.dtype != np.float32:
            raise ValueError(f"cams: expected float32 [S, h, w], got {self.cams.dtype} {list(self.cams.shape)}")
        if self.probs.ndim != 1:
            raise ValueError(f"probs: expected [C], got {list(self.probs.shape)}")
        size = (self.geometry.frame_height, self.geometry.frame_width, 3)
        if self.blended.dtype != np.uint8 or self.blended.shape != size:
            raise ValueError(f"blended: expected uint8 {list(size)}, got {self.blended.dtype} {list(self.blended.shape)}")


class FramePath(Protocol):
    """``path(image, pixel_format) -> CamFrame``; owns what it allocates and frees it in ``close()``."""

    name: str
    engine: Engine

    def __call__(self, image: np.ndarray, pixel_format: str) -> CamFrame:
        ...

    def close(self) -> None:
        ...


class ReferenceFramePath:
    """The gpu path's steps on the CPU: preprocess → ONNX Runtime → CAM → numpy reference blend."""

    name = "reference"

    def __init__(self, engine: Engine, class_indices: Sequence[int], alpha: float = 0.4,
                 lut: np.ndarray | None = None) -> None:
        if not class_indices:
            raise ValueError("class_indices: expected at least one class")
        self.engine = engine
        self.meta = engine.metadata
        self.class_indices = list(class_indices)
        self.alpha = float(alpha)
        self.lut = colormap_lut() if lut is None else np.asarray(lut, np.uint8).reshape(256, 3)

    def __call__(self, image: np.ndarray, pixel_format: str) -> CamFrame:
        image = _check_image(image)
        t0 = time.perf_counter()
        x, geom = preprocess(image, pixel_format, self.meta)
        t1 = time.perf_counter()
        out = self.engine.infer(x)
        t2 = time.perf_counter()
        # The same expressions as Detector.maps: identical maps, hence identical boxes.
        cams = class_activation_map(out.features, self.meta.cam_weights, self.class_indices)[0]
        cams = crop_to_frame(cams, geom, self.meta)
        blended = blend_reference(image, normalize_minmax(cams[0]), self.alpha, self.lut)
        t3 = time.perf_counter()
        probs = softmax(out.logits[0].astype(np.float64))
        timings = {"preprocess": (t1 - t0) * 1e3, "engine": (t2 - t1) * 1e3, "overlay": (t3 - t2) * 1e3}
        return CamFrame(np.ascontiguousarray(cams, np.float32), probs, blended, geom, timings)

    def close(self) -> None:
        """Nothing of its own to free (the engine belongs to the caller)."""


class GpuFramePath:
    """Upload once → GpuPreprocess → TensorRT (``infer_gpu``) → FusedCam → blended frame on the host.

    Shares the engine's primary CUDA context; owns the preprocessing kernel, the fused kernel
    and the device copy of the frame, and frees them in :meth:`close` (not the engine).
    """

    name = "gpu"

    def __init__(self, engine: Any, class_indices: Sequence[int], alpha: float = 0.4,
                 lut: np.ndarray | None = None) -> None:
        if not hasattr(engine, "infer_gpu"):
            raise ValueError(f"engine: expected a GPU engine with infer_gpu (tensorrt), got {getattr(engine, 'name', engine)!r}")
        if not class_indices:
            raise ValueError("class_indices: expected at least one class")
        import pycuda.driver as cuda
        import pycuda.gpuarray as gpuarray

        from .fused_cam import FusedCam
        from .preprocess import GpuPreprocess

        self._cuda, self._gpuarray = cuda, gpuarray
        self.engine = engine
        self.meta = engine.metadata
        self.context = engine.context
        # Stable arrays: FusedCam uploads the weights once per array object.
        self._weights = np.ascontiguousarray(self.meta.cam_weights, np.float32)
        self._classes = np.asarray([list(class_indices)], np.int32)  # [1, S]: every chosen class of the frame
        self._frame = None
        self._closed = False
        self.pre = GpuPreprocess(self.meta, context=self.context)
        try:
            self.fused = FusedCam(alpha=alpha, lut=lut, context=self.context)
        except BaseException:
            self.pre.close()
            raise

    def _upload(self, image: np.ndarray) -> Any:
        """The frame as a device array ``[1, H, W(, 3)]`` (the only host → device copy of the frame)."""
        host = np.ascontiguousarray(image.reshape((1,) + image.shape[:2] + ((3,) if image.ndim == 3 and image.shape[2] == 3 else ())))
        with self.context:
            if self._frame is None or self._frame.shape != host.shape:
                if self._frame is not None:
                    self._frame.gpudata.free()
                self._frame = self._gpuarray.empty(host.shape, np.uint8)
            self._frame.set(host)
        return self._frame

    def __call__(self, image: np.ndarray, pixel_format: str) -> CamFrame:
        image = _check_image(image)
        if self._closed:
            raise RuntimeError("GpuFramePath used after close()")
        t0 = time.perf_counter()
        frame = self._upload(image)
        x, geom = self.pre(frame)
        t1 = time.perf_counter()
        logits, features = self.engine.infer_gpu(x)
        t2 = time.perf_counter()
        fh, fw = features.shape[-2:]
        window = feature_window(geom, self.meta, fh, fw)
        out, _, raw = self.fused(features, self._weights, self._classes, frame, to_host=False, window=window, raw=True)
        height, width = image.shape[:2]
        blended = np.empty((height, width, 3), np.uint8)
        with self.context:
            # Pair (frame 0, class 0) is at the start of the output: only that frame leaves the GPU.
            self._cuda.memcpy_dtoh(blended, out.gpudata)
            cams = raw.get()[0]
        t3 = time.perf_counter()
        probs = softmax(logits[0].astype(np.float64))
        timings = {"preprocess": (t1 - t0) * 1e3, "engine": (t2 - t1) * 1e3, "overlay": (t3 - t2) * 1e3}
        return CamFrame(np.ascontiguousarray(cams, np.float32), probs, blended, geom, timings)

    def close(self) -> None:
        """Free the frame buffer and both kernels' resources (the engine is closed by its owner)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._frame is not None:
                with self.context:
                    self._frame.gpudata.free()
        except Exception as exc:
            log.warning("GpuFramePath.close: freeing the frame buffer failed: %s", exc)
        self._frame = None
        self.fused.close()
        self.pre.close()

    def __enter__(self) -> "GpuFramePath":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class OverlayResult(FrameResult):
    """A :class:`FrameResult` whose frame already carries the heatmap."""

    blended: np.ndarray | None = None
    """uint8 ``[H, W, 3]`` BGR: the frame with the CAM heatmap of the first chosen class (publisher.alpha, JET)."""

    def __post_init__(self) -> None:
        b = self.blended
        if b is not None and (not isinstance(b, np.ndarray) or b.dtype != np.uint8 or b.ndim != 3 or b.shape[2] != 3):
            raise ValueError(f"blended: expected uint8 [H, W, 3], got {getattr(b, 'dtype', type(b).__name__)} "
                             f"{list(getattr(b, 'shape', ()))}")


class OverlayDetector(Detector):
    """The Detector on a frame path: same maps, boxes and scores; results carry the blended frame."""

    def __init__(self, engine: Engine, frame_path: str, alpha: float = 0.4, classes: Sequence[str] = (),
                 cam_threshold: float | None = None, min_score: float = 0.5) -> None:
        super().__init__(engine, classes=classes, cam_threshold=cam_threshold, min_score=min_score)
        if frame_path == "gpu":
            self.path: FramePath = GpuFramePath(engine, self.class_indices, alpha)
        elif frame_path == "reference":
            self.path = ReferenceFramePath(engine, self.class_indices, alpha)
        else:
            raise ValueError(f"frame_path: expected 'gpu' or 'reference', got {frame_path!r}")
        self._blended: np.ndarray | None = None

    def maps(self, image: np.ndarray, pixel_format: str = "GRAY8") -> tuple[np.ndarray, np.ndarray, tuple[int, int], dict]:
        r = self.path(image, pixel_format)
        self._blended = r.blended
        return r.cams, r.probs, (r.geometry.frame_width, r.geometry.frame_height), dict(r.timings_ms)

    def detect(self, image: np.ndarray, pixel_format: str = "GRAY8", min_score: float | None = None,
               stream: str = "") -> OverlayResult:
        self._blended = None
        base = super().detect(image, pixel_format, min_score, stream=stream)
        blended, self._blended = self._blended, None
        return OverlayResult(base.detections, base.cam, base.probs, base.timings_ms, blended=blended)

    def close(self) -> None:
        """Close the frame path, then the engine."""
        try:
            self.path.close()
        finally:
            self.engine.close()


def frame_path_detector(engine: Engine, frame_path: str, alpha: float = 0.4, classes: Sequence[str] = (),
                        cam_threshold: float | None = None, min_score: float = 0.5) -> Detector:
    """The detector for ``processor.frame_path``: an :class:`OverlayDetector`, or a plain Detector
    (the cpu path, the publisher blends) when ``gpu`` was asked for but the engine fell back
    (``processor.fallback: true``) to one without a GPU."""
    if frame_path not in FRAME_PATHS:
        raise ValueError(f"frame_path: expected one of {FRAME_PATHS}, got {frame_path!r}")
    kw = dict(classes=classes, cam_threshold=cam_threshold, min_score=min_score)
    if frame_path == "gpu" and not hasattr(engine, "infer_gpu"):
        log.warning("processor.frame_path gpu: the engine fell back to %s; preprocessing and CAM run on the CPU "
                    "and the publisher blends the heatmap (frame path cpu)", engine.name)
        frame_path = "cpu"
    if frame_path == "cpu":
        return Detector(engine, **kw)
    meta = engine.metadata
    if meta.presence != "mean" or meta.cam_floor != "zero":
        # The fused kernel normalises min-max and the path reads GAP logits: a multiple-instance model
        # (presence: peak) or an IVR-floored one would be gated and shown differently from the cpu path.
        from ..errors import ModelError

        raise ModelError(f"processor.frame_path {frame_path}: this model reads its presence at the CAM's peak "
                         f"(presence {meta.presence}, cam_floor {meta.cam_floor}), which the fused GPU kernel does "
                         f"not do yet; use frame_path: cpu (the network still runs on the chosen backend)")
    check_map_size(engine, frame_path)
    return OverlayDetector(engine, frame_path, alpha, **kw)


def check_map_size(engine: Engine, frame_path: str) -> tuple[int, int]:
    """The model's feature map ``(h, w)``, learnt from one inference on a blank input at start-up;
    raises :class:`ModelError` naming the size and the limit when the fused kernel cannot hold it
    (the reference path, its numpy twin, refuses the same models so the two stay comparable)."""
    from ..errors import ModelError
    from .fused_cam import MAX_LOWRES

    meta = engine.metadata
    blank = np.zeros((1, meta.input_channels, meta.input_height, meta.input_width), np.float32)
    fh, fw = engine.infer(blank).features.shape[-2:]
    if fh * fw > MAX_LOWRES:
        raise ModelError(f"processor.frame_path {frame_path}: the model's feature map is {fh} x {fw} = {fh * fw} cells, "
                         f"more than the fused kernel's {MAX_LOWRES}; use frame_path: cpu (the network still runs "
                         "on the chosen backend) or a model with a coarser map")
    return int(fh), int(fw)


__all__ = ["CamFrame", "FRAME_PATHS", "FramePath", "GpuFramePath", "OverlayDetector", "OverlayResult",
           "ReferenceFramePath", "frame_path_detector"]
