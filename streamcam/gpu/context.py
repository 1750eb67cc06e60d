"""The device's primary CUDA context, shared by pycuda, TensorRT and torch.

TensorRT and torch use the CUDA runtime API, which works in the device's *primary*
context. pycuda by default creates its own context (``pycuda.autoinit``), and
device pointers are then not usable across the two. :class:`PrimaryContext` retains
the primary context instead (what ``pycuda.autoprimaryctx`` does, but as an owned
object): ``with ctx:`` pushes it for the calling thread and pops it afterwards, so
the objects that use it work from whichever thread calls them; ``close()`` releases
the retain.
"""

from __future__ import annotations

import logging

from ..errors import BackendUnavailable

log = logging.getLogger(__name__)


class PrimaryContext:
    """A retained primary context of device ``device`` (pycuda), pushed by ``with``."""

    def __init__(self, device: int = 0) -> None:
        try:
            import pycuda.driver as cuda
        except ImportError as exc:
            raise BackendUnavailable(f"pycuda is not installed ({exc}); pip install 'streamcam[gpu]'") from exc
        try:
            cuda.init()
            if device >= cuda.Device.count():
                raise BackendUnavailable(f"GPU {device} requested, {cuda.Device.count()} found")
            self.device = cuda.Device(device)
            self._ctx = self.device.retain_primary_context()
        except cuda.Error as exc:
            raise BackendUnavailable(f"cannot open GPU {device}: {exc}") from exc
        self._cuda = cuda

    @property
    def name(self) -> str:
        return str(self.device.name())

    @property
    def compute_capability(self) -> tuple[int, int]:
        return tuple(self.device.compute_capability())  # type: ignore[return-value]

    @property
    def multiprocessors(self) -> int:
        return int(self.device.get_attribute(self._cuda.device_attribute.MULTIPROCESSOR_COUNT))

    def __enter__(self) -> "PrimaryContext":
        if self._ctx is None:
            raise RuntimeError("PrimaryContext used after close()")
        self._ctx.push()
        return self

    def __exit__(self, *exc: object) -> None:
        self._cuda.Context.pop()

    def close(self) -> None:
        """Release the retain (the context itself lives on while TensorRT/torch hold it)."""
        if self._ctx is None:
            return
        try:
            self._ctx.detach()
        except Exception as exc:  # driver already shut down at interpreter exit
            log.warning("releasing the primary CUDA context failed: %s", exc)
        self._ctx = None


__all__ = ["PrimaryContext"]
