"""Export a GAP network to ONNX with its streamcam metadata.

The ONNX graph has input ``input`` ``[N, C, H, W]`` float32 (dynamic batch) and two
outputs, ``logits`` ``[N, classes]`` and ``features`` ``[N, K, h, w]``; the
:class:`~streamcam.processor.model_meta.ModelMetadata` JSON (with the classifier
weights for CAM) is stored in ``metadata_props`` under the key ``streamcam``.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import numpy as np

from ..processor.model_meta import METADATA_KEY, ModelMetadata


def classifier_weights(model) -> tuple[np.ndarray, np.ndarray]:
    """``(W [C, K], b [C])`` of the model's final linear layer, as float32 numpy arrays."""
    lin = model.classifier
    return (lin.weight.detach().cpu().numpy().astype(np.float32),
            lin.bias.detach().cpu().numpy().astype(np.float32))


def export_onnx(model, path: str | os.PathLike, metadata: ModelMetadata, opset: int = 17) -> Path:
    """Write ``model`` (``forward(x) -> (logits, features)``) to ``path`` as ONNX with ``metadata``.

    The metadata's ``cam_weights``/``cam_bias`` are replaced by the model's own
    classifier weights, so they can never disagree with the graph.
    """
    import onnx
    import torch

    w, b = classifier_weights(model)
    metadata = dataclasses.replace(metadata, cam_weights=w, cam_bias=b)
    model = model.eval().cpu()
    dummy = torch.zeros(1, metadata.input_channels, metadata.input_height, metadata.input_width)
    # A fully convolutional net with a multiple-instance head runs at any input size (the
    # calibration picks the camera's scale): spatial axes stay dynamic for it.
    hw = {2: "H", 3: "W"} if metadata.presence == "peak" else {}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = os.path.join(tmp, "model.onnx")
        torch.onnx.export(
            model, (dummy,), tmp_path,
            input_names=[metadata.input_name],
            output_names=[metadata.logits_output, metadata.features_output],
            dynamic_axes={metadata.input_name: {0: "N", **hw}, metadata.logits_output: {0: "N"},
                          metadata.features_output: {0: "N", **hw}},
            opset_version=opset, do_constant_folding=True, dynamo=False,
        )
        proto = onnx.load(tmp_path)
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, metadata.to_json()
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path
