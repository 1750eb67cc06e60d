"""Training data from :class:`~streamcam.datasets.synthetic.SyntheticIRScene`: image-level labels only.

A *pool* of frames is rendered once (AGC'd 8-bit frames resized to the model input,
plus, per frame, the person boxes used only to *decide the label* of a crop). Training
samples are random crops of pool frames labelled ``person`` (1) when at least
``pos_frac`` of some person's area lies inside the crop, and ``no_person`` (0) when no
person has more than ``neg_frac`` of its area inside; ambiguous crops are redrawn.
The network only ever sees (crop, 0/1) pairs: no box enters the loss, the CAM's
localization is learnt from image-level supervision alone, as in Zhou et al.

Negatives come both from person-free crops of busy scenes and from the same scenes
rendered with ``people=0`` (same background, confusers and noise pattern), so the
network cannot separate the classes by scene identity.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..datasets.synthetic import SyntheticIRScene


@dataclass
class FramePool:
    images: np.ndarray
    """uint8 [N, h, w] frames at model input size."""
    boxes: list[np.ndarray]
    """Per frame: float32 [P, 4] person boxes in model-input pixels (label decisions only)."""

    def __len__(self) -> int:
        return len(self.images)

    @property
    def has_person(self) -> np.ndarray:
        return np.array([len(b) > 0 for b in self.boxes])


def render_pool(seeds, frames_per_scene: int, negative_frames_per_scene: int, input_size: tuple[int, int],
                scene_kwargs: dict, seed: int, max_time_s: float = 600.0) -> FramePool:
    """Render frames at random times from the scenes ``seeds`` (and their person-free twins)."""
    rng = np.random.default_rng(seed)
    iw, ih = input_size
    images, boxes = [], []
    kwargs = dict(scene_kwargs)
    for s in seeds:
        for people, count in ((kwargs.get("people", 4), frames_per_scene), (0, negative_frames_per_scene)):
            if count <= 0:
                continue
            scene = SyntheticIRScene(**{**kwargs, "seed": int(s), "people": people})
            sx, sy = iw / scene.width, ih / scene.height
            idx = rng.integers(0, int(max_time_s * scene.fps), size=count)
            for i in idx:
                fr = scene.frame(int(i))
                interp = cv2.INTER_AREA if scene.width > iw else cv2.INTER_LINEAR  # as the pipeline resizes
                images.append(cv2.resize(fr.image, (iw, ih), interpolation=interp))
                b = np.array([o.box for o in fr.persons], np.float32).reshape(-1, 4)
                boxes.append(b * np.array([sx, sy, sx, sy], np.float32))
    return FramePool(np.stack(images), boxes)


def _inside_frac(boxes: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    if len(boxes) == 0:
        return np.zeros(0, np.float32)
    ix = np.clip(np.minimum(boxes[:, 2], x1) - np.maximum(boxes[:, 0], x0), 0, None)
    iy = np.clip(np.minimum(boxes[:, 3], y1) - np.maximum(boxes[:, 1], y0), 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return ix * iy / np.maximum(area, 1e-6)


class CropSampler:
    """Balanced batches of labelled crops (uint8 [B, ch + 2m, cw + 2m], int64 [B]) from a :class:`FramePool`.

    ``context`` (m, pixels) adds a margin of surrounding image around each crop: the label
    is about the inner ``crop`` only, and the trainer pools the features of the inner
    region only. A person standing in the margin of a negative crop is then seen by the
    inner cells' receptive fields but must not activate them: that teaches the CAM to
    fire *on* people, not everywhere a person is within reach (the halo a wide
    receptive field otherwise leaves around small objects).
    """

    def __init__(self, pool: FramePool, crop: tuple[int, int], pos_frac: float = 0.6, neg_frac: float = 0.05,
                 seed: int = 0, context: int = 0) -> None:
        self.pool, self.crop, self.context = pool, crop, int(context)
        self.pos_frac, self.neg_frac = pos_frac, neg_frac
        self.rng = np.random.default_rng(seed)
        hp = pool.has_person
        self._busy = np.nonzero(hp)[0]
        self._empty = np.nonzero(~hp)[0]

    def _crop_at(self, i: int):
        cw, ch = self.crop
        c = self.context
        _, h, w = self.pool.images.shape
        x0 = int(self.rng.integers(0, w - cw - 2 * c + 1)) + c
        y0 = int(self.rng.integers(0, h - ch - 2 * c + 1)) + c
        frac = _inside_frac(self.pool.boxes[i], x0, y0, x0 + cw, y0 + ch)
        m = float(frac.max()) if len(frac) else 0.0
        return self.pool.images[i, y0 - c:y0 + ch + c, x0 - c:x0 + cw + c], m

    def sample(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        cw, ch = self.crop
        c = self.context
        out = np.empty((batch, ch + 2 * c, cw + 2 * c), np.uint8)
        labels = (self.rng.uniform(size=batch) < 0.5).astype(np.int64)
        for b in range(batch):
            for _ in range(10000):
                if labels[b] == 1 or self.rng.uniform() < 0.5:
                    i = int(self.rng.choice(self._busy))
                else:
                    i = int(self.rng.choice(self._empty)) if len(self._empty) else int(self.rng.choice(self._busy))
                img, m = self._crop_at(i)
                if (labels[b] == 1 and m >= self.pos_frac) or (labels[b] == 0 and m <= self.neg_frac):
                    break
            else:
                raise RuntimeError(f"CropSampler: no crop with label {labels[b]} found in 10000 tries "
                                   f"(crop {self.crop}, context {self.context}): are the pool's people too big?")
            out[b] = img[:, ::-1] if self.rng.uniform() < 0.5 else img
        return out, labels

    def full_frames(self, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """Balanced whole frames: label 1 iff the frame has a (ground-truth) person."""
        labels = (self.rng.uniform(size=batch) < 0.5).astype(np.int64)
        idx = [int(self.rng.choice(self._busy if y == 1 else self._empty)) for y in labels]
        imgs = self.pool.images[idx]
        flip = self.rng.uniform(size=batch) < 0.5
        imgs[flip] = imgs[flip][:, :, ::-1]
        return imgs, labels
