"""Silhouettes against a plate of many moments: boxes on fixtures dropped, boxes on one person snapped.

What it is for: a multiple-instance person map, taught from image-level labels, says *where* a person
is, not their outline, and it fires on whatever looked most like a person in its training frames. At
a fixed LWIR camera a few fixtures do (the LLVIP sample: one parked bicycle gave 4 of the shipped
thermal model's 9 false boxes, one in every evaluation frame of its camera), and a box sized by the
camera's ground-plane line misses a person a third of the time by being too low or too narrow. A
single frame cannot tell a fixture from a person standing still, nor say where a person ends; the
camera's background can. Against a plate made of many moments (the per-pixel median of frames
spread over minutes, :class:`~streamcam.processor.background.RunningPlate` with a long interval, or
the other stills of the same camera), a fixture is background and a person who came by is a sharp
foreground blob: in LWIR, a warm body against a plate that already holds the warm pavement.

:class:`Silhouettes` holds one frame's foreground blobs:

* a box whose foreground share is under :data:`FIXTURE_SHARE` is on a fixture and is dropped (a peak
  rule drops it before the boxes compete, :meth:`~streamcam.processor.peak_boxes.PeakBoxRule.boxes`,
  so that it never suppresses a person's box);
* a box then takes the bounds of the blob that fills most of it when that blob is one person's size
  (:data:`SNAP_TOLERANCE`); a group walking close is one blob too large and keeps the rule's box.

The price, and why it is opt-in (``processor.silhouettes``): a person standing still for longer than
half the plate's window (about 2.5 min live) becomes background too and is not reported until they
move. Classic background-subtraction surveillance makes the same trade; a camera watching for
loiterers should leave it off.

Pure numpy and OpenCV; :meth:`Silhouettes.snap` and :func:`camera_groups` have slow, obvious twins
(:func:`snap_reference`, :func:`camera_groups_reference`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..errors import ConfigError

Box = tuple[float, float, float, float]

FIXTURE_SHARE = 0.25
"""A box is a person's when at least this share of it is foreground. A walker's silhouette fills
about half of their box; a quarter is half of that (limbs and cold clothing leave holes). Not tuned:
on the LLVIP sample's 12 frames, against the other stills of their camera, the fixtures' boxes hold
0.12-0.15 foreground and people's 0.34-0.90, and any share from 0.16 to 0.33 gives the same boxes
(docs/benchmarks.md, "Stop 32")."""

SNAP_TOLERANCE = 1.5
"""A blob is one person's when its height is within this factor of the box's either way and its width
at most this factor of the box's. Chosen before measuring; on the LLVIP calibration frames 2.0
scores the same and 1.25 worse (docs/benchmarks.md, "Stop 32")."""

LIVE_INTERVAL_S = 10.0
"""Seconds between the live fixture plate's samples: 31 of them span about 5 minutes."""

SAME_CAMERA = 0.8
"""Two stills are of one fixed camera when their coarse thumbnails correlate at least this much
(the LLVIP sample's LWIR frames: 0.83-0.98 within each of its two cameras, under 0.16 across)."""


