"""Benchmark the fused CAM overlay kernel against the same steps as separate PyTorch CUDA ops.

    python tools/bench_gpu.py [--width 1920 --height 1080 --k 2048 --lowres 14 --frames 1 --classes 1]
                              [--model MODEL.onnx]  # also end-to-end frames/s: frame_path gpu vs cpu

Both paths get the same device-resident features, weights and frames and produce the same
blended uint8 frames (checked against each other before timing). Times are per call, measured
with CUDA events after warm-up, synchronised before reading. The PyTorch path:
einsum → amin/amax → normalise → F.interpolate(bilinear, align_corners=False) → clamp →
LUT gather → blend → round to uint8, each a separate kernel launch.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np


def _no_gpu(reason: str) -> int:
    print(f"bench_gpu: no GPU benchmark possible here: {reason}", file=sys.stderr)
    return 2


def torch_overlay(torch, F, features, weights, classes, frames, lut, alpha):
    """The fused computation as separate PyTorch ops (features [N,K,h,w], classes [N,S] long)."""
    n, _, h, w = features.shape
    height, width = frames.shape[1:3]
    cam = torch.einsum("nsk,nkhw->nshw", weights[classes], features)
    lo = cam.amin(dim=(2, 3), keepdim=True)
    span = cam.amax(dim=(2, 3), keepdim=True) - lo
    low = torch.where(span > 0, (cam - lo) / torch.where(span > 0, span, torch.ones_like(span)), torch.zeros_like(cam))
    up = F.interpolate(low, size=(height, width), mode="bilinear", align_corners=False).clamp_(0, 1)
    index = torch.round(up * 255).long()
    heat = lut[index]                                           # [N, S, H, W, 3]
    out = (1 - alpha) * frames[:, None].float() + alpha * heat.float()
    return torch.round(out).clamp_(0, 255).to(torch.uint8), low


def time_cuda(torch, fn, repeat: int) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(repeat):
        fn()
    end.record()
    end.synchronize()
    return start.elapsed_time(end) / repeat


def bench_kernel(args) -> tuple[float, float]:
    import torch
    import torch.nn.functional as F

    from streamcam.gpu.context import PrimaryContext
    from streamcam.gpu.fused_cam import FusedCam
    from streamcam.gpu.reference import colormap_lut

    torch.cuda.init()  # torch and pycuda share the primary context of device 0
    dev = torch.device("cuda:0")
    gen = torch.Generator(device=dev).manual_seed(0)
    n, s = args.frames, args.classes
    features = torch.relu(torch.randn(n, args.k, args.lowres, args.lowres, device=dev, generator=gen))
    weights = torch.randn(max(s, 2), args.k, device=dev, generator=gen) / args.k ** 0.5
    classes = torch.arange(s, device=dev).repeat(n, 1)
    frames = torch.randint(0, 256, (n, args.height, args.width, 3), device=dev, dtype=torch.uint8, generator=gen)
    lut = torch.from_numpy(colormap_lut()).to(dev)
    classes_np = classes.cpu().numpy().astype(np.int32)

    ctx = PrimaryContext(0)
    with FusedCam(alpha=args.alpha, context=ctx) as fused:
        got, _ = fused(features, weights, classes_np, frames, to_host=False)
        want, _ = torch_overlay(torch, F, features, weights, classes, frames, lut, args.alpha)
        diff = np.abs(got.get().astype(np.int16) - want.cpu().numpy().astype(np.int16))
        print(f"fused vs torch: max |diff| {diff.max()} grey levels, {np.mean(diff > 1):.4%} pixels > 1")
        t_fused = time_cuda(torch, lambda: fused(features, weights, classes_np, frames, to_host=False), args.repeat)
    ctx.close()
    t_torch = time_cuda(torch, lambda: torch_overlay(torch, F, features, weights, classes, frames, lut, args.alpha),
                        args.repeat)
    return t_fused, t_torch


def bench_end_to_end(args) -> tuple[float, float]:
    """Frames/s of one stream through the processor's two frame paths, on the same frames:

    * gpu: ``OverlayDetector(TensorRT, "gpu")`` — upload once, GPU preprocess, TensorRT, fused
      overlay, blended frame + raw maps to the host, boxes (what ``processor.frame_path: gpu`` runs);
    * cpu: ``Detector(ONNX Runtime)`` + the publisher's ``heatmap_overlay`` (``frame_path: cpu``).
    """
    from streamcam.gpu.pipeline import OverlayDetector
    from streamcam.processor.detector import Detector
    from streamcam.processor.engines.onnxrt import OnnxRuntimeEngine
    from streamcam.gpu.engine import TensorRTEngine
    from streamcam.publisher.annotate import heatmap_overlay

    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (args.height, args.width, 3), dtype=np.uint8) for _ in range(8)]

    def rate(step, repeat):
        for img in frames[:3]:
            step(img)  # warm-up (plan load, kernel compile, buffer growth)
        t0 = time.perf_counter()
        for i in range(repeat):
            step(frames[i % len(frames)])  # each call ends synchronised (results on the host)
        return repeat / (time.perf_counter() - t0)

    gpu = OverlayDetector(TensorRTEngine(args.model, precision=args.precision, max_batch=1), "gpu", args.alpha)
    try:
        gpu_fps = rate(lambda img: gpu.detect(img, "BGR8"), args.repeat)
    finally:
        gpu.close()
    with OnnxRuntimeEngine(args.model, threads=args.threads) as engine:
        cpu = Detector(engine)
        cpu_fps = rate(lambda img: heatmap_overlay(img, cpu.detect(img, "BGR8").cam, args.alpha), max(5, args.repeat // 5))
    return gpu_fps, cpu_fps


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--k", type=int, default=2048, help="feature channels (ResNet-50: 2048)")
    ap.add_argument("--lowres", type=int, default=14, help="feature map side (h = w)")
    ap.add_argument("--frames", type=int, default=1)
    ap.add_argument("--classes", type=int, default=1)
    ap.add_argument("--alpha", type=float, default=0.4)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--model", help="ONNX model: also measure end-to-end frames/s through TensorRT")
    ap.add_argument("--precision", default="fp16", choices=("fp16", "fp32", "int8"))
    ap.add_argument("--threads", type=int, default=4, help="ONNX Runtime threads for the cpu path's end-to-end figure")
    args = ap.parse_args(argv)

    from streamcam.processor.engines.gpu_check import driver_status

    ok, why = driver_status()
    if not ok:
        return _no_gpu(why)
    try:
        import pycuda.driver  # noqa: F401
        import torch
    except ImportError as exc:
        return _no_gpu(f"{exc.name} is not installed (pip install 'streamcam[gpu]' and torch with CUDA)")
    if not torch.cuda.is_available():
        return _no_gpu("torch has no CUDA support")

    print(f"GPU: {torch.cuda.get_device_name(0)}; frames {args.frames} x {args.width}x{args.height}, "
          f"classes {args.classes}, features K={args.k} {args.lowres}x{args.lowres}")
    t_fused, t_torch = bench_kernel(args)
    print(f"fused kernel (1 launch):  {t_fused:8.3f} ms")
    print(f"torch ops (separate):     {t_torch:8.3f} ms")
    print(f"speed-up: {t_torch / t_fused:.2f}x")
    if args.model:
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            print("end-to-end: skipped, tensorrt is not installed")
            return 0
        gpu_fps, cpu_fps = bench_end_to_end(args)
        print(f"end-to-end, frame_path gpu (upload, preprocess, TensorRT {args.precision}, fused overlay, "
              f"download, boxes): {gpu_fps:.1f} frames/s")
        print(f"end-to-end, frame_path cpu (ONNX Runtime, {args.threads} threads, publisher blend): "
              f"{cpu_fps:.1f} frames/s")
        print(f"end-to-end speed-up: {gpu_fps / cpu_fps:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
