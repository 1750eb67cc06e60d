"""Pretrain a thermal backbone on problem P (IR objects *other than people*) for few-shot fine-tuning.

    python -m streamcam.training.pretrain configs/pretrain-ir-objects.yaml engines/ir-objects-tiny_gap.pt

The seed of streamcam: take a network trained for a problem P, replace its head, and fine-tune
it on a few images of problem Q with image-level labels. torchvision's ImageNet weights are the
usual P, but they cannot be downloaded here and they are trained on colour photographs; no
public thermal backbone ships with a Python package. So streamcam pretrains its own P on the
synthetic IR scene: **which object is in this crop — background, car, lamp or animal**. The
scenes are rendered with ``people=0``: the backbone never sees a person, so a person model
fine-tuned from it (:mod:`tools.finetune_synthetic`) learns "person" from its few images alone.

The recipe is the default model's (:mod:`.train_default`): crops with an unpooled context margin
and a small receptive field, so that the features stay tight around objects; only the labels
differ (one of four kinds per crop, decided by which object has most of its area inside).

The output is a checkpoint ``{"state_dict": ..., "streamcam": {...}}`` whose ``streamcam`` entry
records the backbone, its constructor arguments, input size and the input normalisation it was
trained with, so that ``streamcam train --weights FILE`` rebuilds the same trunk and feeds it the
same pixels (:func:`streamcam.training.backbones.pretrained_info`).
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

KINDS = ("background", "car", "lamp", "animal")


@dataclass
class ObjectPool:
    images: np.ndarray
    """uint8 [N, h, w] frames at model input size."""
    boxes: list[np.ndarray]
    """Per frame: float32 [P, 4] object boxes in model-input pixels."""
    kinds: list[np.ndarray]
    """Per frame: int64 [P] index into :data:`KINDS` of each box."""


def render_object_pool(seeds, frames_per_scene: int, input_size: tuple[int, int], scene_kwargs: dict, seed: int,
                       max_time_s: float = 600.0) -> ObjectPool:
    """Frames at random times of person-free scenes ``seeds``, with every object's box and kind."""
    from ..datasets.synthetic import SyntheticIRScene

    rng = np.random.default_rng(seed)
    iw, ih = input_size
    images, boxes, kinds = [], [], []
    for s in seeds:
        scene = SyntheticIRScene(**{**scene_kwargs, "seed": int(s), "people": 0})
        sx, sy = iw / scene.width, ih / scene.height
        for i in rng.integers(0, int(max_time_s * scene.fps), size=frames_per_scene):
            fr = scene.frame(int(i))
            interp = cv2.INTER_AREA if scene.width > iw else cv2.INTER_LINEAR
            images.append(cv2.resize(fr.image, (iw, ih), interpolation=interp))
            objs = [o for o in fr.objects if o.label in KINDS]
            b = np.array([o.box for o in objs], np.float32).reshape(-1, 4)
            boxes.append(b * np.array([sx, sy, sx, sy], np.float32))
            kinds.append(np.array([KINDS.index(o.label) for o in objs], np.int64))
    return ObjectPool(np.stack(images), boxes, kinds)