def _pixels(box: Sequence[float], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    return (int(max(0, np.floor(box[0]))), int(max(0, np.floor(box[1]))),
            int(min(w, np.ceil(box[2]))), int(min(h, np.ceil(box[3]))))


def foreground_share(mask: np.ndarray, box: Sequence[float]) -> float:
    """The share of ``box`` (frame pixels, clipped to the mask) that ``mask`` marks as foreground;
    0 for an empty box."""
    x0, y0, x1, y1 = _pixels(box, mask.shape)
    if x1 <= x0 or y1 <= y0:
        return 0.0
    return float(mask[y0:y1, x0:x1].mean())


def _snapped(box: Sequence[float], blob: tuple[int, int, int, int], tolerance: float) -> Box:
    """``blob`` (x, y, w, h) as a box when it is one person's size beside ``box``, else ``box``."""
    bx, by, bw, bh = blob
    h, w = box[3] - box[1], box[2] - box[0]
    if not (h / tolerance <= bh <= h * tolerance and bw <= w * tolerance):
        return tuple(float(v) for v in box)  # type: ignore[return-value]
    return float(bx), float(by), float(bx + bw), float(by + bh)


class Silhouettes:
    """One frame's foreground blobs (``mask``: ``uint8`` 0/1, the frame's size, as
    :func:`~streamcam.processor.background.foreground_mask` makes it)."""

    def __init__(self, mask: np.ndarray | None, tolerance: float = SNAP_TOLERANCE) -> None:
        self._mask = None if mask is None else np.asarray(mask, np.uint8)
        self._make: Callable[[], np.ndarray | None] | None = None
        self.tolerance = float(tolerance)
        self._blobs: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def lazy(cls, make: Callable[[], np.ndarray | None], tolerance: float = SNAP_TOLERANCE) -> "Silhouettes":
        """Silhouettes whose mask is made by ``make`` when a box first asks: most frames of a quiet
        camera have no box, and their foreground is never computed. ``make`` returning None (a plate of
        another size) leaves every box as it is."""
        out = cls(None, tolerance)
        out._make = make
        return out

    @property
    def mask(self) -> np.ndarray | None:
        if self._make is not None:
            m, self._make = self._make(), None
            self._mask = None if m is None else np.asarray(m, np.uint8)
        return self._mask

    def share(self, box: Sequence[float]) -> float:
        """:func:`foreground_share` of ``box`` (1 without a mask: nothing to say against it)."""
        return 1.0 if self.mask is None else foreground_share(self.mask, box)

    def on_fixture(self, box: Sequence[float]) -> bool:
        """Whether ``box`` is under :data:`FIXTURE_SHARE` foreground."""
        return self.share(box) < FIXTURE_SHARE

    def snap(self, box: Sequence[float]) -> Box:
        """``box`` with the bounds of the 8-connected blob that covers most of it, when that blob is one
        person's size (:data:`SNAP_TOLERANCE`); else ``box`` as it is."""
        import cv2

        if self.mask is None:
            return tuple(float(v) for v in box)  # type: ignore[return-value]
        if self._blobs is None:
            _, labels, stats, _ = cv2.connectedComponentsWithStats(self.mask, connectivity=8)
            self._blobs = labels, stats
        labels, stats = self._blobs
        x0, y0, x1, y1 = _pixels(box, labels.shape)
        if x1 <= x0 or y1 <= y0:
            return tuple(float(v) for v in box)  # type: ignore[return-value]
        counts = np.bincount(labels[y0:y1, x0:x1].ravel(), minlength=len(stats))
        counts[0] = 0
        k = int(np.argmax(counts))
        if counts[k] == 0:
            return tuple(float(v) for v in box)  # type: ignore[return-value]
        return _snapped(box, tuple(int(v) for v in stats[k, :4]), self.tolerance)  # type: ignore[arg-type]

    def refine(self, boxes: Sequence[tuple[Box, float]], nms: float) -> list[tuple[Box, float]]:
        """``[(box, score), ...]`` (strongest first) without the boxes on fixtures, the rest snapped; a
        snapped box overlapping a stronger one by more than ``nms`` (IoU) is that person again."""
        from ..geometry import iou

        out: list[tuple[Box, float]] = []
        for box, score in boxes:
            if self.on_fixture(box):
                continue
            snapped = self.snap(box)
            if all(iou(snapped, o) <= nms for o, _ in out):
                out.append((snapped, score))
        return out


def snap_reference(mask: np.ndarray, box: Sequence[float], tolerance: float = SNAP_TOLERANCE) -> Box:
    """:meth:`Silhouettes.snap` by flood-filling from every foreground pixel of the box in turn
    (tests compare the two)."""
    from collections import deque

    mask = np.asarray(mask, bool)
    h, w = mask.shape
    x0, y0, x1, y1 = _pixels(box, mask.shape)
    seen = np.zeros_like(mask)
    best: tuple[int, tuple[int, int, int, int]] | None = None
    for sy in range(y0, y1):
        for sx in range(x0, x1):
            if not mask[sy, sx] or seen[sy, sx]:
                continue
            queue, pixels, inside = deque([(sy, sx)]), [], 0
            seen[sy, sx] = True
            while queue:
                y, x = queue.popleft()
                pixels.append((y, x))
                inside += int(x0 <= x < x1 and y0 <= y < y1)
                for dy in (-1, 0, 1):
                    for dx in (-1, 0, 1):
                        ny, nx = y + dy, x + dx
                        if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            queue.append((ny, nx))
            ys, xs = [p[0] for p in pixels], [p[1] for p in pixels]
            blob = (min(xs), min(ys), max(xs) - min(xs) + 1, max(ys) - min(ys) + 1)
            if best is None or inside > best[0]:
                best = (inside, blob)
    if best is None:
        return tuple(float(v) for v in box)  # type: ignore[return-value]
    return _snapped(box, best[1], tolerance)


def _thumbnail(image: np.ndarray) -> np.ndarray:
    import cv2

    g = image if image.ndim == 2 else cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2GRAY)
    t = cv2.resize(g.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA).ravel()
    t -= t.mean()
    n = float(np.linalg.norm(t))
    return t / n if n > 0 else t


