"""``FusedCam``: the CAM overlay of :mod:`.reference` in one CUDA launch (``kernels/cam_fused.cu``).

::

    with FusedCam() as fused:
        blended, lowres = fused(features, weights, classes, frames)

* ``features`` float32 ``[N, K, h, w]`` (window ``h * w <= MAX_LOWRES``, 8192 cells): a numpy array (uploaded), or
  already on the GPU — a pycuda ``GPUArray``, a torch CUDA tensor, anything with
  ``__cuda_array_interface__`` (e.g. TensorRT's output buffer via
  :meth:`TensorRTEngine.infer_gpu <streamcam.gpu.engine.TensorRTEngine.infer_gpu>`).
* ``weights`` float32 ``[C, K]`` (the model's ``cam_weights``); uploaded once per array object.
* ``classes``: an int, ``[S]`` (for every frame) or ``[N, S]`` (per frame, e.g. the top class).
* ``frames`` uint8 ``[N, H, W, 3]`` BGR or ``[N, H, W]`` grey, on the host or on the GPU.

* ``window``: ``(x0, y0, x1, y1)`` in feature cells, the part of the map that covers the frame
  (a letterboxed input's map without its padding, see :func:`.reference.feature_window`);
  default the whole map. The CAM, its min/max and the upsampling use only the window.
* ``raw=True`` also returns the raw (un-normalised) window maps ``[N, S, h, w]``: the box
  rule thresholds raw maps, as the CPU path does.

Returns ``blended`` uint8 ``[N, S, H, W, 3]`` and ``lowres`` float32 ``[N, S, h, w]`` (the
min-max normalised low-res maps the stabilizer takes its peaks from, on the CPU: they are
at most 32 KiB each and peak finding on them is cheaper than another launch). With
``to_host=False`` both stay on the GPU (pycuda ``GPUArray``s owned by this object,
overwritten by the next call).

The primary CUDA context is shared with TensorRT and torch (:class:`.context.PrimaryContext`).
Buffers grow to the largest call and are freed by :meth:`close`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import BackendUnavailable
from . import kernel_source
from .reference import class_table, colormap_lut

log = logging.getLogger(__name__)

THREADS = 256
MAX_LOWRES = 8192
"""Cells of the low-res map the kernel holds in shared memory (``CAM_MAX_LOWRES`` in cam_fused.cu)."""
BLOCKS_PER_SM = 4
"""At most this many blocks per SM: every block recomputes the low-res map (see band_rows)."""


def _device_array(obj: Any) -> tuple[int, tuple[int, ...], np.dtype] | None:
    """``(pointer, shape, dtype)`` of a contiguous GPU array, ``None`` for host arrays."""
    iface = getattr(obj, "__cuda_array_interface__", None)
    if iface is not None:
        shape = tuple(int(s) for s in iface["shape"])
        dtype = np.dtype(iface["typestr"])
        strides = iface.get("strides")
        if strides is not None:
            expect, step = [], dtype.itemsize
            for dim in reversed(shape):
                expect.insert(0, step)
                step *= dim
            if tuple(int(x) for x in strides) != tuple(expect):
                raise ValueError(f"expected a contiguous GPU array, got strides {tuple(strides)} for shape {shape}")
        return int(iface["data"][0]), shape, dtype
    if hasattr(obj, "gpudata") and hasattr(obj, "shape"):  # older pycuda GPUArray
        return int(obj.gpudata), tuple(obj.shape), np.dtype(obj.dtype)
    return None


def band_rows(height: int, width: int, pairs: int, multiprocessors: int, lowres_cells: int, k: int) -> int:
    """Rows of output per block (the launch's band size).

    Each block re-reads the ``h*w*K`` features to recompute the low-res map, so the number of
    bands per (frame, class) pair is chosen so that this redundant traffic stays about the size
    of the frame traffic (``H*W*6`` bytes read + written), but within one to ``BLOCKS_PER_SM``
    blocks per SM for the whole launch: never fewer blocks than SMs, never many more.
    """
    pairs = max(1, pairs)
    lo = -(-multiprocessors // pairs)
    hi = max(lo, -(-multiprocessors * BLOCKS_PER_SM // pairs))
    by_traffic = (height * width * 6) // max(1, lowres_cells * k * 4)
    bands = min(max(by_traffic, lo), hi, height)
    return max(1, -(-height // max(1, bands)))


def check_window(window: tuple[int, int, int, int] | None, fh: int, fw: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` checked against an ``fh x fw`` feature map (``None``: the whole map)."""
    if window is None:
        window = (0, 0, fw, fh)
    if len(window) != 4:
        raise ValueError(f"window: expected (x0, y0, x1, y1), got {window!r}")
    x0, y0, x1, y1 = (int(v) for v in window)
    if not (0 <= x0 < x1 <= fw and 0 <= y0 < y1 <= fh):
        raise ValueError(f"window: expected 0 <= x0 < x1 <= {fw} and 0 <= y0 < y1 <= {fh}, got {window!r}")
    return x0, y0, x1, y1


class FusedCam:
    """Owns the compiled kernel, a stream and the buffers; call it per batch. See the module docstring."""

    def __init__(self, alpha: float = 0.4, lut: np.ndarray | None = None, context=None) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha: expected 0 <= alpha <= 1, got {alpha}")
        try:
            import pycuda.driver as cuda
            import pycuda.gpuarray as gpuarray
            from pycuda.compiler import SourceModule
        except ImportError as exc:
            raise BackendUnavailable(f"pycuda is not installed ({exc}); pip install 'streamcam[gpu]'") from exc
        from .context import PrimaryContext

        self._cuda, self._gpuarray = cuda, gpuarray
        self._owns_ctx = context is None
        self.context = context or PrimaryContext()
        self.alpha = float(alpha)
        lut = colormap_lut() if lut is None else np.ascontiguousarray(lut, np.uint8).reshape(256, 3)
        self._buffers: dict[str, Any] = {}
        self._weights_key: tuple[int, tuple[int, ...]] | None = None
        with self.context:
            self._module = SourceModule(kernel_source("cam_fused.cu"), no_extern_c=True)
            self._kernel = self._module.get_function("cam_fused_overlay")
            self._kernel.prepare("P" * 8 + "i" * 12 + "f")
            self._stream = cuda.Stream()
            self._lut = gpuarray.to_gpu(lut)
            self._sms = self.context.multiprocessors

    # -- buffers ---------------------------------------------------------------------------

    def _buffer(self, name: str, shape: tuple[int, ...], dtype) -> Any:
        """An owned GPUArray of exactly ``shape`` (a view of a buffer grown to the largest size seen)."""
        dtype = np.dtype(dtype)
        need = int(np.prod(shape)) if shape else 1
        buf = self._buffers.get(name)
        if buf is None or buf.size < need or buf.dtype != dtype:
            buf = self._gpuarray.empty((need,), dtype)
            self._buffers[name] = buf
        return buf[:need].reshape(shape)

    def _pinned(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        need = int(np.prod(shape))
        buf = self._buffers.get(name)
        if buf is None or buf.size < need or buf.dtype != dtype:
            buf = self._cuda.pagelocked_empty((need,), dtype)
            self._buffers[name] = buf
        return buf[:need].reshape(shape)

    def _on_device(self, name: str, obj: Any, dtype) -> tuple[int, tuple[int, ...]]:
        dev = _device_array(obj)
        if dev is not None:
            ptr, shape, got = dev
            if got != np.dtype(dtype):
                raise ValueError(f"{name}: expected a {np.dtype(dtype)} GPU array, got {got}")
            return ptr, shape
        host = np.ascontiguousarray(obj, dtype=dtype)
        buf = self._buffer(name, host.shape, dtype)
        buf.set_async(host, stream=self._stream)
        return int(buf.gpudata), host.shape

    # -- the call ---------------------------------------------------------------------------

    def __call__(self, features: Any, weights: Any, classes: Any, frames: Any, to_host: bool = True,
                 window: tuple[int, int, int, int] | None = None, raw: bool = False):
        if self._kernel is None:
            raise RuntimeError("FusedCam used after close()")
        with self.context:
            f_ptr, f_shape = self._on_device("features", features, np.float32)
            if len(f_shape) != 4:
                raise ValueError(f"features: expected [N, K, h, w], got shape {list(f_shape)}")
            n, k, fh, fw = f_shape
            x0, y0, x1, y1 = check_window(window, fh, fw)
            h, w = y1 - y0, x1 - x0
            if h * w > MAX_LOWRES:
                raise ValueError(f"features: expected a window of at most {MAX_LOWRES} cells, got {h} x {w} = {h * w}")
            w_ptr, w_shape = self._weights(weights)
            if len(w_shape) != 2 or w_shape[1] != k:
                raise ValueError(f"weights: expected [C, {k}], got shape {list(w_shape)}")
            table = class_table(classes, n, w_shape[0])
            s = table.shape[1]
            c_ptr, _ = self._on_device("classes", table, np.int32)
            fr_ptr, fr_shape = self._on_device("frames", frames, np.uint8)
            if len(fr_shape) == 3:
                fr_shape = fr_shape + (1,)
            if len(fr_shape) != 4 or fr_shape[0] != n or fr_shape[3] not in (1, 3):
                raise ValueError(f"frames: expected uint8 [{n}, H, W, 3] or [{n}, H, W], got shape {list(fr_shape)}")
            height, width, channels = fr_shape[1:]
            out = self._buffer("out", (n, s, height, width, 3), np.uint8)
            lowres = self._buffer("lowres", (n, s, h, w), np.float32)
            raw_maps = self._buffer("raw", (n, s, h, w), np.float32) if raw else None
            rows = band_rows(height, width, n * s, self._sms, h * w, k)
            grid = (-(-height // rows), n * s, 1)
            self._kernel.prepared_async_call(
                grid, (THREADS, 1, 1), self._stream,
                f_ptr, w_ptr, c_ptr, fr_ptr, self._lut.gpudata, out.gpudata, lowres.gpudata,
                raw_maps.gpudata if raw_maps is not None else 0,  # null: no raw maps
                np.int32(k), np.int32(fh), np.int32(fw), np.int32(y0), np.int32(x0), np.int32(h), np.int32(w),
                np.int32(s), np.int32(height), np.int32(width),
                np.int32(channels), np.int32(rows), np.float32(self.alpha))
            if not to_host:
                self._stream.synchronize()
                return (out, lowres, raw_maps) if raw else (out, lowres)
            host_out = self._pinned("host_out", out.shape, np.uint8)
            host_low = self._pinned("host_lowres", lowres.shape, np.float32)
            out.get_async(self._stream, host_out)
            lowres.get_async(self._stream, host_low)
            if raw_maps is not None:
                host_raw = self._pinned("host_raw", raw_maps.shape, np.float32)
                raw_maps.get_async(self._stream, host_raw)
            self._stream.synchronize()
            if raw:
                return host_out.copy(), host_low.copy(), host_raw.copy()
            return host_out.copy(), host_low.copy()

    def _weights(self, weights: Any) -> tuple[int, tuple[int, ...]]:
        dev = _device_array(weights)
        if dev is not None:
            return dev[0], dev[1]
        key = (id(weights), tuple(np.shape(weights)))
        if key != self._weights_key or "weights" not in self._buffers:
            self._weights_ref = weights  # keeps id() stable while cached
            self._on_device("weights", weights, np.float32)
            self._weights_key = key
        buf = self._buffers["weights"]
        return int(buf.gpudata), tuple(np.shape(weights))

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Free the buffers and the module, then release the context (if this object retained it)."""
        if self._kernel is None:
            return
        try:
            with self.context:
                self._stream.synchronize()
                for buf in self._buffers.values():
                    if hasattr(buf, "gpudata"):
                        buf.gpudata.free()
                    elif hasattr(getattr(buf, "base", None), "free"):
                        buf.base.free()  # pinned host memory
                self._lut.gpudata.free()
                self._buffers.clear()
                self._module = None
                self._stream = None
        except Exception as exc:
            log.warning("FusedCam.close: freeing GPU buffers failed: %s", exc)
        self._kernel = None
        self._weights_ref = None
        if self._owns_ctx:
            self.context.close()

    def __enter__(self) -> "FusedCam":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # fallback only: call close()
        if getattr(self, "_kernel", None) is not None:
            log.debug("FusedCam was not closed; closing in __del__")
            try:
                self.close()
            except Exception as exc:
                log.debug("FusedCam.__del__: %s", exc)


__all__ = ["FusedCam", "band_rows", "check_window"]
