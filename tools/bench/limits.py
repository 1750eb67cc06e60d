"""The hardware limit: model FLOPs per frame vs the machine's measured sgemm peak, same threads.

* MACs per frame are counted from the ONNX graph after shape inference (batch fixed to 1):
  ``Conv``: output elements x (C_in / groups) x kH x kW; ``Gemm``/``MatMul``: M x N x K.
  FLOPs = 2 x MACs (other ops — ReLU, pooling, BN folded into conv — are negligible).
* Peak: a float32 ``n x n`` matrix product with numpy (its BLAS), threads limited with
  threadpoolctl to the engine's thread count: peak = 2 n^3 / t, best of the repeats
  (the best is the estimate of a peak; the others are noise from the shared machine).
* fraction of peak = 2 x MACs x engine fps / peak.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from . import median


def count_macs(onnx_path: str) -> dict[str, int]:
    """``{"conv": MACs, "gemm": MACs, "total": MACs}`` for one frame (batch 1)."""
    import onnx
    from onnx import shape_inference

    model = onnx.load(onnx_path)
    for inp in model.graph.input:
        dims = inp.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].ClearField("dim_param")
            dims[0].dim_value = 1
    model = shape_inference.infer_shapes(model)
    shapes: dict[str, list[int]] = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    for init in model.graph.initializer:
        shapes[init.name] = list(init.dims)
    conv = gemm = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w = shapes[node.input[1]]  # [C_out, C_in/groups, kH, kW]
            out = shapes.get(node.output[0])
            if not out or 0 in out:
                raise ValueError(f"count_macs: no inferred shape for {node.output[0]}")
            conv += int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
            if not a or not b:
                continue
            trans_b = any(at.name == "transB" and at.i == 1 for at in node.attribute)
            k = a[-1]
            n = b[0] if trans_b else b[-1]
            m = int(np.prod(a[:-1]))
            gemm += m * n * k
    return {"conv": conv, "gemm": gemm, "total": conv + gemm}


def sgemm_peak(threads: int, n: int = 2048, repeats: int = 5) -> dict[str, float]:
    """Best and median GFLOP/s of a float32 n x n x n matmul on ``threads`` BLAS threads."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # without it the BLAS uses its default thread count: say so
        threadpool_limits = None
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    c = np.empty((n, n), np.float32)
    rates = []
    ctx = threadpool_limits(threads) if threadpool_limits else None
    try:
        np.matmul(a, b, out=c)
        for _ in range(repeats):
            t0 = time.perf_counter()
            np.matmul(a, b, out=c)
            rates.append(2.0 * n**3 / (time.perf_counter() - t0) / 1e9)
    finally:
        if ctx is not None:
            ctx.unregister() if hasattr(ctx, "unregister") else ctx.restore_original_limits()
    return {"n": n, "best_gflops": max(rates), "median_gflops": median(rates),
            "threads_limited": threadpool_limits is not None}


def engine_fps(onnx_path: str, threads: int, seconds: float) -> float:
    from streamcam.processor.engines import create_engine

    engine = create_engine(onnx_path, "onnxruntime", threads)
    try:
        m = engine.metadata
        x = np.random.default_rng(0).standard_normal((1, m.input_channels, m.input_height, m.input_width)).astype(np.float32)
        engine.infer(x)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            engine.infer(x)
            n += 1
        return n / (time.perf_counter() - t0)
    finally:
        engine.close()


def run(models: dict[str, str], quick: bool = False, threads_list: tuple[int, ...] = (1, 2),
        n: int | None = None, seconds: float | None = None) -> dict[str, Any]:
    """Fraction of the measured sgemm peak each model's engine reaches, per thread count."""
    n = n or (1024 if quick else 2048)
    seconds = seconds or (0.5 if quick else 2.0)
    rows = []
    peaks = {}
    for threads in threads_list:
        # Interleave: peak, engines, peak again; the peak is the best of both.
        p1 = sgemm_peak(threads, n)
        fps = {name: engine_fps(path, threads, seconds) for name, path in models.items()}
        p2 = sgemm_peak(threads, n)
        peak = max(p1["best_gflops"], p2["best_gflops"])
        peaks[threads] = {"best_gflops": peak, "median_gflops": median([p1["median_gflops"], p2["median_gflops"]]),
                          "n": n, "threads_limited": p1["threads_limited"]}
        for name, path in models.items():
            macs = count_macs(path)
            achieved = 2.0 * macs["total"] * fps[name] / 1e9
            rows.append({"model": name, "threads": threads, "gmacs_per_frame": macs["total"] / 1e9,
                         "engine_fps": fps[name], "achieved_gflops": achieved, "peak_gflops": peak,
                         "fraction_of_peak": achieved / peak})
    return {"rows": rows, "peaks": peaks}


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run({p: p for p in sys.argv[1:]}, quick=True), indent=1, default=str))