def _inside_frac(boxes: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    ix = np.clip(np.minimum(boxes[:, 2], x1) - np.maximum(boxes[:, 0], x0), 0, None)
    iy = np.clip(np.minimum(boxes[:, 3], y1) - np.maximum(boxes[:, 1], y0), 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return ix * iy / np.maximum(area, 1e-6)


class ObjectCropSampler:
    """Class-balanced crops (uint8 ``[B, ch + 2m, cw + 2m]``) labelled with the kind they contain.

    A crop is of kind k when an object of kind k has at least ``pos_frac`` of its area inside
    it and no object of another kind more than ``neg_frac``; ``background`` when no object has
    more than ``neg_frac`` inside. ``context`` as in :class:`.synthetic_data.CropSampler`.
    """

    def __init__(self, pool: ObjectPool, crop: tuple[int, int], context: int, seed: int, pos_frac: float = 0.6,
                 neg_frac: float = 0.05) -> None:
        self.pool, self.crop, self.context = pool, crop, int(context)
        self.pos_frac, self.neg_frac = pos_frac, neg_frac
        self.rng = np.random.default_rng(seed)
        # (frame, object) pairs per kind, to aim positive crops at an object
        self.instances = {k: [(f, j) for f, ks in enumerate(pool.kinds) for j in np.nonzero(ks == k)[0]]
                          for k in range(1, len(KINDS))}
        self.present = [k for k in range(1, len(KINDS)) if self.instances[k]]

    def _window(self, frame: int, x0: int, y0: int) -> np.ndarray:
        c = self.context
        cw, ch = self.crop
        return self.pool.images[frame, y0 - c:y0 + ch + c, x0 - c:x0 + cw + c]

    def _label_of(self, frame: int, x0: int, y0: int) -> int | None:
        cw, ch = self.crop
        b, ks = self.pool.boxes[frame], self.pool.kinds[frame]
        if len(b) == 0:
            return 0
        frac = _inside_frac(b, x0, y0, x0 + cw, y0 + ch)
        pos = set(ks[frac >= self.pos_frac].tolist())
        mid = (frac > self.neg_frac) & (frac < self.pos_frac)
        if not pos and not mid.any():
            return 0
        if len(pos) == 1 and not (mid & (ks != next(iter(pos)))).any():
            return int(next(iter(pos)))
        return None  # ambiguous: two kinds, or an object cut in half

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        cw, ch = self.crop
        c = self.context
        _, h, w = self.pool.images.shape
        choices = [0, *self.present]
        out = np.empty((batch, ch + 2 * c, cw + 2 * c), np.uint8)
        labels = np.array([choices[i] for i in self.rng.integers(0, len(choices), batch)], np.int64)
        for b, want in enumerate(labels):
            for _ in range(10000):
                if want == 0:
                    f = int(self.rng.integers(0, len(self.pool.images)))
                    x0 = int(self.rng.integers(c, w - cw - c + 1))
                    y0 = int(self.rng.integers(c, h - ch - c + 1))
                else:
                    f, j = self.instances[int(want)][int(self.rng.integers(0, len(self.instances[int(want)])))]
                    bx0, by0, bx1, by1 = self.pool.boxes[f][j]
                    # a window whose inner crop can hold the object's centre, then clipped to the frame
                    lo_x, hi_x = sorted((bx1 - cw, bx0 + 1))
                    lo_y, hi_y = sorted((by1 - ch, by0 + 1))
                    x0 = int(np.clip(self.rng.uniform(lo_x, hi_x), c, w - cw - c))
                    y0 = int(np.clip(self.rng.uniform(lo_y, hi_y), c, h - ch - c))
                if self._label_of(f, x0, y0) == want:
                    break
            else:
                raise RuntimeError(f"ObjectCropSampler: no crop of kind {KINDS[want]!r} in 10000 tries "
                                   f"(crop {self.crop}): are the objects larger than the crop?")
            img = self._window(f, x0, y0)
            out[b] = img[:, ::-1] if self.rng.uniform() < 0.5 else img
        return out, labels


def pretrain(config_path: str, out_path: str, verbose: bool = True) -> dict:
    """Train the P backbone, write the checkpoint to ``out_path``; returns the metrics."""
    import torch

    from .nets import build_net, inner_logits, optimizer_step
    from .train_default import _to_tensor, load_config

    t_start = time.time()
    cfg = load_config(config_path)
    log = print if verbose else (lambda *a, **k: None)
    seed = int(cfg["seed"])
    torch.manual_seed(seed)
    torch.set_num_threads(int(cfg.get("threads", 1)))
    iw, ih = int(cfg["input"]["width"]), int(cfg["input"]["height"])
    ts = cfg["train_scenes"]
    seeds = range(int(ts["first_seed"]), int(ts["first_seed"]) + int(ts["count"]))
    pool = render_object_pool(seeds, int(cfg.get("frames_per_scene", 60)), (iw, ih), cfg["scene"], seed)
    mean, std = float(pool.images.mean() / 255.0), float(pool.images.std() / 255.0)
    counts = {KINDS[k]: int(sum((ks == k).sum() for ks in pool.kinds)) for k in range(1, len(KINDS))}
    log(f"pool: {len(pool.images)} frames, objects {counts}, mean {mean:.3f} std {std:.3f}, "
        f"{time.time() - t_start:.0f}s")
    ctx = int(cfg.get("context", 0))
    sampler = ObjectCropSampler(pool, (int(cfg["crop"]["width"]), int(cfg["crop"]["height"])), ctx, seed)
    net_cfg = dict(cfg["net"])
    name = net_cfg.pop("name")
    if "dilations" in net_cfg:
        net_cfg["dilations"] = tuple(net_cfg["dilations"])
    model = build_net(name, in_channels=1, num_classes=len(KINDS), **net_cfg)
    epochs, steps, bs = int(cfg["epochs"]), int(cfg["steps_per_epoch"]), int(cfg.get("batch_size", 64))
    opt = torch.optim.AdamW(model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg.get("weight_decay", 0)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=float(cfg["lr"]), total_steps=epochs * steps,
                                                pct_start=0.15)
    lossf = torch.nn.CrossEntropyLoss()
    cell = ctx // model.stride
    rng = np.random.default_rng(seed + 1)
    history = []
    model.train()
    for ep in range(epochs):
        t0, losses, accs = time.time(), [], []
        for _ in range(steps):
            imgs, y = sampler.sample(bs)
            x, yt = _to_tensor(imgs, mean, std, rng), torch.from_numpy(y)
            logits = inner_logits(model, x, cell)  # the label is about the inner crop
            step_loss, step_acc = optimizer_step(opt, sched, lossf(logits, yt), logits, yt)
            losses.append(step_loss)
            accs.append(step_acc)
        history.append({"epoch": ep + 1, "loss": float(np.mean(losses)), "acc": float(np.mean(accs))})
        log(f"epoch {ep + 1}/{epochs}: loss {np.mean(losses):.4f} acc {np.mean(accs):.4f} ({time.time() - t0:.0f}s)")
    # held-out crops of other scenes: does the backbone tell the kinds apart?
    model.eval()
    vs = cfg.get("val", {"first_seed": 5000, "count": 3})
    vpool = render_object_pool(range(int(vs["first_seed"]), int(vs["first_seed"]) + int(vs["count"])), 40, (iw, ih),
                               cfg["scene"], seed + 7)
    vsampler = ObjectCropSampler(vpool, sampler.crop, ctx, seed + 8)
    with torch.no_grad():
        imgs, y = vsampler.sample(512)
        val_acc = float((inner_logits(model, _to_tensor(imgs, mean, std), cell).argmax(1).numpy() == y).mean())
    log(f"held-out crop accuracy ({len(KINDS)} kinds): {val_acc:.3f}")
    info = {"backbone": name, "net": {k: (list(v) if isinstance(v, tuple) else v) for k, v in net_cfg.items()},
            "input_size": [iw, ih], "mean": [mean], "std": [std], "classes": list(KINDS),
            "problem": "IR object kind of a crop (background/car/lamp/animal), person-free synthetic scenes",
            "recipe": Path(config_path).as_posix(), "val_crop_accuracy": val_acc,
            "date": datetime.date.today().isoformat()}
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": model.state_dict(), "streamcam": info}, out_path)
    return {"out": str(out_path), "objects": counts, "history": history, "val_crop_accuracy": val_acc,
            "seconds": round(time.time() - t_start, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", help="recipe YAML, e.g. configs/pretrain-ir-objects.yaml")
    ap.add_argument("out", help="checkpoint to write, e.g. engines/ir-objects-tiny_gap.pt")
    a = ap.parse_args(argv)
    print(json.dumps(pretrain(a.config, a.out), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
