"""ONNX Runtime backend: the CPU engine, and the numerical reference for the GPU path."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...errors import ModelError
from ..model_meta import METADATA_KEY, ModelMetadata
from .base import EngineOutput


class OnnxRuntimeEngine:
    """Runs a streamcam ONNX model with ONNX Runtime's CPU execution provider."""

    name = "onnxruntime"

    def __init__(self, model_path: str, threads: int = 1) -> None:
        import onnxruntime as ort

        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path} (train one with `streamcam train`, or fix processor.model)")
        opts = ort.SessionOptions()
        # Pinned thread counts: the pipeline's other stages need the remaining cores,
        # and spinning pool threads steal them.
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises Fail/InvalidProtobuf/RuntimeException...
            raise ModelError(f"cannot load model {path}: {str(exc).strip()[:300]}") from exc
        custom = self._session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in custom:
            raise ModelError(f"model {path} has no '{METADATA_KEY}' metadata: export it with streamcam")
        self.metadata = ModelMetadata.from_json(custom[METADATA_KEY])
        m = self.metadata
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = {o.name for o in self._session.get_outputs()}
        if m.input_name not in inputs:
            raise ModelError(f"model {path}: metadata names input {m.input_name!r}, the graph has {sorted(inputs)}")
        for name in (m.logits_output, m.features_output):
            if name not in outputs:
                raise ModelError(f"model {path}: metadata names output {name!r}, the graph has {sorted(outputs)}")
        shape = inputs[m.input_name].shape
        if len(shape) != 4 or shape[1] != m.input_channels:
            raise ModelError(
                f"model {path}: expected input [N, {m.input_channels}, H, W] by its metadata, the graph has {shape}"
            )
        self._outputs = [m.logits_output, m.features_output]
        self.path = str(path)
        # A graph exported with a fixed batch (older models: [1, C, H, W]) still loads: a batch of
        # frames then runs in chunks of that size. A dynamic batch axis (a name, or None) takes any N.
        self.max_batch: int | None = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None

    def infer(self, batch: np.ndarray) -> EngineOutput:
        """Run ``[N, C, H, W]`` in one call (dynamic batch axis) or in chunks of the graph's fixed batch."""
        feed = self.metadata.input_name
        step = self.max_batch
        if step is None or batch.shape[0] == step:
            logits, features = self._session.run(self._outputs, {feed: batch})
            return EngineOutput(logits=logits, features=features)
        if batch.shape[0] % step:
            raise ValueError(f"batch: this model's graph takes batches of exactly {step} frames "
                             f"(a fixed batch axis), got {batch.shape[0]}")
        outs = [self._session.run(self._outputs, {feed: batch[i:i + step]}) for i in range(0, batch.shape[0], step)]
        return EngineOutput(logits=np.concatenate([o[0] for o in outs]), features=np.concatenate([o[1] for o in outs]))

    def close(self) -> None:
        self._session = None  # type: ignore[assignment]

    def __enter__(self) -> "OnnxRuntimeEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
