"""Fine-tune a GAP network on a few labelled images and export it for streamcam (``streamcam train``).

    streamcam train DATA --backbone resnet18 --out model.onnx [--epochs 10] [--unfreeze] [--weights DEFAULT]
    python -m streamcam.training.finetune --config configs/finetune-example.yaml

The recipe (image-level labels only; the CAM then says *where*):

1. load ``DATA`` (``root/<class>/*.jpg`` or a labelled-video YAML/CSV, :mod:`streamcam.training.data`);
   stratified, seeded train/validation split;
2. build the backbone with a new linear head after GAP (:func:`~streamcam.training.backbones.build_backbone`);
3. with pretrained weights: **freeze the backbone and train the head** (``epochs``), then optionally
   **unfreeze** it and train everything at a lower learning rate (``unfreeze_epochs``, ``lr_unfrozen``);
   BatchNorm statistics stay frozen (a few images per batch cannot estimate them). Without pretrained
   weights (``weights: none``, e.g. ``tiny_gap``) there is nothing to keep: the whole net trains;
4. early stopping on the validation loss (the best epoch's weights are kept);
5. export to ONNX (``logits`` + ``features``) with metadata: classes, input size, mean/std, the
   classifier weights for CAM, and provenance (backbone, weights source, data summary, epochs,
   metrics, date, seed);
6. verify: ONNX Runtime must reproduce PyTorch's logits and CAMs on a validation image, and
   ``mean(M_c) + b_c == logit_c``; the max abs differences are reported, and a difference above
   ``check_tolerance`` (relative to the values' magnitude, floor 1) raises :class:`ModelError`.

Every input goes through :func:`streamcam.processor.preprocess.preprocess` with the model's own
metadata, so training, validation and the live pipeline see identically normalised pixels.

Why this module is ~590 lines: it is the recipe above, one sequence whose steps share the model,
the split and the metrics; what stands alone has its own module (the settings in
:mod:`.finetune_config`, data in :mod:`.data`, nets in :mod:`.backbones`, MIL in :mod:`.mil`,
the ONNX writer in :mod:`.export`).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import json
import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, ModelError
from ..processor.model_meta import ModelMetadata
from .data import Augment, LabelledImages, WindowSampler, load_data, resize_to, stratified_split

log = logging.getLogger(__name__)

from .finetune_config import MIN_VAL_PER_CLASS, FinetuneConfig, load_config  # noqa: F401 (re-exported)


class _Progress:
    """tqdm when installed, else one rewritten stderr line."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.enabled, self.desc, self.total, self.n = enabled, desc, total, 0
        self._bar = None
        if enabled:
            try:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc=desc, leave=True, file=sys.stderr, dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, **stats: float) -> None:
        self.n += 1
        if not self.enabled:
            return
        text = " ".join(f"{k} {v:.3f}" for k, v in stats.items())
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.update(1)
        else:
            sys.stderr.write(f"\r{self.desc} {self.n}/{self.total} {text}   ")
            sys.stderr.flush()

    def close(self, summary: str = "") -> None:
        if self._bar is not None:
            self._bar.close()
        if self.enabled and summary:
            sys.stderr.write(("" if self._bar is not None else "\n") + summary + "\n")
            sys.stderr.flush()


def _batch(images: Sequence[np.ndarray], meta: ModelMetadata):
    """uint8 images -> normalised float tensor ``[N, C, H, W]`` exactly as the pipeline preprocesses."""
    import torch

    from ..processor.preprocess import preprocess

    xs = [preprocess(im, "GRAY8" if im.ndim == 2 else "BGR8", meta)[0][0] for im in images]
    return torch.from_numpy(np.stack(xs))


