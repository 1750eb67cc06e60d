"""Engine backends picked by name; heavy runtimes are imported only when chosen."""

from __future__ import annotations

import importlib
import logging
from typing import Any, Callable

from ...errors import BackendUnavailable
from .base import Engine, EngineOutput

log = logging.getLogger(__name__)

_INSTALL_HINT = {
    "onnxruntime": "pip install onnxruntime",
    "tensorrt": "pip install 'streamcam[gpu]' (TensorRT 10+ from NVIDIA's package index, pycuda, an NVIDIA driver)",
}


def _load_onnxruntime(path: str, threads: int, **options: Any) -> Engine:
    from .onnxrt import OnnxRuntimeEngine

    return OnnxRuntimeEngine(path, threads=threads)


def _load_tensorrt(path: str, threads: int, **options: Any) -> Engine:
    # Named, not imported: the GPU room (streamcam.gpu) builds on the processor's CAM, preprocessing
    # and engine protocol, so the processor does not import it back. Creating it imports tensorrt, pycuda.
    return importlib.import_module("streamcam.gpu.engine").TensorRTEngine(path, **options)


BACKENDS: dict[str, Callable[..., Engine]] = {
    "onnxruntime": _load_onnxruntime,
    "tensorrt": _load_tensorrt,
}


def backend_status(name: str) -> tuple[bool, str]:
    """Whether backend ``name`` can run here, and if not, why (without loading a model)."""
    if name == "onnxruntime":
        try:
            importlib.import_module("onnxruntime")
            return True, "ok (CPUExecutionProvider)"
        except ImportError as exc:
            return False, f"onnxruntime is not installed ({exc}); {_INSTALL_HINT[name]}"
    if name == "tensorrt":
        from .gpu_check import gpu_status

        return gpu_status()
    return False, f"unknown backend {name!r}; expected one of {sorted(BACKENDS)}"


def create_engine(path: str, backend: str = "onnxruntime", threads: int = 1, fallback: bool = False,
                  options: dict[str, Any] | None = None) -> Engine:
    """Load ``path`` with ``backend`` (``options``: the backend's own, e.g. the TensorRT plan's,
    :meth:`ProcessorConfig.engine_options`); with ``fallback`` a backend that cannot run here
    yields ONNX Runtime."""
    if backend not in BACKENDS:
        raise BackendUnavailable(f"processor.backend: unknown backend {backend!r}; expected one of {sorted(BACKENDS)}")
    ok, why = backend_status(backend)
    if not ok:
        if fallback and backend != "onnxruntime":
            log.warning("backend %s cannot run here (%s); falling back to onnxruntime", backend, why)
            return create_engine(path, "onnxruntime", threads, fallback=False)
        raise BackendUnavailable(f"backend {backend!r} cannot run here: {why}")
    return BACKENDS[backend](path, threads, **(options or {}))


__all__ = ["BACKENDS", "Engine", "EngineOutput", "backend_status", "create_engine"]
