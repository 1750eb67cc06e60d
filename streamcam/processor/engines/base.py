"""The engine protocol: one ONNX artifact, several runtimes behind the same two calls."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..model_meta import ModelMetadata


@dataclass(frozen=True)
class EngineOutput:
    """What every backend returns for a batch: ``logits [N, C]`` and ``features [N, K, h, w]``."""

    logits: np.ndarray
    features: np.ndarray


class Engine(Protocol):
    """A loaded network. Backends own their resources and release them in ``close()``."""

    name: str
    metadata: ModelMetadata

    def infer(self, batch: np.ndarray) -> EngineOutput:
        """Run a preprocessed float32 batch ``[N, C, H, W]``."""
        ...

    def close(self) -> None:
        ...