def _evaluate(model, data: LabelledImages, meta: ModelMetadata, size: tuple[int, int], bs: int,
              windows=None, positive=(), cells: int = 0) -> tuple[float, float]:
    import torch

    from .nets import inner_logits

    if len(data) == 0:
        return float("nan"), float("nan")
    model.eval()
    losses, correct = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(data), bs):
            y = torch.from_numpy(data.labels[i:i + bs])
            if windows is not None:
                x = _batch([windows(im, int(c) in positive, None) for im, c in zip(data.images[i:i + bs], y)],
                           _window_meta(meta, windows))
                logits = inner_logits(model, x, cells)
            else:
                x = _batch([resize_to(im, size) for im in data.images[i:i + bs]], meta)
                logits, _ = model(x)
            losses += float(torch.nn.functional.cross_entropy(logits, y, reduction="sum"))
            correct += int((logits.argmax(1) == y).sum())
    return losses / len(data), correct / len(data)


def _accumulate(swa: dict, state: dict) -> None:
    """Add a state_dict to a running sum (float tensors; integer buffers keep their latest value)."""
    if swa["sum"] is None:
        swa["sum"] = {k: v.detach().clone().double() if v.is_floating_point() else v.clone() for k, v in state.items()}
    else:
        for k, v in state.items():
            swa["sum"][k] = swa["sum"][k] + v.double() if v.is_floating_point() else v.clone()
    swa["n"] += 1


def _average(swa: dict) -> dict:
    return {k: (v / swa["n"]).float() if v.is_floating_point() else v for k, v in swa["sum"].items()}


def _window_meta(meta: ModelMetadata, windows) -> ModelMetadata:
    """The model's preprocessing at the window's size (the resize is then the identity)."""
    w, h = windows.size
    return dataclasses.replace(meta, input_width=int(w), input_height=int(h), resize="stretch")


