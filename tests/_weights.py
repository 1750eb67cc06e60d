"""The offline ImageNet weights a training test needs, or a clean skip naming what to install."""

from __future__ import annotations

import pytest


def offline_weights_or_skip(backbone: str, module: str | None = None) -> str:
    """The path of ``backbone``'s shipped weights file; skips when torch, ``module`` (the package that
    reads them, if not torchvision) or the weights package is absent."""
    pytest.importorskip("torch")
    if module:
        pytest.importorskip(module)
    from streamcam.errors import ModelError
    from streamcam.training.backbones import offline_weights_file

    try:
        return offline_weights_file(backbone)
    except ModelError as exc:
        pytest.skip(str(exc))
