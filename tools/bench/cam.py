"""CAM throughput: a full-resolution normalised heatmap for a 640x480 frame, streamcam vs peers.

Same network for everyone: a torchvision ResNet-18 (``weights=None``, seeded), GAP + fc head,
224x224 input. Per frame every contender does the same work:

    preprocess (streamcam's, shared) -> forward -> map of the top class -> bilinear upsample to
    640x480 -> min-max normalise

* ``streamcam``: the ResNet exported once with ``streamcam.training.export.export_onnx``
  (``logits`` + ``features`` outputs, metadata with the fc weights), run by
  ``create_engine(path, "onnxruntime", threads)``, CAM by ``streamcam.processor.cam``.
* ``torchcam``: ``torchcam.methods.CAM`` on the torch model (forward under ``no_grad``),
  upsample with ``F.interpolate``.
* ``grad-cam``: ``pytorch_grad_cam.GradCAM`` (forward + backward), its 224x224 map resized
  with cv2 and normalised.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np

from . import interleaved, median, peer_available, ratio_median, set_threads, verdict

FRAME_W, FRAME_H = 640, 480
INPUT = 224
TARGET_TORCHCAM = 1.5
TARGET_GRADCAM = 4.0


def build_resnet18(seed: int = 0):
    """A seeded torchvision ResNet-18 (no pretrained weights) and a GAP-net view of it for export."""
    import torch
    import torchvision
    from torch import nn

    torch.manual_seed(seed)
    resnet = torchvision.models.resnet18(weights=None).eval()

    class ResNetGap(nn.Module):
        """``forward(x) -> (logits, features)`` with ``classifier`` = the fc layer (what export expects)."""

        def __init__(self, net: nn.Module) -> None:
            super().__init__()
            self.net = net
            self.classifier = net.fc

        def forward(self, x):
            n = self.net
            f = n.layer4(n.layer3(n.layer2(n.layer1(n.maxpool(n.relu(n.bn1(n.conv1(x))))))))
            return self.classifier(f.mean(dim=(2, 3))), f

    return resnet, ResNetGap(resnet).eval()


def export_resnet18(gap_model, path: str) -> str:
    from streamcam.processor.model_meta import ModelMetadata
    from streamcam.training.export import export_onnx

    k = gap_model.classifier.in_features
    c = gap_model.classifier.out_features
    meta = ModelMetadata(
        classes=tuple(f"class{i}" for i in range(c)), input_width=INPUT, input_height=INPUT, input_channels=3,
        color_order="RGB", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
        cam_weights=np.zeros((c, k), np.float32), cam_bias=np.zeros(c, np.float32),
        provenance={"recipe": "tools/bench/cam.py", "weights": "torchvision resnet18, weights=None, seed 0"},
    )
    export_onnx(gap_model, path, meta)
    return path


def make_frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    import cv2

    small = rng.integers(0, 256, (FRAME_H // 16, FRAME_W // 16, 3), dtype=np.uint8)
    return cv2.resize(small, (FRAME_W, FRAME_H), interpolation=cv2.INTER_CUBIC)


def contenders(onnx_path: str, resnet, threads: int, frame: np.ndarray) -> tuple[dict[str, Any], dict[str, str], list]:
    """The per-frame functions ``{name: fn() -> heatmap [480, 640]}``, skipped peers with reasons, closers."""
    import torch
    import torch.nn.functional as F

    from streamcam.processor.cam import class_activation_map, normalize_minmax, upsample
    from streamcam.processor.engines import create_engine
    from streamcam.processor.preprocess import preprocess

    engine = create_engine(onnx_path, "onnxruntime", threads)
    meta = engine.metadata
    closers: list = [engine.close]

    def streamcam_cam() -> np.ndarray:
        x, _ = preprocess(frame, "BGR8", meta)
        out = engine.infer(x)
        c = int(out.logits[0].argmax())
        cam = class_activation_map(out.features, meta.cam_weights, [c])[0, 0]
        return normalize_minmax(upsample(cam, (FRAME_H, FRAME_W)))

    fns: dict[str, Any] = {"streamcam": streamcam_cam}
    skipped: dict[str, str] = {}

    def torch_input() -> "torch.Tensor":
        x, _ = preprocess(frame, "BGR8", meta)
        return torch.from_numpy(x)

    def norm_t(m: "torch.Tensor") -> np.ndarray:
        lo, hi = m.min(), m.max()
        return ((m - lo) / (hi - lo) if hi > lo else torch.zeros_like(m)).numpy()

    ok, why = peer_available("torchcam")
    if ok:
        from torchcam.methods import CAM

        extractor = CAM(resnet, target_layer="layer4", fc_layer="fc")
        closers.append(extractor.remove_hooks)

        def torchcam_cam() -> np.ndarray:
            with torch.no_grad():
                out = resnet(torch_input())
                m = extractor(int(out[0].argmax()), out)[0]  # [1, h, w]
                up = F.interpolate(m[None], size=(FRAME_H, FRAME_W), mode="bilinear", align_corners=False)[0, 0]
                return norm_t(up)

        fns["torchcam"] = torchcam_cam
    else:
        skipped["torchcam"] = why

    ok, why = peer_available("pytorch_grad_cam")
    if ok:
        import cv2
        from pytorch_grad_cam import GradCAM

        gradcam = GradCAM(model=resnet, target_layers=[resnet.layer4[-1]])
        closers.append(lambda: gradcam.activations_and_grads.release())

        def gradcam_cam() -> np.ndarray:
            m = gradcam(input_tensor=torch_input(), targets=None)[0]  # [224, 224], top class
            return normalize_minmax(cv2.resize(m, (FRAME_W, FRAME_H), interpolation=cv2.INTER_LINEAR))

        fns["grad-cam"] = gradcam_cam
    else:
        skipped["grad-cam"] = why
    return fns, skipped, closers


def run(quick: bool = False, threads_list: tuple[int, ...] = (2, 1), rounds: int | None = None,
        iters: int | None = None, onnx_path: str | None = None) -> dict[str, Any]:
    """Frames/s of each contender per thread count, with ratios and target verdicts."""
    import torch

    rounds = rounds or (2 if quick else 5)
    iters = iters or (2 if quick else 3)
    resnet, gap = build_resnet18()
    frame = make_frame()
    rows, skipped = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        path = onnx_path or export_resnet18(gap, os.path.join(tmp, "resnet18-gap.onnx"))
        for threads in threads_list:
            set_threads(threads)
            fns, skipped, closers = contenders(path, resnet, threads, frame)
            try:
                # Same work check: every contender returns a [480, 640] map in [0, 1].
                for name, fn in fns.items():
                    m = fn()
                    if m.shape != (FRAME_H, FRAME_W) or not (0 <= float(m.min()) and float(m.max()) <= 1.0 + 1e-6):
                        raise AssertionError(f"{name}: expected a [480, 640] map in [0, 1], got {m.shape}")
                rates = interleaved(fns, rounds, iters)
            finally:
                for close in closers:
                    close()
            base = rates["streamcam"]
            for name, r in rates.items():
                row = {"threads": threads, "method": name, "fps": median(r), "ms_per_frame": 1e3 / median(r)}
                if name != "streamcam":
                    target = TARGET_TORCHCAM if name == "torchcam" else TARGET_GRADCAM
                    speedup = ratio_median(base, r)
                    row.update(speedup=speedup, target=target, verdict=verdict(speedup >= target))
                rows.append(row)
    torch.set_num_threads(max(threads_list))
    return {"rows": rows, "skipped": skipped, "rounds": rounds, "iters": iters,
            "model": "torchvision resnet18 (weights=None, seed 0), 224x224, 1000 classes"}


if __name__ == "__main__":
    import json

    print(json.dumps(run(quick=True), indent=1, default=str))