def _set_train_mode(model, body_trainable: bool, freeze_bn: bool) -> None:
    from torch import nn

    model.train()
    if not body_trainable:
        model.body.eval()
    elif freeze_bn:
        for m in model.body.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def _grey_stats(images: Sequence[np.ndarray]) -> tuple[float, float]:
    vals = np.concatenate([im.reshape(-1)[:: max(1, im.size // 20000)] for im in images]).astype(np.float64) / 255.0
    return float(vals.mean()), float(max(vals.std(), 1e-3))


def verify_export(model, onnx_path: str, image: np.ndarray, threads: int = 1, tolerance: float = 1e-3) -> dict:
    """ONNX Runtime vs PyTorch on one image: logits, every class's CAM, and the CAM/logit identity.

    Returns the max abs differences; raises :class:`ModelError` when one exceeds ``tolerance``
    relative to max(1, max |reference|).
    """
    import torch

    from ..processor.cam import class_activation_map
    from ..processor.engines import create_engine
    from ..processor.preprocess import preprocess

    engine = create_engine(onnx_path, "onnxruntime", threads)
    try:
        meta = engine.metadata
        x, _ = preprocess(image, "GRAY8" if image.ndim == 2 else "BGR8", meta)
        out = engine.infer(x)
        model.eval()
        with torch.no_grad():
            logits_t, feats_t = model(torch.from_numpy(x))
        w = model.classifier.weight.detach().numpy()
        b = model.classifier.bias.detach().numpy()
        cam_t = class_activation_map(feats_t.numpy(), w)
        cam_o = class_activation_map(out.features, meta.cam_weights)
    finally:
        engine.close()
    lt = logits_t.numpy()
    report = {
        "logits_max_abs_diff": float(np.abs(out.logits - lt).max()),
        "cam_max_abs_diff": float(np.abs(cam_o - cam_t).max()),
        "cam_logit_identity_max_abs_diff": float(np.abs(cam_o.mean(axis=(2, 3)) + meta.cam_bias - out.logits).max()),
        "metadata_weights_max_abs_diff": float(max(np.abs(meta.cam_weights - w).max(), np.abs(meta.cam_bias - b).max())),
    }
    scale = {"logits_max_abs_diff": np.abs(lt).max(), "cam_max_abs_diff": np.abs(cam_t).max(),
             "cam_logit_identity_max_abs_diff": np.abs(lt).max(), "metadata_weights_max_abs_diff": 1.0}
    bad = {k: v for k, v in report.items() if v > tolerance * max(1.0, float(scale[k]))}
    report["tolerance"] = tolerance
    report["passed"] = not bad
    if bad:
        raise ModelError(f"exported model {onnx_path} does not reproduce PyTorch: {bad} (tolerance {tolerance} "
                         f"relative to max(1, |value|)); do not deploy it")
    return report


def finetune(config: FinetuneConfig | dict) -> dict:
    """Run the recipe; returns a summary (paths, metrics, export check). See the module docstring."""
    cfg = config if isinstance(config, FinetuneConfig) else FinetuneConfig.from_dict(config)
    if int(cfg.ensemble) == 1 and not cfg.resolved_flip_average:
        result = _finetune_one(cfg)
        result.pop("check_image")
        return result
    return _finetune_combined(cfg)


def _finetune_combined(cfg: FinetuneConfig) -> dict:
    """``cfg.ensemble`` members from consecutive seeds (each flip-averaged if ``cfg.resolved_flip_average``),
    exported as one GAP network."""
    from .export import export_onnx
    from .nets import FlipAverage, GapEnsemble

    t_start = time.time()
    members = []
    for i in range(int(cfg.ensemble)):
        log.info("ensemble member %d/%d (seed %d)", i + 1, cfg.ensemble, cfg.seed + i)
        members.append(_finetune_one(dataclasses.replace(cfg, seed=cfg.seed + i, ensemble=1), export=False))
    metas = [r["meta"] for r in members]
    first = metas[0]
    for m in metas[1:]:
        same = (m.classes, m.input_width, m.input_height, m.mean, m.std) == \
            (first.classes, first.input_width, first.input_height, first.mean, first.std)
        if not same:
            raise ModelError("ensemble: members differ in classes, input size or normalisation; "
                             "they must share one backbone, input size and pretrained weights")
    nets = [FlipAverage(r["model"]) if cfg.resolved_flip_average else r["model"] for r in members]
    model = (GapEnsemble(nets) if len(nets) > 1 else nets[0]).eval()
    seeds = [cfg.seed + i for i in range(int(cfg.ensemble))]
    # The recipe's own record (a multiple-instance model's trained scales and base input: what
    # `streamcam calibrate` sweeps) is each member's alike, so the combined model carries it too; a
    # lone flip-averaged member's accuracies are the model's own.
    first_metrics = members[0]["metrics"]
    shared = dict(first_metrics) if len(members) == 1 else \
        {k: first_metrics[k] for k in ("recipe", "mil", "mil_settings") if k in first_metrics}
    metrics = {**shared, "members": [r["metrics"] for r in members], "seeds": seeds,
               "train_seconds": round(sum(r["metrics"]["train_seconds"] for r in members), 1)}
    provenance = {**first.provenance, "ensemble": {"members": len(members), "seeds": seeds,
                                                   "member_metrics": metrics["members"]},
                  "flip_average": cfg.resolved_flip_average,
                  "recipe": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()},
                  "history": [r["history"] for r in members], "metrics": metrics, "seed": cfg.seed}
    meta = dataclasses.replace(first, provenance=provenance)
    out = export_onnx(model, cfg.out, meta)
    check = verify_export(model, str(out), members[0]["check_image"], threads=int(cfg.threads),
                          tolerance=cfg.check_tolerance)
    if cfg.progress:
        sys.stderr.write(f"wrote {out}: {len(members)} member(s) (seeds {seeds}"
                         f"{', flip-averaged' if cfg.resolved_flip_average else ''}), ONNX check max abs diff "
                         f"logits {check['logits_max_abs_diff']:.2e} CAM {check['cam_max_abs_diff']:.2e}\n")
    return {"out": str(out), "backbone": cfg.backbone, "weights": members[0]["weights"],
            "classes": members[0]["classes"], "data": members[0]["data"], "metrics": metrics,
            "history": [r["history"] for r in members], "export_check": check,
            "total_seconds": round(time.time() - t_start, 1), "model": model}


def _finetune_one(cfg: FinetuneConfig, export: bool = True) -> dict:
    """One network through the recipe (the body of :func:`finetune`).

    ``export=False``: a member of a combined network; it is not written, and the result carries its
    metadata instead (the combined network is exported and checked once)."""
    import torch

    from .backbones import build_backbone, pretrained_info
    from .nets import inner_logits, optimizer_step

    t_start = time.time()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.set_num_threads(int(cfg.threads))
    # The full-frame recipe keeps the camera's resolution (people are a few cells); others shrink big files.
    data = load_data(cfg.data, cfg.classes or None, **({"step": cfg.video_step} if cfg.video_step else {}),
                     **({"max_side": 1280} if cfg.resolved_recipe == "mil" else {}))
    classes = data.classes
    unknown = set(cfg.positive_classes) - set(classes)
    if unknown:
        raise ConfigError(f"positive_classes: {sorted(unknown)} are not among the data's classes {list(classes)}")
    tr_idx, va_idx = stratified_split(data.labels, cfg.val_fraction, cfg.seed)
    train, val = data.subset(tr_idx), data.subset(va_idx)
    few_val = len(val) and np.bincount(val.labels, minlength=len(classes)).min() < MIN_VAL_PER_CLASS
    if cfg.resolved_recipe == "mil" and few_val:
        # A handful of frames per class is the whole lesson; with no epochs to choose there is nothing
        # a 4-frame split could decide, so every frame teaches (accuracy is then reported on them).
        log.info("full-frame recipe: %d validation frames are too few to decide anything; all %d frames train",
                 len(val), len(data))
        train, val = data, data.subset([])
    if len(val) == 0 and cfg.resolved_recipe != "mil":  # mil has no epochs to stop early
        log.warning("no validation images (val_fraction %s, %d images): early stopping uses the training loss",
                    cfg.val_fraction, len(data))
    grey = data.is_grey
    pretrained = cfg.weights is not None
    info = pretrained_info(cfg.weights)
    if info and info.get("backbone") not in (None, cfg.backbone):
        raise ConfigError(f"weights {cfg.weights} hold a {info['backbone']} trunk, but backbone is {cfg.backbone!r}")
    # A pretrained trunk fixes its input channels (the IR trunk is grey: colour frames are converted
    # to grey for it, as the live preprocessing does); otherwise tiny_gap follows the data.
    in_ch = (len(info["mean"]) if "mean" in info else (1 if grey else 3)) if cfg.backbone == "tiny_gap" else None
    net_kwargs = dict(cfg.net) or {k: (tuple(v) if isinstance(v, list) else v) for k, v in info.get("net", {}).items()}
    model = build_backbone(cfg.backbone, len(classes), cfg.weights, in_channels=in_ch, **net_kwargs)
    spec = model.spec
    recipe = cfg.resolved_recipe
    if recipe == "mil" and cfg.input_size is None:
        # Fully convolutional: run at the camera's own resolution (x image_scale), so a person keeps
        # the cells it has in the live frame; multiples of the stride keep the map aligned.
        fh, fw = data.images[0].shape[:2]
        iw, ih = (max(spec.stride * 2, int(round(v * cfg.image_scale / spec.stride)) * spec.stride) for v in (fw, fh))
    else:
        iw, ih = cfg.input_size or tuple(info.get("input_size", ())) or (spec.input_width, spec.input_height)
    if "mean" in info and len(info["mean"]) == spec.input_channels:
        mean, std = tuple(info["mean"]), tuple(info["std"])  # the pretrained trunk's own normalisation
    elif spec.input_channels == 1:
        # Measured on all the data, not the split: ensemble members (other seeds, other splits) must
        # normalise alike to be averaged into one network.
        m, s = _grey_stats(data.images)
        mean, std = (m,), (s,)
    else:
        mean, std = spec.mean, spec.std
    k = model.classifier.in_features
    meta = ModelMetadata(
        classes=classes, input_width=int(iw), input_height=int(ih), input_channels=spec.input_channels,
        color_order=spec.color_order, mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std),
        cam_weights=np.zeros((len(classes), k), np.float32), cam_bias=np.zeros(len(classes), np.float32),
        cam_threshold=cfg.cam_threshold, positive_classes=tuple(cfg.positive_classes),
    )
    if recipe == "mil":
        from .mil import split_classes

        pos_index, _ = split_classes(classes, cfg.positive_classes)
        meta = dataclasses.replace(meta, presence="peak", positive_classes=(classes[pos_index],))
        return _finish(cfg, model, meta, data, train, val, t_start, *_train_mil(cfg, model, meta, train, classes),
                       export=export)
    aug = Augment((int(iw), int(ih)), scale=tuple(cfg.augment_scale), flip=cfg.flip, brightness=cfg.brightness,
                  contrast=cfg.contrast)
    windows, cells, wmeta = None, 0, None
    positive = {classes.index(c) for c in (cfg.positive_classes or classes)}
    if cfg.window is not None:
        if cfg.context % spec.stride:
            raise ConfigError(f"context: expected a multiple of {cfg.backbone}'s stride {spec.stride}, got {cfg.context}")
        windows = WindowSampler(tuple(int(v) for v in cfg.window), int(cfg.context), float(cfg.image_scale),
                                int(cfg.window_jitter), cfg.flip, cfg.brightness, cfg.contrast)
        cells, wmeta = cfg.context // spec.stride, _window_meta(meta, windows)
    rng = np.random.default_rng(cfg.seed + 1)
    bs = int(cfg.batch_size)
    steps = max(1, math.ceil(cfg.samples_per_epoch / bs))
    lossf = torch.nn.CrossEntropyLoss()
    phases = []
    if pretrained:
        phases.append(("head", False, cfg.epochs, cfg.lr or 1e-3))
        if cfg.unfreeze:
            phases.append(("unfrozen", True, cfg.unfreeze_epochs, cfg.lr_unfrozen))
    else:
        if cfg.unfreeze:
            log.info("weights: none: the whole net trains from the start; --unfreeze has nothing to add")
        phases.append(("all (random init)", True, cfg.epochs, cfg.lr or 3e-3))
    history: list[dict] = []
    best = {"val_loss": math.inf, "state": copy.deepcopy(model.state_dict()), "epoch": 0}
    deadline = t_start + 60 * cfg.max_minutes if cfg.max_minutes else math.inf
    stopped = ""
    epoch = 0
    swa: dict = {"sum": None, "n": 0}
    per_class_val = np.bincount(val.labels, minlength=len(classes)) if len(val) else np.zeros(len(classes), int)
    early_stop = int(per_class_val.min()) >= MIN_VAL_PER_CLASS
    if len(val) and not early_stop:
        log.info("validation split has %s images per class (< %d): too few to decide early stopping or the best "
                 "epoch; every epoch runs and the last weights are kept", per_class_val.tolist(), MIN_VAL_PER_CLASS)
    for k_phase, (phase, body_trainable, n_epochs, lr) in enumerate(phases):
        last_phase = k_phase == len(phases) - 1
        for p in model.body.parameters():
            p.requires_grad_(body_trainable)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=float(lr), weight_decay=float(cfg.weight_decay))
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, n_epochs * steps))
        if phase == "unfrozen":
            model.load_state_dict(best["state"])  # continue from the best head
        bad_epochs = 0
        for k_epoch in range(int(n_epochs)):
            epoch += 1
            _set_train_mode(model, body_trainable, freeze_bn=pretrained)
            bar = _Progress(steps, f"{phase} epoch {epoch}", cfg.progress)
            tl, ta = [], []
            for _ in range(steps):
                idx = rng.choice(len(train), size=bs, replace=len(train) < bs)
                y = torch.from_numpy(train.labels[idx])
                if windows is not None:
                    x = _batch([windows(train.images[i], int(train.labels[i]) in positive, rng) for i in idx], wmeta)
                    logits = inner_logits(model, x, cells)
                else:
                    x = _batch([aug(train.images[i], rng) for i in idx], meta)
                    logits, _ = model(x)
                step_loss, step_acc = optimizer_step(opt, sched, lossf(logits, y), logits, y)
                tl.append(step_loss)
                ta.append(step_acc)
                bar.update(loss=float(np.mean(tl)), acc=float(np.mean(ta)))
            vl, va = _evaluate(model, val, meta, (int(iw), int(ih)), bs, windows, positive, cells)
            monitor = vl if early_stop else (float(np.mean(tl)) if not len(val) else -float(epoch))
            history.append({"epoch": epoch, "phase": phase, "train_loss": float(np.mean(tl)),
                            "train_acc": float(np.mean(ta)), "val_loss": vl, "val_acc": va})
            bar.close(f"{phase} epoch {epoch}: train loss {np.mean(tl):.4f} acc {np.mean(ta):.3f} | "
                      f"val loss {vl:.4f} acc {va:.3f}")
            if last_phase and cfg.average_epochs and k_epoch >= int(n_epochs) - cfg.average_epochs:
                _accumulate(swa, model.state_dict())
            if monitor < best["val_loss"] - 1e-4:
                best = {"val_loss": monitor, "state": copy.deepcopy(model.state_dict()), "epoch": epoch}
                bad_epochs = 0
            else:
                bad_epochs += 1
                if bad_epochs >= cfg.patience:
                    stopped = f"early stop in phase {phase} after epoch {epoch} (patience {cfg.patience})"
                    break
            if time.time() > deadline:
                stopped = f"time limit {cfg.max_minutes} min reached after epoch {epoch}"
                break
        if stopped.startswith("time"):
            break
    model.load_state_dict(_average(swa) if swa["n"] else best["state"])
    model.eval()
    val_loss, val_acc = _evaluate(model, val, meta, (int(iw), int(ih)), bs, windows, positive, cells)
    train_loss, train_acc = _evaluate(model, train, meta, (int(iw), int(ih)), bs, windows, positive, cells)
    metrics = {"val_loss": val_loss, "val_accuracy": val_acc, "train_loss": train_loss, "train_accuracy": train_acc,
               "best_epoch": best["epoch"], "averaged_epochs": swa["n"], "epochs_run": epoch,
               "stopped": stopped or "all epochs"}
    return _finish(cfg, model, meta, data, train, val, t_start, history, metrics, export=export)


