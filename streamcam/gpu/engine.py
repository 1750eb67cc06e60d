"""TensorRT backend: the GPU engine, behind the same two calls as :class:`.onnxrt.OnnxRuntimeEngine`.

The plan comes from :func:`streamcam.gpu.plan.build_plan` (cached under ``engines/cache``,
rebuilt when the ONNX file, GPU, TensorRT version, precision or shapes change). Inference
uses TensorRT 10's tensor-name API and ``execute_async_v3`` on one CUDA stream per engine,
with pinned host buffers and device buffers allocated once for the largest batch and freed
by :meth:`TensorRTEngine.close`. The CUDA context is the device's primary context, shared
with pycuda kernels (:class:`streamcam.gpu.fused_cam.FusedCam`) and torch.

tensorrt and pycuda are imported when an engine is created, never at package import.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BackendUnavailable, ModelError
from ..processor.engines.base import EngineOutput
from ..processor.model_meta import read_metadata

log = logging.getLogger(__name__)


class TensorRTEngine:
    """Runs a streamcam ONNX model through a cached TensorRT plan on GPU ``device``."""

    name = "tensorrt"

    def __init__(self, model_path: str, precision: str = "fp16", max_batch: int = 8,
                 cache_dir: str = "engines/cache", calibration: str | None = None, device: int = 0,
                 context=None, opt_batch: int | None = None, plan: str | None = None, build: bool = True) -> None:
        """``precision``/``max_batch``/``opt_batch``/``calibration``: the plan's options, as for
        `streamcam build-engine` (processor.tensorrt); ``plan``: a plan file to load as is; ``build``:
        build a missing plan now (else a ModelError names the build-engine command)."""
        try:
            import pycuda.driver as cuda
            import tensorrt as trt
        except ImportError as exc:
            raise BackendUnavailable(f"{exc.name or exc} is not installed; pip install 'streamcam[gpu]'") from exc
        from .context import PrimaryContext
        from .plan import resolve_plan

        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path} (train one with `streamcam train`, or fix processor.model)")
        self.path = str(path)
        self.metadata = read_metadata(self.path)
        m = self.metadata
        self.plan_path = resolve_plan(path, precision, max_batch, opt_batch, calibration, cache_dir, plan, build,
                                      device=device)
        self._cuda, self._trt = cuda, trt
        self._owns_ctx = context is None
        self.context = context or PrimaryContext(device)
        self.max_batch = max_batch
        self._closed = False
        with self.context:
            self._logger = trt.Logger(trt.Logger.WARNING)
            self._runtime = trt.Runtime(self._logger)
            self._engine = self._runtime.deserialize_cuda_engine(self.plan_path.read_bytes())
            if self._engine is None:
                raise ModelError(f"TensorRT could not load plan {self.plan_path}; delete it to rebuild")
            self._exec = self._engine.create_execution_context()
            self._stream = cuda.Stream()
            names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
            inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
            outputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
            if inputs != [m.input_name]:
                raise ModelError(f"plan {self.plan_path}: expected the single input {m.input_name!r}, got {inputs}")
            for name in (m.logits_output, m.features_output):
                if name not in outputs:
                    raise ModelError(f"plan {self.plan_path}: metadata names output {name!r}, the plan has {outputs}")
            self._input_shape = (m.input_channels, m.input_height, m.input_width)
            # Output shapes at the largest batch tell the buffer sizes.
            self._exec.set_input_shape(m.input_name, (max_batch,) + self._input_shape)
            self._host: dict[str, np.ndarray] = {}
            self._device: dict[str, Any] = {}
            self._dtypes: dict[str, np.dtype] = {}
            for name in [m.input_name] + outputs:
                shape = tuple(self._exec.get_tensor_shape(name))
                dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(name)))
                if any(d < 0 for d in shape):
                    raise ModelError(f"plan {self.plan_path}: output {name!r} has unresolved shape {shape}")
                self._dtypes[name] = dtype
                self._host[name] = cuda.pagelocked_empty(shape, dtype)
                self._device[name] = cuda.mem_alloc(max(1, self._host[name].nbytes))
                self._exec.set_tensor_address(name, int(self._device[name]))
        self._outputs = outputs
        log.info("TensorRT engine %s: plan %s, max batch %d", path.name, self.plan_path.name, max_batch)

    # -- inference --------------------------------------------------------------------------

    def _run(self, n: int, input_ptr: int | None = None) -> None:
        """Enqueue one batch of ``n`` (already in the input buffer, or at ``input_ptr``) on the stream."""
        m = self.metadata
        self._exec.set_input_shape(m.input_name, (n,) + self._input_shape)
        self._exec.set_tensor_address(m.input_name, int(input_ptr if input_ptr is not None else self._device[m.input_name]))
        if not self._exec.execute_async_v3(self._stream.handle):
            raise ModelError(f"TensorRT execution failed for a batch of {n} (see the TensorRT messages)")

    def infer(self, batch: np.ndarray) -> EngineOutput:
        """float32 ``[N, C, H, W]`` → logits ``[N, classes]`` and features ``[N, K, h, w]`` (host arrays)."""
        self._check_open()
        m = self.metadata
        batch = np.asarray(batch)
        if batch.ndim != 4 or batch.shape[1:] != self._input_shape:
            raise ValueError(f"batch: expected [N, {', '.join(map(str, self._input_shape))}], got {list(batch.shape)}")
        logits, features = [], []
        with self.context:
            for start in range(0, batch.shape[0], self.max_batch):
                chunk = batch[start:start + self.max_batch]
                n = chunk.shape[0]
                host_in = self._host[m.input_name]
                np.copyto(host_in[:n], chunk, casting="same_kind")
                self._cuda.memcpy_htod_async(self._device[m.input_name], host_in[:n], self._stream)
                self._run(n)
                for name in (m.logits_output, m.features_output):
                    self._cuda.memcpy_dtoh_async(self._host[name][:n], self._device[name], self._stream)
                self._stream.synchronize()
                logits.append(self._host[m.logits_output][:n].astype(np.float32, copy=True))
                features.append(self._host[m.features_output][:n].astype(np.float32, copy=True))
        return EngineOutput(logits=np.concatenate(logits), features=np.concatenate(features))

    def infer_gpu(self, batch: Any) -> tuple[np.ndarray, Any]:
        """A batch already on the GPU (e.g. from :class:`streamcam.gpu.preprocess.GpuPreprocess`) →
        ``(logits on the host, features as a GPUArray view of this engine's output buffer)``.

        The features stay on the GPU for :class:`streamcam.gpu.fused_cam.FusedCam`; the view is
        overwritten by the next call. ``batch`` must have at most ``max_batch`` frames.
        """
        import pycuda.gpuarray as gpuarray

        from .fused_cam import _device_array

        self._check_open()
        m = self.metadata
        dev = _device_array(batch)
        if dev is None:
            raise ValueError("infer_gpu: expected a GPU array (GPUArray, torch CUDA tensor, ...); use infer() for host arrays")
        ptr, shape, dtype = dev
        if len(shape) != 4 or shape[1:] != self._input_shape or dtype != self._dtypes[m.input_name]:
            raise ValueError(f"infer_gpu: expected {self._dtypes[m.input_name]} [N, {', '.join(map(str, self._input_shape))}], "
                             f"got {dtype} {list(shape)}")
        n = shape[0]
        if not 1 <= n <= self.max_batch:
            raise ValueError(f"infer_gpu: expected 1..{self.max_batch} frames, got {n}")
        with self.context:
            self._run(n, ptr)
            self._cuda.memcpy_dtoh_async(self._host[m.logits_output][:n], self._device[m.logits_output], self._stream)
            self._stream.synchronize()
            fshape = (n,) + self._host[m.features_output].shape[1:]
            features = gpuarray.GPUArray(fshape, self._dtypes[m.features_output], gpudata=self._device[m.features_output])
            return self._host[m.logits_output][:n].astype(np.float32, copy=True), features

    # -- lifetime ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("TensorRTEngine used after close()")

    def close(self) -> None:
        """Free the device buffers, the execution context, the engine and the stream."""
        if self._closed:
            return
        self._closed = True
        try:
            with self.context:
                self._stream.synchronize()
                for buf in self._device.values():
                    buf.free()
                for arr in self._host.values():
                    arr.base.free()
                self._device.clear()
                self._host.clear()
                del self._exec, self._engine, self._runtime
                self._stream = None
        except Exception as exc:
            log.warning("TensorRTEngine.close: releasing GPU resources failed: %s", exc)
        if self._owns_ctx:
            self.context.close()

    def __enter__(self) -> "TensorRTEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # fallback only: call close()
        if getattr(self, "_closed", True) is False:
            try:
                self.close()
            except Exception as exc:
                log.debug("TensorRTEngine.__del__: %s", exc)
