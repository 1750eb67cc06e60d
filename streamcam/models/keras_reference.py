"""A slow, obvious numpy forward pass of a Keras HDF5 model: the reference for converted models.

It shares no code with the PyTorch rebuild in :mod:`streamcam.models.fer_import`: it
walks the layer graph stored in the file's ``model_config`` (whatever its wiring),
keeps Keras' own layout (NHWC, kernels ``HWIO``, depthwise ``HW C 1``), computes in
float64, and implements TensorFlow's padding rule literally:

    'valid':  out = ceil((in - k + 1) / s),  no padding
    'same':   out = ceil(in / s),  pad_total = max((out - 1) * s + k - in, 0),
              pad_before = pad_total // 2,  pad_after = pad_total - pad_before

(for stride 2 the extra pixel goes *after*: asymmetric). Max pooling pads with -inf.
Only the layer types a small Keras 2 CNN uses are supported; anything else raises.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ModelError


@dataclass(frozen=True)
class KerasModel:
    """A Keras functional model read from HDF5 without TensorFlow."""

    layers: tuple[dict[str, Any], ...]
    """``model_config['config']['layers']``: class_name, name, config, inbound_nodes (topological order)."""
    weights: dict[str, dict[str, np.ndarray]]
    """Layer name → {short weight name (``kernel``, ``gamma`` ...) → array}."""
    output_layer: str
    keras_version: str


def load_keras_hdf5(path: str | Path) -> KerasModel:
    """Read a Keras 2 ``model.save()`` HDF5 file with h5py: graph config and weights."""
    import h5py

    with h5py.File(str(path), "r") as f:
        if "model_config" not in f.attrs or "model_weights" not in f:
            raise ModelError(f"{path}: not a Keras model file (no model_config / model_weights)")
        raw = f.attrs["model_config"]
        cfg = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        version = f.attrs.get("keras_version", b"?")
        version = version.decode() if isinstance(version, bytes) else str(version)
        if cfg.get("class_name") not in ("Model", "Functional"):
            raise ModelError(f"{path}: expected a functional Keras model, got {cfg.get('class_name')!r}")
        weights: dict[str, dict[str, np.ndarray]] = {}
        group = f["model_weights"]
        for layer in cfg["config"]["layers"]:
            name = layer["name"]
            if name not in group:
                continue
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in group[name].attrs.get("weight_names", [])]
            arrays = {}
            for wn in names:
                short = wn.split("/")[-1].split(":")[0]
                arrays[short] = np.asarray(group[name][wn], dtype=np.float32)
            weights[name] = arrays
        outputs = cfg["config"]["output_layers"]
        if len(outputs) != 1:
            raise ModelError(f"{path}: expected one output layer, got {outputs}")
    return KerasModel(tuple(cfg["config"]["layers"]), weights, outputs[0][0], version)


def _same_pads(size: int, k: int, s: int) -> tuple[int, int, int]:
    out = math.ceil(size / s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


def _pad_nhwc(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], padding: str, value: float) -> np.ndarray:
    if padding == "valid":
        return x
    if padding != "same":
        raise ModelError(f"keras reference: unsupported padding {padding!r}")
    _, top, bottom = _same_pads(x.shape[1], k[0], s[0])
    _, left, right = _same_pads(x.shape[2], k[1], s[1])
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def _windows(x: np.ndarray, k: tuple[int, int], s: tuple[int, int]):
    """Yield ``(i, j, x[:, i::s, j::s] cropped to the output size)`` for every kernel offset."""
    oh = (x.shape[1] - k[0]) // s[0] + 1
    ow = (x.shape[2] - k[1]) // s[1] + 1
    for i in range(k[0]):
        for j in range(k[1]):
            yield i, j, x[:, i : i + (oh - 1) * s[0] + 1 : s[0], j : j + (ow - 1) * s[1] + 1 : s[1], :]


def conv2d(x: np.ndarray, kernel: np.ndarray, strides, padding: str, bias: np.ndarray | None = None) -> np.ndarray:
    """Cross-correlation, NHWC input, HWIO kernel: ``y = sum_ij x_window(i, j) @ K[i, j]``."""
    k, s = kernel.shape[:2], tuple(strides)
    xp = _pad_nhwc(x, k, s, padding, 0.0)
    out = None
    for i, j, win in _windows(xp, k, s):
        term = win @ kernel[i, j].astype(np.float64)
        out = term if out is None else out + term
    return out if bias is None else out + bias


def depthwise_conv2d(x: np.ndarray, kernel: np.ndarray, strides, padding: str) -> np.ndarray:
    """Per-channel cross-correlation; kernel ``[kh, kw, C, multiplier]`` (multiplier 1 only)."""
    if kernel.shape[3] != 1:
        raise ModelError("keras reference: depth_multiplier != 1 is not supported")
    k, s = kernel.shape[:2], tuple(strides)
    xp = _pad_nhwc(x, k, s, padding, 0.0)
    out = None
    for i, j, win in _windows(xp, k, s):
        term = win * kernel[i, j, :, 0].astype(np.float64)
        out = term if out is None else out + term
    return out


def max_pool2d(x: np.ndarray, pool, strides, padding: str) -> np.ndarray:
    k, s = tuple(pool), tuple(strides)
    xp = _pad_nhwc(x, k, s, padding, -np.inf)
    out = None
    for _, _, win in _windows(xp, k, s):
        out = win if out is None else np.maximum(out, win)
    return out


def _activation(x: np.ndarray, name: str) -> np.ndarray:
    if name == "linear":
        return x
    if name == "relu":
        return np.maximum(x, 0.0)
    if name == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    raise ModelError(f"keras reference: unsupported activation {name!r}")


def _layer(layer: dict[str, Any], inputs: list[np.ndarray], w: dict[str, np.ndarray]) -> np.ndarray:
    kind, c = layer["class_name"], layer["config"]
    if kind in ("Conv2D", "SeparableConv2D") and tuple(c.get("dilation_rate", (1, 1))) != (1, 1):
        raise ModelError(f"keras reference: {layer['name']}: dilation is not supported")
    if kind == "InputLayer":
        return inputs[0]
    if kind == "Conv2D":
        y = conv2d(inputs[0], w["kernel"], c["strides"], c["padding"], w.get("bias") if c["use_bias"] else None)
        return _activation(y, c["activation"])
    if kind == "SeparableConv2D":
        y = depthwise_conv2d(inputs[0], w["depthwise_kernel"], c["strides"], c["padding"])
        y = conv2d(y, w["pointwise_kernel"], (1, 1), "valid", w.get("bias") if c["use_bias"] else None)
        return _activation(y, c["activation"])
    if kind == "BatchNormalization":
        if c.get("axis", -1) not in (-1, 3, [3], [-1]):
            raise ModelError(f"keras reference: {layer['name']}: BatchNormalization axis {c['axis']} unsupported")
        gamma = w["gamma"] if c.get("scale", True) else 1.0
        beta = w["beta"] if c.get("center", True) else 0.0
        return (inputs[0] - w["moving_mean"]) / np.sqrt(w["moving_variance"].astype(np.float64) + c["epsilon"]) * gamma + beta
    if kind == "Activation":
        return _activation(inputs[0], c["activation"])
    if kind == "MaxPooling2D":
        return max_pool2d(inputs[0], c["pool_size"], c["strides"], c["padding"])
    if kind == "Add":
        return sum(inputs[1:], inputs[0])
    if kind == "GlobalAveragePooling2D":
        return inputs[0].mean(axis=(1, 2))
    raise ModelError(f"keras reference: unsupported layer {kind} ({layer['name']})")


def forward(model: KerasModel, x_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output (float64, NHWC) for the preprocessed input batch ``x_nhwc``."""
    outputs: dict[str, np.ndarray] = {}
    for layer in model.layers:
        if layer["class_name"] == "InputLayer":
            outputs[layer["name"]] = np.asarray(x_nhwc, dtype=np.float64)
            continue
        nodes = layer["inbound_nodes"]
        if len(nodes) != 1:
            raise ModelError(f"keras reference: shared layer {layer['name']} is not supported")
        inputs = [outputs[entry[0]] for entry in nodes[0]]
        outputs[layer["name"]] = _layer(layer, inputs, model.weights.get(layer["name"], {}))
    return outputs


def logits_and_features(model: KerasModel, x_nchw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For a net ending ``conv → GAP → softmax``: (pre-softmax GAP output ``[N, C]``, conv map ``[N, C, h, w]``).

    Takes and returns the streamcam layout (NCHW), converting to Keras' NHWC inside.
    """
    by_name = {layer["name"]: layer for layer in model.layers}
    out = by_name[model.output_layer]
    gap = by_name[out["inbound_nodes"][0][0][0]]
    if out["class_name"] != "Activation" or gap["class_name"] != "GlobalAveragePooling2D":
        raise ModelError("keras reference: expected the model to end with GlobalAveragePooling2D → softmax")
    conv_name = gap["inbound_nodes"][0][0][0]
    values = forward(model, np.transpose(np.asarray(x_nchw, np.float64), (0, 2, 3, 1)))
    return values[gap["name"]], np.transpose(values[conv_name], (0, 3, 1, 2))