def _train_mil(cfg: FinetuneConfig, model, meta: ModelMetadata, train: LabelledImages,
               classes: Sequence[str]) -> tuple[list, dict]:
    """The full-frame recipe: a multiple-instance head on the frozen trunk (:mod:`streamcam.training.mil`)."""
    from .mil import MilSettings, fit_mil_head, split_classes

    pos, _ = split_classes(classes, cfg.positive_classes)
    settings = MilSettings(pool_r=float(cfg.mil_pool_r), views=int(cfg.mil_views), steps=int(cfg.mil_steps),
                           weight_decay=float(cfg.mil_weight_decay))
    if cfg.progress:
        sys.stderr.write(f"full-frame recipe: frozen {cfg.backbone} trunk at {meta.input_width}x{meta.input_height}, "
                         f"multiple-instance head on {len(train)} frames x {settings.views} views\n")
    report = fit_mil_head(model, train.images, train.labels, pos, meta, settings, cfg.seed)
    metrics = {"recipe": "mil", "mil": {**{k: v for k, v in report.items() if k != "history"},
                                        "base_input": [meta.input_width, meta.input_height]},
               "mil_settings": dataclasses.asdict(settings)}
    return report["history"], metrics


def _presence_accuracy(model, data: LabelledImages, meta: ModelMetadata) -> float:
    """Frames whose class at the map's peak cell (``presence: peak``) is their label."""
    import torch

    if len(data) == 0:
        return float("nan")
    pos = meta.class_index(meta.positive_classes[0] if meta.positive_classes else meta.classes[-1])
    model.eval()
    with torch.no_grad():
        correct = 0
        for im, y in zip(data.images, data.labels):
            _, f = model(_batch([im], meta))
            cams = torch.einsum("ck,nkhw->nchw", model.classifier.weight, f)[0].flatten(1)
            # as the Detector reads it: at the cell where the positive class leads the others most
            others = torch.cat([cams[:pos], cams[pos + 1:]]).amax(0)
            peak = int(torch.argmax(cams[pos] - others))
            correct += int(int(cams[:, peak].argmax()) == int(y))
    return correct / len(data)


