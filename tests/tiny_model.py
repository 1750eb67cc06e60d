"""A 3-layer GAP network built directly with onnx.helper: a real model for tests, no torch needed."""

from __future__ import annotations

import numpy as np

from streamcam.processor.model_meta import METADATA_KEY, ModelMetadata


def make_tiny_gap_onnx(path: str, width: int = 64, height: int = 48, channels: int = 1, k: int = 16,
                       classes: tuple[str, ...] = ("no_person", "person"), seed: int = 0,
                       resize: str = "stretch", batch: int | str = "N") -> ModelMetadata:
    """conv(3x3,s2) → ReLU → conv(3x3,s2) → ReLU = features → GAP → linear = logits.

    ``batch``: the batch axis, dynamic (a name) or fixed (an int: how older exports looked)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.5, (8, channels, 3, 3)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 8).astype(np.float32)
    w2 = rng.normal(0, 0.3, (k, 8, 3, 3)).astype(np.float32)
    b2 = rng.normal(0, 0.1, k).astype(np.float32)
    wc = rng.normal(0, 1.0, (len(classes), k)).astype(np.float32)
    bc = rng.normal(0, 0.1, len(classes)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (wc, "wc"), (bc, "bc"))]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["features"]),
        helper.make_node("GlobalAveragePool", ["features"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"]),
        helper.make_node("Gemm", ["flat", "wc", "bc"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny_gap",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, channels, height, width])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, len(classes)]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT, [batch, k, (height + 3) // 4, (width + 3) // 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = ModelMetadata(
        classes=classes, input_width=width, input_height=height, input_channels=channels,
        color_order="GRAY" if channels == 1 else "RGB", mean=(0.5,) * channels, std=(0.25,) * channels,
        cam_weights=wc, cam_bias=bc, resize=resize,
        positive_classes=(classes[-1],), provenance={"recipe": "tests/tiny_model.py", "seed": seed},
    )
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta.to_json()
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return meta
