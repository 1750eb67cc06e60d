"""The settings of one fine-tuning run (:class:`FinetuneConfig`), from YAML or the command line.

Apart from :mod:`.finetune` (the recipe that runs them) so that the knobs and their *why* read on
their own; :mod:`.finetune` re-exports its names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

from ..errors import ConfigError


MIN_VAL_PER_CLASS = 5
"""Fewer validation images per class than this cannot pick an epoch: one image flips the loss."""


@dataclass(frozen=True)
class FinetuneConfig:
    """One fine-tuning run. YAML keys are the field names (see configs/finetune-example.yaml)."""

    data: str
    """Folder ``root/<class>/*.jpg`` or a labelled-video ``.yaml``/``.csv``."""
    out: str = "model.onnx"
    """ONNX file to write (metadata inside)."""
    backbone: str = "mobilenet_v2_s16"
    """mobilenet_v2_s16 (MobileNetV2's ImageNet trunk at stride 16: the full-frame localization
    recipe; mobilenet_v2_s8 and efficientnet_lite0_s16 are the other trunks it takes), resnet18,
    resnet50, mobilenet_v2, mobilenet_v3_small or tiny_gap."""
    weights: str | None = "DEFAULT"
    """DEFAULT (the ImageNet weights: offline for mobilenet_v2*, from torchvision's hub otherwise),
    a torchvision weights name, a local .pth file, or none (random init)."""
    recipe: str = "auto"
    """``mil``: full frames, a multiple-instance head on the frozen trunk (:mod:`streamcam.training.mil`);
    ``windows``: windows at the live scale (``window``); ``whole``: whole images stretched to the
    input (classification). ``auto``: windows when ``window`` is set, mil for a pretrained
    mobilenet_v2_s16, else whole."""
    mil_pool_r: float = 5.0
    """mil: log-sum-exp sharpness of a person frame's bag score."""
    mil_views: int = 2
    """mil: views per frame (the frame plus mirrored / gain-jittered copies)."""
    mil_steps: int = 300
    """mil: full-batch steps of the head on the cached features."""
    mil_weight_decay: float = 1e-3
    classes: tuple[str, ...] = ()
    """Class order; empty: the sorted sub-folder / label names."""
    positive_classes: tuple[str, ...] = ()
    """Classes whose CAM gives boxes in the pipeline (empty: all)."""
    input_size: tuple[int, int] | None = None
    """(W, H) network input; None: the backbone's default (224x224; 320x240 for tiny_gap)."""
    epochs: int = 10
    """Epochs of the first phase (head only with pretrained weights, else the whole net)."""
    unfreeze: bool = False
    """Second phase: train the whole net at ``lr_unfrozen`` (pretrained weights only)."""
    unfreeze_epochs: int = 5
    lr: float | None = None
    """AdamW learning rate of the first phase; None: 1e-3 for a pretrained head, 3e-3 from random init."""
    lr_unfrozen: float = 1e-4
    """Learning rate of the unfrozen phase: 10x lower, so pretrained features are not destroyed."""
    weight_decay: float = 1e-4
    batch_size: int = 16
    samples_per_epoch: int = 256
    """Augmented samples per epoch (few images: an epoch repeats them with new crops)."""
    val_fraction: float = 0.2
    patience: int = 3
    """Early stopping: epochs without a validation-loss improvement before stopping."""
    seed: int = 0
    """Seeds torch, numpy, the split and the augmentation."""
    threads: int = 1
    """torch and ONNX Runtime threads. Raise it on an idle machine; on a busy one extra threads
    oversubscribe the cores (measured here: 37 ms vs 1.6 s per tiny_gap step, 1 vs 2 threads)."""
    augment_scale: tuple[float, float] = (0.5, 1.0)
    brightness: float = 0.2
    contrast: float = 0.2
    flip: bool = True
    cam_threshold: float = 0.2
    """Box threshold stored in the metadata (the CAM paper's 20 %; tune it on a validation set)."""
    check_tolerance: float = 1e-3
    """Max allowed |ONNX Runtime - PyTorch| (logits and CAM, relative to max(1, |value|))."""
    video_step: int | None = None
    """Labelled videos: keep every n-th frame of each range (default: the label file's ``step``)."""
    max_minutes: float | None = None
    """Stop training (keeping the best weights) after this long."""
    window: tuple[int, int] | None = None
    """(W, H) network-input pixels a label speaks for: train on windows cut at the live frames' scale
    (:class:`~streamcam.training.data.WindowSampler`) instead of whole images stretched to the input.
    Positive-class images are taken as showing their object roughly centred, negative-class images
    give a window anywhere. None: whole images (classification-style fine-tuning)."""
    context: int = 0
    """Margin (input px, a multiple of the backbone's stride) around each window: seen, not pooled."""
    image_scale: float = 1.0
    """Training-image pixels -> network-input pixels for windows (0.5: 640x480 frames, 320x240 input)."""
    average_epochs: int = 0
    """Keep the mean of the weights after each of the last n epochs of the last phase instead of the
    best epoch (stochastic weight averaging, Izmailov et al., UAI 2018): with a few validation
    images the "best" epoch is mostly chance; an average of late epochs is steadier. 0: best epoch."""
    window_jitter: int = 8
    """Random shift (input px) of the centred window of a positive image."""
    ensemble: int = 1
    """Fine-tune this many members (seeds ``seed``, ``seed + 1``, ...: other splits, batches and
    augmentations) and export their average as one GAP network (:class:`~streamcam.training.nets.
    GapEnsemble`: logits and CAMs are the members' means). Steadier with a few pictures; one forward
    pass per member at run time. ``max_minutes`` applies to each member."""
    flip_average: bool | None = None
    """Export each member averaged with itself on the mirrored frame (:class:`~streamcam.training.
    nets.FlipAverage`, still one GAP network). Twice the forward cost. None: on for the mil recipe,
    off for the others. A stride-16 map of people 25-40 px wide places each one by its cell; the
    mirrored pass is a second, independently biased look (PETS09's second half with the fitted peak
    offset of stop 30: localization 0.873 -> 0.907, MOTA 0.796 -> 0.857; TUD-Campus's 100 px people
    0.690 -> 0.684; docs/benchmarks.md, "Stop 28" to "Stop 30")."""
    progress: bool = True
    net: dict = field(default_factory=dict)
    """Extra constructor arguments for tiny_gap (width, feature_channels)."""

    def __post_init__(self) -> None:
        from .backbones import BACKBONES

        if self.backbone not in BACKBONES:
            raise ConfigError(f"backbone: expected one of {list(BACKBONES)}, got {self.backbone!r}")
        for key in ("epochs", "batch_size", "samples_per_epoch"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"{key}: expected >= 1, got {getattr(self, key)!r}")
        for key in ("lr", "lr_unfrozen"):
            if getattr(self, key) is not None and not float(getattr(self, key)) > 0:
                raise ConfigError(f"{key}: expected > 0, got {getattr(self, key)!r}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction: expected 0 <= value < 1, got {self.val_fraction!r}")
        if not 0.0 < self.cam_threshold < 1.0:
            raise ConfigError(f"cam_threshold: expected 0 < value < 1, got {self.cam_threshold!r}")
        if self.window is not None and (len(self.window) != 2 or min(self.window) < 8):
            raise ConfigError(f"window: expected [W, H] with both >= 8, got {self.window!r}")
        if int(self.ensemble) < 1:
            raise ConfigError(f"ensemble: expected >= 1 members, got {self.ensemble!r}")
        for key in ("context", "window_jitter", "average_epochs"):
            if int(getattr(self, key)) < 0:
                raise ConfigError(f"{key}: expected >= 0, got {getattr(self, key)!r}")
        if not 0.05 <= self.image_scale <= 4:
            raise ConfigError(f"image_scale: expected 0.05..4, got {self.image_scale!r}")
        if self.recipe not in ("auto", "mil", "windows", "whole"):
            raise ConfigError(f"recipe: expected auto, mil, windows or whole, got {self.recipe!r}")
        if self.resolved_recipe == "mil" and self.window is not None:
            raise ConfigError("recipe mil trains on full frames; window is for the windows recipe")
        if self.resolved_recipe == "mil" and self.weights is None:
            raise ConfigError("recipe mil trains a head on a frozen pretrained trunk: weights none has nothing to freeze")
        for key in ("mil_views", "mil_steps"):
            if int(getattr(self, key)) < 1:
                raise ConfigError(f"{key}: expected >= 1, got {getattr(self, key)!r}")
        if not self.mil_pool_r > 0:
            raise ConfigError(f"mil_pool_r: expected > 0, got {self.mil_pool_r!r}")
        if self.input_size is not None and (len(self.input_size) != 2 or min(self.input_size) < 32):
            raise ConfigError(f"input_size: expected [W, H] with both >= 32, got {self.input_size!r}")

    @property
    def resolved_flip_average(self) -> bool:
        return self.resolved_recipe == "mil" if self.flip_average is None else bool(self.flip_average)

    @property
    def resolved_recipe(self) -> str:
        if self.recipe != "auto":
            return self.recipe
        if self.window is not None:
            return "windows"
        from .backbones import MIL_BACKBONES

        return "mil" if self.backbone in MIL_BACKBONES and self.weights is not None else "whole"

    @classmethod
    def from_dict(cls, d: dict) -> "FinetuneConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"finetune config: unknown keys {unknown}; expected some of {sorted(known)}")
        if "data" not in d:
            raise ConfigError("finetune config: missing key 'data' (a class folder or a labelled-video file)")
        d = dict(d)
        for key in ("classes", "positive_classes", "augment_scale", "input_size", "window"):
            if d.get(key) is not None:
                d[key] = tuple(d[key])
        w = d.get("weights", "DEFAULT")
        d["weights"] = None if w is None or str(w).lower() in ("none", "null", "") else str(w)
        return cls(**d)


def load_config(path: str) -> dict:
    import yaml

    with open(path) as fh:
        d = yaml.safe_load(fh) or {}
    if not isinstance(d, dict):
        raise ConfigError(f"{path}: expected a mapping of finetune keys")
    if "data" in d and not Path(d["data"]).is_absolute():
        # Relative to the working directory (like the CLI's paths), not to the YAML.
        d["data"] = str(d["data"])
    return d
