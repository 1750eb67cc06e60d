"""Few-shot localization from full frames: a multiple-instance head on a frozen ImageNet trunk.

The user's pictures are whole camera frames labelled only "person" (somewhere, maybe several
times) or "empty". Each frame is a *bag* of feature-map cells (Maron & Lozano-Pérez, NeurIPS
1998): a positive bag holds at least one positive cell, every cell of a negative bag is
negative. A linear head ``s(x, y) = w . f(x, y) + b`` on the frozen trunk's features is trained so
that

* every cell of an empty frame scores low (per-cell logistic loss, plus the bag's soft maximum),
* the soft maximum of a person frame's cells scores high: log-sum-exp pooling,
  ``(1/r) log mean exp(r s)`` (Pinheiro & Collobert, CVPR 2015; Oquab et al., CVPR 2015 use the
  hard maximum for "is object localization for free?").

The person frames and the empty frames come from the same fixed camera, so what separates a
person frame's best cells from every empty cell is the person, not the scene; a whole-frame
GAP head on the same 20 + 20 frames instead learns whatever differs on average (measured on the
shared real sequences: docs/benchmarks.md).

Export: the head becomes the GAP net's linear layer over the trunk's features plus a constant
channel (:class:`~streamcam.training.backbones.CellBias`), with the feature standardisation folded
in, so the CAM of "person" *is* the cell logit map ``s`` and ``mean(CAM) + b == logit`` holds.
The metadata says ``presence: peak``: a frame's class probabilities are read at the map's peak
cell (the bag's decision), not from the GAP logit that averages one person with a thousand
background cells.

Pure torch/numpy, synchronous; the trunk runs once per training view (features are cached), so
training is seconds after the feature pass.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..errors import ConfigError

log = logging.getLogger(__name__)

NEGATIVE_NAMES = ("empty", "no_person", "none", "background", "negative", "nothing", "no-person")
"""Class names taken to mean "no object here" when ``positive_classes`` is not given."""


@dataclass(frozen=True)
class MilSettings:
    """The multiple-instance head's training knobs (FinetuneConfig carries them)."""

    pool_r: float = 5.0
    """Log-sum-exp sharpness: large approaches the maximum (one cell decides), small the mean."""
    views: int = 2
    """Views per training frame: the frame and ``views - 1`` flipped / brightness-jittered copies."""
    steps: int = 300
    """Full-batch Adam steps on the cached features."""
    lr: float = 1e-2
    weight_decay: float = 1e-3
    """L2 on the head's weights: 20 frames x ~1000 cells, ~100 channels."""
    scales: tuple[float, ...] = (1.0, 0.5)
    """Input scales the head is trained at (each frame is seen at each): how many cells a person
    spans depends on the camera, so the head learns a few, and ``streamcam calibrate`` picks the
    camera's scale from its box-labelled frames."""
    negative_max_weight: float = 1.0
    """Weight of the negative bags' soft maximum next to their per-cell loss: keeps the hottest empty
    cell low, not only the average one."""


def split_classes(classes: Sequence[str], positive: Sequence[str]) -> tuple[int, list[int]]:
    """(positive index, negative indices) of a two-class problem; errors say what to pass."""
    if len(classes) != 2:
        raise ConfigError(f"the full-frame (multiple-instance) recipe needs two classes, an object and its "
                          f"absence (e.g. person/ and empty/), got {list(classes)}")
    if positive:
        if len(positive) != 1:
            raise ConfigError(f"positive_classes: expected one class for the full-frame recipe, got {list(positive)}")
        pos = list(classes).index(positive[0])
    else:
        neg = [i for i, c in enumerate(classes) if c.lower() in NEGATIVE_NAMES]
        if len(neg) != 1:
            raise ConfigError(f"which of {list(classes)} is the object? name the empty class one of "
                              f"{list(NEGATIVE_NAMES[:3])} or pass --positive-classes")
        pos = 1 - neg[0]
    return pos, [1 - pos]


def _views(image: np.ndarray, n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The frame and ``n - 1`` jittered copies (mirror, gain and offset: a camera's AGC and a walker's
    direction change; the geometry stays the camera's)."""
    out = [image]
    for _ in range(max(0, n - 1)):
        x = image.astype(np.float32) * rng.uniform(0.8, 1.2) + rng.uniform(-15, 15)
        x = np.clip(x, 0, 255).astype(np.uint8)
        if rng.random() < 0.5:
            x = np.ascontiguousarray(x[:, ::-1])
        out.append(x)
    return out


def trunk_features(model, images: Sequence[np.ndarray], meta, batch: int = 4):
    """The frozen trunk's features ``[N, K, h, w]`` (without the constant channel) of uint8 frames."""
    import torch

    from .finetune import _batch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), batch):
            out.append(model.features(_batch(images[i:i + batch], meta))[:, :-1])
    return torch.cat(out)