def _finish(cfg: FinetuneConfig, model, meta: ModelMetadata, data: LabelledImages, train: LabelledImages,
            val: LabelledImages, t_start: float, history: list, metrics: dict, export: bool = True) -> dict:
    """Provenance, export and the ONNX Runtime check of a trained network (every recipe ends here)."""
    from .export import export_onnx

    model.eval()
    if meta.presence == "peak":
        metrics = {**metrics, "val_accuracy": _presence_accuracy(model, val, meta),
                   "train_accuracy": _presence_accuracy(model, train, meta)}
    metrics["train_seconds"] = round(time.time() - t_start, 1)
    provenance = {
        "trainer": "streamcam.training.finetune", "backbone": cfg.backbone,
        "weights": cfg.weights if cfg.weights is not None else "none (random init)",
        "data": {**data.summary(), "train": len(train), "val": len(val)},
        "recipe": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()},
        "epochs": metrics.get("epochs_run", 0), "history": history, "metrics": metrics, "seed": cfg.seed,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    meta = dataclasses.replace(meta, provenance=provenance)
    check_image = (val if len(val) else train).images[0]
    classes = list(data.classes)
    if not export:
        return {"meta": meta, "model": model, "check_image": check_image, "metrics": metrics, "history": history,
                "weights": provenance["weights"], "classes": classes, "data": provenance["data"]}
    out = export_onnx(model, cfg.out, meta)
    check = verify_export(model, str(out), check_image, threads=int(cfg.threads), tolerance=cfg.check_tolerance)
    result = {"out": str(out), "backbone": cfg.backbone, "weights": provenance["weights"], "classes": classes,
              "data": provenance["data"], "metrics": metrics, "history": history, "export_check": check,
              "total_seconds": round(time.time() - t_start, 1)}
    if cfg.progress:
        sys.stderr.write(f"wrote {out}: val accuracy {metrics['val_accuracy']:.3f}, ONNX check max abs diff logits "
                         f"{check['logits_max_abs_diff']:.2e} CAM {check['cam_max_abs_diff']:.2e}\n")
    result["model"] = model
    result["check_image"] = check_image
    return result


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="streamcam train", description="Fine-tune a GAP network on a few labelled "
                                 "images (root/<class>/*.jpg or a labelled video) and export it to ONNX for streamcam.")
    ap.add_argument("data", nargs="?", help="folder root/<class>/*.jpg|png, or a labelled-video .yaml/.csv")
    ap.add_argument("--config", help="finetune YAML (configs/finetune-example.yaml); flags override its keys")
    ap.add_argument("--backbone", help="mobilenet_v2_s16 (default: full frames, offline ImageNet weights), "
                                       "efficientnet_lite0_s16, mobilenet_v2_s8, resnet18, resnet50, mobilenet_v2, "
                                       "mobilenet_v3_small, tiny_gap")
    ap.add_argument("--recipe", choices=("auto", "mil", "windows", "whole"),
                    help="mil: full frames, a person anywhere (default for mobilenet_v2_s16); windows: --window; "
                         "whole: classification of whole images")
    ap.add_argument("--out", help="ONNX file to write (default model.onnx)")
    ap.add_argument("--weights", help="DEFAULT / a torchvision weights name (needs internet once), a local .pth, "
                                      "or none (random init)")
    ap.add_argument("--epochs", type=int, help="epochs of the head (or whole net without pretrained weights)")
    ap.add_argument("--unfreeze", action="store_true", default=None, help="then train the whole net at --lr-unfrozen")
    ap.add_argument("--unfreeze-epochs", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--lr-unfrozen", type=float)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--samples-per-epoch", type=int)
    ap.add_argument("--val-fraction", type=float)
    ap.add_argument("--patience", type=int)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--threads", type=int)
    ap.add_argument("--input-size", help="WxH network input, e.g. 224x224")
    ap.add_argument("--positive-classes", help="comma-separated classes whose CAM gives boxes")
    ap.add_argument("--window", help="WxH input px a label speaks for: train on windows at the live scale "
                                     "(positive images centred on their object, negative images anywhere)")
    ap.add_argument("--context", type=int, help="margin (input px) around each window, seen but not pooled")
    ap.add_argument("--image-scale", type=float, help="training-image px -> input px for windows, e.g. 0.5")
    ap.add_argument("--max-minutes", type=float)
    ap.add_argument("--ensemble", type=int, help="fine-tune N members (consecutive seeds) and export their average")
    ap.add_argument("--flip-average", action=argparse.BooleanOptionalAction, default=None,
                    help="export each member averaged with itself on the mirrored frame (2x the forward cost; "
                         "default: on for the full-frame mil recipe, off for the others)")
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    ap.add_argument("--json", help="also write the summary JSON here")
    return ap


