"""Why the GPU path can or cannot run here, found without initialising CUDA in the caller."""

from __future__ import annotations

import ctypes
import importlib.util


def driver_status() -> tuple[bool, str]:
    """Look for the NVIDIA driver library and at least one device."""
    for lib in ("libcuda.so.1", "libcuda.so"):
        try:
            cuda = ctypes.CDLL(lib)
            break
        except OSError:
            continue
    else:
        return False, "no NVIDIA driver (libcuda.so.1 not found)"
    if cuda.cuInit(0) != 0:
        return False, "NVIDIA driver present but cuInit failed (no usable GPU?)"
    count = ctypes.c_int(0)
    if cuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return False, "NVIDIA driver present but no GPU found"
    return True, f"{count.value} GPU(s)"


def gpu_status() -> tuple[bool, str]:
    """TensorRT backend requirements: the tensorrt and pycuda modules and a driver with a GPU."""
    missing = [m for m in ("tensorrt", "pycuda") if importlib.util.find_spec(m) is None]
    ok, why = driver_status()
    reasons = []
    if missing:
        reasons.append(f"{' and '.join(missing)} not installed (pip install 'streamcam[gpu]')")
    if not ok:
        reasons.append(why)
    return (not reasons), ("ok: " + why) if not reasons else "; ".join(reasons)