def lse_pool(s, r: float):
    """Log-sum-exp pooling of cell scores ``[N, h, w]`` -> ``[N]``: the mean at r -> 0, the max at r -> inf."""
    import torch

    flat = s.flatten(1)
    return (torch.logsumexp(r * flat, 1) - math.log(flat.shape[1])) / r


def train_head(pos_groups, neg_groups, settings: MilSettings, seed: int = 0):
    """Fit ``s = w . (f - mu) / sd + b`` by the multiple-instance loss on feature groups (one
    ``[N, K, h, w]`` tensor per input scale); returns ``(w, b, history)`` with the standardisation
    folded in (``s = w . f + b``), as float64 numpy."""
    import torch

    torch.manual_seed(seed)
    flat = torch.cat([g.permute(1, 0, 2, 3).flatten(1) for g in list(pos_groups) + list(neg_groups)], 1)
    mu, sd = flat.mean(1), flat.std(1) + 1e-3
    norm = lambda g: (g - mu[None, :, None, None]) / sd[None, :, None, None]  # noqa: E731
    P, N = [norm(g) for g in pos_groups], [norm(g) for g in neg_groups]
    k = mu.shape[0]
    w = torch.zeros(k, requires_grad=True)
    b = torch.full((1,), -3.0, requires_grad=True)  # start from "nothing here": most cells are background
    opt = torch.optim.Adam([w, b], lr=settings.lr)
    sp = torch.nn.functional.softplus
    history = []
    for step in range(int(settings.steps)):
        sP = [torch.einsum("nkhw,k->nhw", g, w) + b for g in P]
        sN = [torch.einsum("nkhw,k->nhw", g, w) + b for g in N]
        loss_pos = torch.stack([sp(-lse_pool(s, settings.pool_r)).mean() for s in sP]).mean()
        loss_neg = torch.stack([sp(s).mean() + settings.negative_max_weight * sp(lse_pool(s, settings.pool_r)).mean()
                                for s in sN]).mean()
        loss = loss_pos + loss_neg + settings.weight_decay * (w ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == settings.steps - 1:
            with torch.no_grad():
                history.append({"step": step, "loss": float(loss),
                                "positive_bag": float(torch.cat([lse_pool(s, settings.pool_r) for s in sP]).mean()),
                                "negative_max": float(torch.cat([s.amax((1, 2)) for s in sN]).mean())})
    with torch.no_grad():
        w_fold = (w / sd).double()
        b_fold = float(b) - float((w * mu / sd).sum())
    return w_fold.numpy(), b_fold, history


def fit_mil_head(model, images: Sequence[np.ndarray], labels: np.ndarray, pos: int, meta, settings: MilSettings,
                 seed: int = 0) -> dict:
    """Train the head of ``model`` (a GapNet with a CellBias trunk) in place; returns metrics and history.

    The positive class's weights are the cell logit ``w . f + b`` (bias on the constant channel), the
    negative class's are zero, so the softmax over classes at a cell is ``sigmoid(s)`` and the CAM of the
    positive class is ``s`` itself."""
    import torch

    rng = np.random.default_rng(seed + 7)
    n_pos = int((np.asarray(labels) == pos).sum())
    n_neg = len(labels) - n_pos
    # A few empty plates against 20 person frames: more jittered views of each plate balance the bags.
    neg_views = max(settings.views, math.ceil(n_pos * settings.views / max(n_neg, 1)))
    views_pos, views_neg = [], []
    for im, y in zip(images, labels):
        if int(y) == pos:
            views_pos.extend(_views(im, settings.views, rng))
        else:
            views_neg.extend(_views(im, neg_views, rng))
    if not views_pos or not views_neg:
        raise ConfigError("the full-frame recipe needs frames of both classes (a camera that never shows an empty "
                          "scene: `streamcam plate` makes an empty plate from its footage)")
    log.info("multiple-instance head: features of %d person and %d empty views", len(views_pos), len(views_neg))
    import dataclasses

    fp, fn = [], []
    for scale in settings.scales:
        m = dataclasses.replace(meta, input_width=_mult(meta.input_width * scale), input_height=_mult(meta.input_height * scale))
        fp.append(trunk_features(model, views_pos, m))
        fn.append(trunk_features(model, views_neg, m))
    w, b, history = train_head(fp, fn, settings, seed)
    k = fp[0].shape[1]
    weight = torch.zeros(model.classifier.out_features, k + 1)
    weight[pos, :k] = torch.from_numpy(w).float()
    weight[pos, k] = b
    with torch.no_grad():
        model.classifier.weight.copy_(weight)
        model.classifier.bias.zero_()
    return {"history": history, "person_views": len(views_pos), "empty_views": len(views_neg),
            "feature_maps": [[int(f.shape[3]), int(f.shape[2])] for f in fp], "scales": list(settings.scales)}


def _mult(v: float, stride: int = 16) -> int:
    return max(2 * stride, int(round(v / stride)) * stride)


__all__ = ["MilSettings", "NEGATIVE_NAMES", "fit_mil_head", "lse_pool", "split_classes", "train_head",
           "trunk_features"]