def config_from_args(args: argparse.Namespace) -> FinetuneConfig:
    d: dict[str, Any] = load_config(args.config) if args.config else {}
    if args.data:
        d["data"] = args.data
    for key in ("backbone", "out", "weights", "epochs", "unfreeze", "unfreeze_epochs", "lr", "lr_unfrozen",
                "batch_size", "samples_per_epoch", "val_fraction", "patience", "seed", "threads", "max_minutes",
                "context", "image_scale", "ensemble", "flip_average", "recipe"):
        v = getattr(args, key)
        if v is not None:
            d[key] = v
    if args.input_size:
        try:
            w, h = (int(v) for v in args.input_size.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--input-size: expected WxH like 224x224, got {args.input_size!r}") from None
        d["input_size"] = (w, h)
    if args.window:
        try:
            d["window"] = tuple(int(v) for v in args.window.lower().split("x"))
        except ValueError:
            raise ConfigError(f"--window: expected WxH like 96x72, got {args.window!r}") from None
    if args.positive_classes:
        d["positive_classes"] = tuple(c.strip() for c in args.positive_classes.split(",") if c.strip())
    if args.quiet:
        d["progress"] = False
    return FinetuneConfig.from_dict(d)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = config_from_args(args)
        result = finetune(cfg)
    except (ConfigError, ModelError) as exc:
        print(f"streamcam train: error: {exc}", file=sys.stderr)
        return 2
    result.pop("model", None)
    text = json.dumps(result, indent=1, default=str)
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(text + "\n")
    if cfg.resolved_recipe in ("windows", "mil"):  # trained to localize: its boxes still need their rule fitted
        print(f"next: streamcam calibrate {cfg.out} --labels VAL.json  (box threshold, margins and decision "
              f"bias from a few box-labelled validation frames; docs/training.md)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
