"""``GpuPreprocess``: frames → the network input on the GPU (``kernels/preprocess.cu``).

The frame crosses to the GPU once: the same device copy feeds this kernel and then
:class:`.fused_cam.FusedCam` for the overlay. The steps are those of
:func:`streamcam.processor.preprocess.preprocess` (stretch or letterbox, colour order,
``(x / 255 - mean) / std``, CHW), with one difference: the GPU computes in float,
where the CPU path rounds to uint8 after the colour conversion and after the resize,
so the two differ by at most ``1 / (255 * std)`` per element.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BackendUnavailable
from ..processor.model_meta import ModelMetadata
from ..processor.preprocess import Geometry
from . import kernel_source

COLOR_COPY, COLOR_SWAP, COLOR_TO_GRAY, COLOR_GRAY_TO_3 = 0, 1, 2, 3


@dataclass(frozen=True)
class PreprocessParams:
    """The kernel's scalar arguments for one frame size (a pure function of metadata and size)."""

    color_mode: int
    inner_x: int
    inner_y: int
    inner_w: int
    inner_h: int
    area: bool
    geometry: Geometry


def preprocess_params(meta: ModelMetadata, width: int, height: int, in_channels: int) -> PreprocessParams:
    """Letterbox/stretch rectangle, colour mode and resampling for a ``width x height`` frame.

    Mirrors :func:`streamcam.processor.preprocess.preprocess`: area averaging when the frame
    is shrunk (in width, as the CPU path decides), bilinear otherwise.
    """
    iw, ih = meta.input_width, meta.input_height
    if meta.resize == "stretch":
        nw, nh, px, py = iw, ih, 0, 0
        geom = Geometry(width, height, iw / width, ih / height, 0, 0)
        shrink = width > iw
    else:
        s = min(iw / width, ih / height)
        nw, nh = max(1, round(width * s)), max(1, round(height * s))
        px, py = (iw - nw) // 2, (ih - nh) // 2
        geom = Geometry(width, height, s, s, px, py)
        shrink = s < 1
    if meta.input_channels == 1:
        mode = COLOR_COPY if in_channels == 1 else COLOR_TO_GRAY
    elif in_channels == 1:
        mode = COLOR_GRAY_TO_3
    else:
        mode = COLOR_SWAP if meta.color_order == "RGB" else COLOR_COPY
    return PreprocessParams(mode, px, py, nw, nh, bool(shrink), geom)


class GpuPreprocess:
    """Owns the compiled preprocessing kernel and its output buffer for one model."""

    def __init__(self, meta: ModelMetadata, context=None) -> None:
        try:
            import pycuda.driver as cuda
            import pycuda.gpuarray as gpuarray
            from pycuda.compiler import SourceModule
        except ImportError as exc:
            raise BackendUnavailable(f"pycuda is not installed ({exc}); pip install 'streamcam[gpu]'") from exc
        from .context import PrimaryContext

        self.meta = meta
        self._gpuarray = gpuarray
        self._owns_ctx = context is None
        self.context = context or PrimaryContext()
        mean = list(meta.mean) + [0.0] * (3 - len(meta.mean))
        std = list(meta.std) + [1.0] * (3 - len(meta.std))
        self._norm = [np.float32(m) for m in mean] + [np.float32(1.0 / s) for s in std]
        self._out = None
        self._frames = None
        with self.context:
            self._module = SourceModule(kernel_source("preprocess.cu"), no_extern_c=True)
            self._kernel = self._module.get_function("preprocess_frames")
            self._kernel.prepare("PPiiiiiiiiiiiiffffff")
            self.stream = cuda.Stream()

    def __call__(self, frames: Any) -> tuple[Any, Geometry]:
        """uint8 ``[N, H, W(, C)]`` (host or GPU) → ``(GPUArray float32 [N, C, h, w], geometry)``."""
        from .fused_cam import _device_array

        if self._kernel is None:
            raise RuntimeError("GpuPreprocess used after close()")
        with self.context:
            dev = _device_array(frames)
            if dev is None:
                host = np.ascontiguousarray(frames, np.uint8)
                if self._frames is None or self._frames.size < host.size:
                    self._frames = self._gpuarray.empty((host.size,), np.uint8)
                self._frames[: host.size].set_async(host.reshape(-1), stream=self.stream)
                ptr, shape = int(self._frames.gpudata), host.shape
            else:
                ptr, shape, dtype = dev
                if dtype != np.uint8:
                    raise ValueError(f"frames: expected uint8, got {dtype}")
            if len(shape) == 3:
                shape = shape + (1,)
            if len(shape) != 4 or shape[3] not in (1, 3):
                raise ValueError(f"frames: expected [N, H, W], [N, H, W, 1] or [N, H, W, 3], got {list(shape)}")
            n, height, width, ch = shape
            p = preprocess_params(self.meta, width, height, ch)
            m = self.meta
            out_shape = (n, m.input_channels, m.input_height, m.input_width)
            if self._out is None or self._out.shape != out_shape:
                self._out = self._gpuarray.empty(out_shape, np.float32)
            grid = (-(-m.input_width // 32), -(-m.input_height // 8), n)
            self._kernel.prepared_async_call(
                grid, (32, 8, 1), self.stream, ptr, self._out.gpudata,
                np.int32(height), np.int32(width), np.int32(ch), np.int32(m.input_height), np.int32(m.input_width),
                np.int32(m.input_channels), np.int32(p.color_mode), np.int32(p.inner_x), np.int32(p.inner_y),
                np.int32(p.inner_w), np.int32(p.inner_h), np.int32(int(p.area)), *self._norm)
            self.stream.synchronize()
            return self._out, p.geometry

    def close(self) -> None:
        if self._kernel is None:
            return
        with self.context:
            for buf in (self._out, self._frames):
                if buf is not None:
                    buf.gpudata.free()
            self._out = self._frames = self._module = None
        self._kernel = None
        if self._owns_ctx:
            self.context.close()

    def __enter__(self) -> "GpuPreprocess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["GpuPreprocess", "PreprocessParams", "preprocess_params"]
