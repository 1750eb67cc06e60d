"""The CPU and the float kernels a test run gets: printed before the tests, so a failure names its machine.

    python -m tools.machine_info          # CPU, environment, numpy/BLAS, ONNX Runtime, torch, OpenCV
    python -m tools.machine_info --cpu    # CPU and environment only (standard library)

float32 results differ between machines by their kernels (SIMD width, FMA, the BLAS core
type, fused or not): ``tests/_tolerance.py`` bounds that, and this says which kernels ran.
It only reads: environment variables such as ``OPENBLAS_CORETYPE`` are printed, never set.
Every probe is optional: a package that is missing or fails to answer is reported as such.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import sys
from pathlib import Path

SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile")
"""The /proc/cpuinfo flags that choose float32 kernels (MLAS, OpenBLAS, oneDNN, OpenCV dispatch)."""

KERNEL_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
              "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "NPY_DISABLE_CPU_FEATURES", "OPENCV_CPU_DISABLE")
"""Environment variables that override those choices or the thread counts (summation order)."""


def cpu_summary(cpuinfo: str) -> dict[str, str]:
    """``model``, ``simd`` (the kernel-relevant flags present) and ``logical_cpus`` from /proc/cpuinfo text."""
    model, flags, count = "unknown", set(), 0
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            count += 1
        elif key == "model name" and model == "unknown":
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    simd = " ".join(f for f in SIMD_FLAGS if f in flags) or "none of " + " ".join(SIMD_FLAGS)
    return {"model": model, "simd": simd, "logical_cpus": str(count)}


def cpu_info() -> dict[str, str]:
    """This machine's :func:`cpu_summary` (the platform's processor name where there is no /proc/cpuinfo)."""
    path = Path("/proc/cpuinfo")
    info = cpu_summary(path.read_text()) if path.is_file() else {"model": platform.processor() or "unknown"}
    return {"machine": platform.machine(), **info}


def _env() -> dict[str, str]:
    return {name: os.environ.get(name, "(unset)") for name in KERNEL_ENV}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _numpy() -> dict[str, str]:
    if not _installed("numpy"):
        return {"numpy": "not installed"}
    import numpy as np

    out = {"numpy": np.__version__}
    try:
        config = np.show_config(mode="dicts")
    except TypeError:  # numpy < 1.26 prints only
        config = {}
    simd = config.get("SIMD Extensions", {})
    if simd:
        out["numpy_simd"] = f"baseline {' '.join(simd.get('baseline', []))}; found {' '.join(simd.get('found', []))}"
    blas = config.get("Build Dependencies", {}).get("blas", {})
    if blas:
        out["numpy_blas_build"] = blas.get("openblas configuration") or f"{blas.get('name')} {blas.get('version')}"
    return out


def _threadpools() -> dict[str, str]:
    """Each BLAS/OpenMP library loaded in this process (numpy's, OpenCV's, torch's) and its core type."""
    if not _installed("threadpoolctl"):
        return {"threadpools": "threadpoolctl not installed"}
    for module in ("numpy", "cv2", "torch", "onnxruntime"):  # load them, so their pools are listed
        if _installed(module):
            __import__(module)
    from threadpoolctl import threadpool_info

    out = {}
    for i, pool in enumerate(threadpool_info()):
        parts = [pool.get("internal_api"), pool.get("version"), pool.get("architecture"),
                 f"{pool.get('num_threads')} threads", Path(pool.get("filepath", "")).name]
        out[f"threadpool_{i}"] = " ".join(str(p) for p in parts if p)
    return out or {"threadpools": "none loaded"}


def _onnxruntime() -> dict[str, str]:
    if not _installed("onnxruntime"):
        return {"onnxruntime": "not installed"}
    import onnxruntime as ort

    return {"onnxruntime": ort.__version__, "onnxruntime_providers": " ".join(ort.get_available_providers())}


def _torch() -> dict[str, str]:
    if not _installed("torch"):
        return {"torch": "not installed"}
    import torch

    return {"torch": torch.__version__, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch_threads": str(torch.get_num_threads())}


def _opencv() -> dict[str, str]:
    if not _installed("cv2"):
        return {"opencv": "not installed"}
    import cv2

    features = cv2.getCPUFeaturesLine() if hasattr(cv2, "getCPUFeaturesLine") else "unknown"
    return {"opencv": cv2.__version__, "opencv_cpu_features": features}  # '*': dispatched, '?': not on this CPU


def machine_info(cpu_only: bool = False) -> dict[str, str]:
    """What chose this run's float kernels, as ``{name: value}`` lines."""
    info = {"python": sys.version.split()[0], **cpu_info(), **_env()}
    if not cpu_only:
        for probe in (_numpy, _threadpools, _onnxruntime, _torch, _opencv):
            try:
                info.update(probe())
            except Exception as exc:  # a report, not a check: a probe that fails says so and the rest go on
                info[probe.__name__.lstrip("_")] = f"unavailable ({type(exc).__name__}: {exc})"
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.machine_info", description=__doc__.split("\n")[0])
    parser.add_argument("--cpu", action="store_true", help="the CPU and environment only (no imports)")
    args = parser.parse_args(argv)
    info = machine_info(cpu_only=args.cpu)
    width = max(map(len, info))
    print("machine:")
    for key, value in info.items():
        print(f"  {key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
