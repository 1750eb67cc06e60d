"""The GPU path: the TensorRT engine (:mod:`.engine`), TensorRT plans, fused CAM overlay and
preprocessing kernels (pycuda).

Importing this package is light: pycuda and tensorrt are imported by the modules that
need them (:mod:`.fused_cam`, :mod:`.preprocess`, :mod:`.plan` when building) and only
when an object is created. :func:`kernel_source` reads a shipped ``.cu`` file.
"""

from __future__ import annotations

from pathlib import Path

KERNEL_DIR = Path(__file__).resolve().parent / "kernels"
"""The CUDA sources shipped as package data (compiled at run time by pycuda's SourceModule)."""


def kernel_source(name: str) -> str:
    """The text of ``kernels/<name>`` (e.g. ``"cam_fused.cu"``)."""
    path = KERNEL_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"CUDA kernel source {name!r} not found in {KERNEL_DIR}")
    return path.read_text(encoding="utf-8")


def kernel_sources() -> list[Path]:
    """Every shipped ``.cu`` file (the tests compile each one to PTX)."""
    return sorted(KERNEL_DIR.glob("*.cu"))


__all__ = ["KERNEL_DIR", "kernel_source", "kernel_sources"]
