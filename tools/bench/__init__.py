"""Benchmarks of streamcam against its peers and against the machine's limits.

Every comparison is a ratio against a peer measured *in the same run*, interleaved
(A B A B ... rounds, medians taken), with the same thread count on both sides
(``torch.set_num_threads`` == ONNX Runtime ``intra_op_num_threads`` == BLAS threads).
Run ``python -m tools.bench [--quick] [--out docs/benchmarks-peers.md]``.

Each bench module exposes ``run(quick: bool = False, **sizes) -> dict`` returning
``{"rows": [...], ...}``; :mod:`tools.bench.report` turns them into markdown.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import statistics
import time
from typing import Any, Callable

from ..machine_info import cpu_info

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def peer_available(module: str) -> tuple[bool, str]:
    """Whether an optional peer package imports here, and if not, why (for a clean skip)."""
    try:
        importlib.import_module(module)
        return True, "ok"
    except Exception as exc:  # an ImportError, or a broken install raising something else
        return False, f"{module} not importable ({type(exc).__name__}: {str(exc)[:120]}); pip install {_PIP.get(module, module)}"


_PIP = {"torchcam": "torchcam", "pytorch_grad_cam": "grad-cam", "imagezmq": "imagezmq", "threadpoolctl": "threadpoolctl"}


def set_threads(n: int) -> None:
    """Pin torch intra-op threads (when torch is loaded) and BLAS threads (when threadpoolctl is there) to n."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int, iters: int, warmup: int = 1) -> dict[str, list[float]]:
    """Rate (calls/s) of each function per round, rounds interleaved A B C A B C ...

    Each round times ``iters`` back-to-back calls of one function after ``warmup`` untimed calls
    at the start. Returns ``{name: [rate per round]}``; take medians or per-round ratios.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    rates: dict[str, list[float]] = {k: [] for k in fns}
    for r in range(rounds):
        # Alternate the order each round so neither side always runs right after the other.
        order = list(fns) if r % 2 == 0 else list(reversed(list(fns)))
        for name in order:
            fn = fns[name]
            t0 = time.perf_counter()
            for _ in range(iters):
                fn()
            rates[name].append(iters / (time.perf_counter() - t0))
    return rates


def median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def ratio_median(a: list[float], b: list[float]) -> float:
    """Median of per-round ratios a[i] / b[i]: robust to load that drifts between rounds."""
    return median([x / y for x, y in zip(a, b) if y > 0])


def free_tcp_port() -> int:
    """A loopback TCP port free now (for a stage that must be told its peer's address in advance)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISSED"


def percentile(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    import numpy as np

    return float(np.percentile(np.asarray(xs, float), q))


def machine_info() -> dict[str, Any]:
    """CPU model, cores, load and the versions of the libraries the numbers depend on."""
    info: dict[str, Any] = {"cpu": cpu_info()["model"], "cores": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform()}
    try:
        info["loadavg"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        pass
    for pkg in ("numpy", "torch", "torchvision", "onnxruntime", "onnx", "pyzmq", "opencv-python-headless",
                "torchcam", "grad-cam", "imagezmq", "threadpoolctl"):
        try:
            info[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            info[pkg] = "not installed"
    return info