def camera_groups(images: Sequence[np.ndarray], same: float = SAME_CAMERA) -> list[int]:
    """A camera index per still: frames of one size whose thumbnails correlate at least ``same``
    with a group's first frame join it (a folder of stills from a few fixed cameras, in any order)."""
    firsts: list[tuple[tuple[int, ...], np.ndarray]] = []
    out = []
    for image in images:
        t = _thumbnail(image)
        shape = tuple(image.shape[:2])
        scores = [float(t @ f) if s == shape else -1.0 for s, f in firsts]
        if scores and max(scores) >= same:
            out.append(int(np.argmax(scores)))
        else:
            firsts.append((shape, t))
            out.append(len(firsts) - 1)
    return out


def camera_groups_reference(images: Sequence[np.ndarray], same: float = SAME_CAMERA) -> list[int]:
    """:func:`camera_groups` with the correlation written out pixel by pixel (tests compare the two)."""
    import cv2

    firsts: list[tuple[tuple[int, ...], list[float]]] = []
    out = []
    for image in images:
        g = image if image.ndim == 2 else cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2GRAY)
        px = [float(v) for v in cv2.resize(g.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA).ravel()]
        m = sum(px) / len(px)
        px = [v - m for v in px]
        best, best_k = -2.0, -1
        for k, (shape, f) in enumerate(firsts):
            if shape != tuple(image.shape[:2]):
                continue
            num = sum(a * b for a, b in zip(px, f))
            den = (sum(a * a for a in px) * sum(b * b for b in f)) ** 0.5
            r = num / den if den > 0 else 0.0
            if r > best:
                best, best_k = r, k
        if best >= same:
            out.append(best_k)
        else:
            firsts.append((tuple(image.shape[:2]), px))
            out.append(len(firsts) - 1)
    return out


STILL_PLATE_FRAMES = 31
"""At most this many other stills make a still's plate (spread over its camera's), as many as the live
plate holds: one median per still over a camera's every other still would grow with the square of a
large folder."""


def still_plates(images: Sequence[np.ndarray], groups: Sequence[int],
                 max_frames: int = STILL_PLATE_FRAMES) -> list[np.ndarray | None]:
    """Each still's plate: the per-pixel median of the *other* stills of its camera (the frame itself
    kept out, so that a person in it is never part of its own background; at most ``max_frames`` of
    them, evenly picked), None where its camera has fewer than 3 others (a median of two keeps their
    movers)."""
    from .background import empty_plate

    if len(images) != len(groups):
        raise ConfigError(f"still plates: {len(images)} images but {len(groups)} camera indices")
    out: list[np.ndarray | None] = []
    for k, g in enumerate(groups):
        others = [images[j] for j, h in enumerate(groups) if h == g and j != k]
        out.append(empty_plate(others, max_frames=max_frames) if len(others) >= 3 else None)
    return out


__all__ = ["FIXTURE_SHARE", "LIVE_INTERVAL_S", "SAME_CAMERA", "SNAP_TOLERANCE", "STILL_PLATE_FRAMES", "Silhouettes",
           "camera_groups", "camera_groups_reference", "foreground_share", "snap_reference", "still_plates"]
