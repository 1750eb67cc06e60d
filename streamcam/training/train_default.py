"""Train the default person / no-person GAP model on the synthetic IR scene and export it.

    python -m streamcam.training.train_default configs/train-default.yaml engines/person-ir.onnx \
        [--quality runs/train-default-quality.json]

Image-level labels only (see :mod:`streamcam.training.synthetic_data`). After training
the model is exported, the CAM box threshold is tuned on validation scenes (seed
``val.seed``), stored in the metadata (``cam_threshold``), and the final numbers are
measured on test scenes (seed ``test.seed``), never seen in training or tuning.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import time
from pathlib import Path

import numpy as np
import yaml

from ..processor.model_meta import ModelMetadata

CLASSES = ("no_person", "person")


def load_config(path: str) -> dict:
    with open(path) as fh:
        cfg = yaml.safe_load(fh)
    for key in ("seed", "scene", "train_scenes", "input", "crop", "net", "epochs", "steps_per_epoch", "lr"):
        if key not in cfg:
            raise KeyError(f"{path}: missing key {key!r}")
    return cfg


def _to_tensor(imgs: np.ndarray, mean: float, std: float, rng: np.random.Generator | None = None):
    import torch

    x = imgs.astype(np.float32) / 255.0
    if rng is not None:  # photometric jitter: AGC differs between scenes and frames
        n = len(x)
        x = x * rng.uniform(0.85, 1.15, (n, 1, 1)).astype(np.float32) + rng.uniform(-0.06, 0.06, (n, 1, 1)).astype(
            np.float32)
    x = (x - mean) / std
    return torch.from_numpy(np.ascontiguousarray(x[:, None]))


def train_default(config_path: str, out_path: str, quality_path: str | None = None, verbose: bool = True) -> dict:
    """Train, export to ``out_path``, tune the CAM threshold, evaluate; returns the metrics."""
    import torch

    from ..evaluation.localization import evaluate_synthetic, sweep_thresholds, write_quality
    from .export import export_onnx
    from .nets import build_net, inner_logits, optimizer_step
    from .synthetic_data import CropSampler, FramePool, render_pool

    t_start = time.time()
    cfg = load_config(config_path)
    log = print if verbose else (lambda *a, **k: None)
    seed = int(cfg["seed"])
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.set_num_threads(int(cfg.get("threads", 2)))
    iw, ih = int(cfg["input"]["width"]), int(cfg["input"]["height"])
    ts = cfg["train_scenes"]
    seeds = range(int(ts["first_seed"]), int(ts["first_seed"]) + int(ts["count"]))
    pool = render_pool(seeds, int(cfg.get("frames_per_scene", 60)), int(cfg.get("negative_frames_per_scene", 20)),
                       (iw, ih), cfg["scene"], seed)
    # More scene groups (e.g. the lwir style at other frame sizes), pooled with the first: the
    # sampler draws crops from all frames alike, so each group weighs by its frame count.
    for k, extra in enumerate(cfg.get("extra_scenes", []) or []):
        for key in ("scene", "first_seed", "count"):
            if key not in extra:
                raise KeyError(f"{config_path}: extra_scenes[{k}]: missing key {key!r}")
        more = render_pool(range(int(extra["first_seed"]), int(extra["first_seed"]) + int(extra["count"])),
                           int(extra.get("frames_per_scene", cfg.get("frames_per_scene", 60))),
                           int(extra.get("negative_frames_per_scene", cfg.get("negative_frames_per_scene", 20))),
                           (iw, ih), {**cfg["scene"], **extra["scene"]}, seed + 1 + k)
        pool = FramePool(np.concatenate([pool.images, more.images]), pool.boxes + more.boxes)
    mean = float(pool.images.mean() / 255.0)
    std = float(pool.images.std() / 255.0)
    log(f"pool: {len(pool)} frames ({int(pool.has_person.sum())} with people), mean {mean:.3f} std {std:.3f}, "
        f"{time.time() - t_start:.0f}s")
    sampler = CropSampler(pool, (int(cfg["crop"]["width"]), int(cfg["crop"]["height"])), seed=seed,
                          context=int(cfg.get("context", 0)))
    rng = np.random.default_rng(seed + 1)
    net_cfg = dict(cfg["net"])
    if "dilations" in net_cfg:
        net_cfg["dilations"] = tuple(net_cfg["dilations"])
    model = build_net(net_cfg.pop("name"), in_channels=1, num_classes=len(CLASSES), **net_cfg)
    epochs, steps = int(cfg["epochs"]), int(cfg["steps_per_epoch"])
    ff_steps = int(cfg.get("full_frame_steps", 0))
    opt = torch.optim.AdamW(model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg.get("weight_decay", 0)))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=float(cfg["lr"]), total_steps=epochs * steps + ff_steps,
                                                pct_start=0.15)
    bs = int(cfg.get("batch_size", 64))
    lossf = torch.nn.CrossEntropyLoss()

    ctx = int(cfg.get("context", 0))  # margin (input px) seen but not pooled; see CropSampler
    cell = ctx // 4

    def step(x, y, context: bool = False):
        logits = inner_logits(model, x, cell if context else 0)
        return optimizer_step(opt, sched, lossf(logits, y), logits, y)

    model.train()
    for ep in range(epochs):
        t0, losses, accs = time.time(), [], []
        for _ in range(steps):
            imgs, y = sampler.sample(bs)
            loss, acc = step(_to_tensor(imgs, mean, std, rng), torch.from_numpy(y), context=True)
            losses.append(loss)
            accs.append(acc)
        log(f"epoch {ep + 1}/{epochs}: loss {np.mean(losses):.4f} acc {np.mean(accs):.4f} ({time.time() - t0:.0f}s)")
        torch.save(model.state_dict(), str(out_path) + ".pt")  # a checkpoint per epoch
    if ff_steps:
        t0, losses, accs = time.time(), [], []
        for _ in range(ff_steps):
            imgs, y = sampler.full_frames(16)
            loss, acc = step(_to_tensor(imgs, mean, std, rng), torch.from_numpy(y))
            losses.append(loss)
            accs.append(acc)
        log(f"full frames: loss {np.mean(losses):.4f} acc {np.mean(accs):.4f} ({time.time() - t0:.0f}s)")
    train_s = time.time() - t_start

    k = model.classifier.in_features
    meta = ModelMetadata(
        classes=CLASSES, input_width=iw, input_height=ih, input_channels=1, color_order="GRAY",
        mean=(mean,), std=(std,), cam_weights=np.zeros((len(CLASSES), k), np.float32),
        cam_bias=np.zeros(len(CLASSES), np.float32), resize="stretch", positive_classes=("person",),
        provenance={"recipe": Path(config_path).as_posix(), "config": cfg, "trainer": "streamcam.training.train_default",
                    "data": "SyntheticIRScene, image-level labels (person / no_person) only",
                    "date": datetime.date.today().isoformat()},
    )
    export_onnx(model, out_path, meta)
    val = cfg.get("val", {})
    thresholds = [float(t) for t in cfg.get("cam_thresholds", [0.2, 0.3, 0.4, 0.5, 0.6])]
    sweep = {}
    for rule in ("component", "global"):
        sweep[rule] = sweep_thresholds(out_path, thresholds, frames=int(val.get("frames", 90)),
                                       seed=int(val.get("seed", 5000)), scenes=int(val.get("scenes", 3)),
                                       relative=rule, scene_kwargs=cfg["scene"])
        log(f"val sweep ({rule}): " + ", ".join(f"{t:.2f}:{a:.3f}" for t, a in sweep[rule].items()))
    best_t = max(sweep["component"], key=lambda t: (sweep["component"][t], -abs(t - 0.5)))
    test = cfg.get("test", {})
    metrics = {"train_seconds": round(train_s, 1), "val_sweep": {r: {str(t): a for t, a in s.items()}
                                                                 for r, s in sweep.items()},
               "val_best_threshold": best_t, "val_best_accuracy": sweep["component"][best_t]}
    meta = dataclasses.replace(meta, cam_threshold=best_t, provenance={**meta.provenance, "metrics": metrics})
    export_onnx(model, out_path, meta)
    test_metrics = evaluate_synthetic(out_path, frames=int(test.get("frames", 60)), seed=int(test.get("seed", 9000)),
                                      scenes=int(test.get("scenes", 3)), scene_kwargs=cfg["scene"])
    metrics["test"] = test_metrics
    log(f"test: {json.dumps(test_metrics)}")
    meta = dataclasses.replace(meta, provenance={**meta.provenance, "metrics": metrics})
    export_onnx(model, out_path, meta)
    if quality_path:
        write_quality(quality_path, out_path, test_metrics,
                      {k: v for k, v in metrics.items() if k != "test"})
    metrics["total_seconds"] = round(time.time() - t_start, 1)
    return metrics


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", help="recipe YAML, e.g. configs/train-default.yaml")
    ap.add_argument("out", help="ONNX file to write, e.g. engines/person-ir.onnx")
    ap.add_argument("--quality", help="also write the test figures and a regression floor here (the checked-in "
                                      "record is docs/quality/eval-default.json, from `streamcam eval`)")
    args = ap.parse_args(argv)
    m = train_default(args.config, args.out, args.quality)
    print(json.dumps({k: v for k, v in m.items() if k != "val_sweep"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
