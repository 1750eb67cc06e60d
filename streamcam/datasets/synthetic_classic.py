"""The ``classic`` look of :class:`~streamcam.datasets.synthetic.SyntheticIRScene`: its sprites and background.

Smooth warm people (three builds, eight gait phases), cars with a hot engine and wheels, and
dogs, drawn once at a base resolution and resized per integer size on first use (cached).
The scene decides where things are; this module only says what they look like (the ``lwir`` look
is :mod:`.synthetic_lwir`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import cv2
import numpy as np

# Base resolutions sprites are drawn at, before resizing (pixels per metre / height).
_PERSON_BASE_H = 200
GAIT_PHASES = 8
"""Walk phases per gait cycle: a person's or animal's sprite changes with each."""
ROAD_Z = (11.0, 22.0)
"""Depths (m) of the road's near and far edges: drawn here, and cars drive between them."""

# --------------------------------------------------------------------------- sprites
# A sprite is (heat map float32 [h, w] with the object's body heat ~1.0, tight box
# (x0, y0, x1, y1) of its pixels inside the sprite). Anchored bottom-centre.


def _tight_box(spr: np.ndarray, frac: float = 0.2) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(spr > frac * spr.max())
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _freeze(spr: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A cached sprite: uint8 heat (1/255 steps, invisible under the sensor noise) and its tight box.

    uint8 keeps every sprite of every size in memory at a quarter of float32's cost, so the
    sprite caches can be filled once (:func:`warm_sprites`) and memory stays flat while a
    scene runs for hours.
    """
    tb = _tight_box(spr)
    q = np.clip(np.rint(spr * 255.0), 0, 255).astype(np.uint8)
    q.setflags(write=False)
    return q, tb


def quantize_px(size: int) -> int:
    """Sprite sizes in ~2 % steps above 64 px: a bounded set of sprites to cache."""
    if size >= 128:
        return size - size % 4
    if size >= 64:
        return size - size % 2
    return size


_WARM = False


def warm_sprites() -> None:
    """Render every sprite the scene can ask for, once per process (≈0.1 s, ~20 MB)."""
    global _WARM
    if _WARM:
        return
    sizes = sorted({quantize_px(v) for v in range(16, 241)})
    for variant in range(3):
        for phase in range(GAIT_PHASES):
            for size in sizes:
                person_sprite(variant, phase, size)
    _WARM = True


@lru_cache(maxsize=None)
def _person_base(variant: int, phase: int) -> np.ndarray:
    hb = _PERSON_BASE_H
    width = int(0.62 * hb)
    img = np.zeros((hb + 6, width), np.float32)
    cx = width / 2
    s = np.sin(2 * np.pi * phase / GAIT_PHASES)
    girth = (1.0, 1.2, 0.85)[variant]  # normal, broad (coat), slim
    torso_heat = (0.78, 0.55, 0.85)[variant]

    def p(x: float, y: float) -> tuple[int, int]:
        return int(round(x * 16)), int(round(y * 16))  # cv2 fixed-point, shift=4

    leg_t = max(1, int(0.075 * hb * girth))
    for sign in (1, -1):  # legs
        cv2.line(img, p(cx + sign * 0.045 * hb, 0.52 * hb), p(cx + sign * 0.14 * hb * s, hb - 3), 0.7, leg_t,
                 cv2.LINE_AA, 4)
    cv2.ellipse(img, p(cx, 0.35 * hb), p(0.125 * hb * girth, 0.2 * hb), 0, 0, 360, torso_heat, -1, cv2.LINE_AA, 4)
    arm_t = max(1, int(0.05 * hb))
    for sign in (1, -1):  # arms swing opposite to the legs
        sx = cx + sign * 0.115 * hb * girth
        cv2.line(img, p(sx, 0.2 * hb), p(sx - sign * 0.09 * hb * s, 0.5 * hb), 0.82,
                 arm_t, cv2.LINE_AA, 4)
    cv2.line(img, p(cx, 0.1 * hb), p(cx, 0.18 * hb), 0.9, int(0.05 * hb), cv2.LINE_AA, 4)  # neck
    cv2.circle(img, p(cx, 0.07 * hb), int(round(0.062 * hb * 16)), 1.0, -1, cv2.LINE_AA, 4)  # head
    return cv2.GaussianBlur(img, (0, 0), 2.0)


@lru_cache(maxsize=None)
def person_sprite(variant: int, phase: int, height: int):
    base = _person_base(variant, phase)
    k = height / _PERSON_BASE_H
    w = max(3, int(round(base.shape[1] * k)))
    h = max(4, int(round(base.shape[0] * k)))
    spr = cv2.resize(base, (w, h), interpolation=cv2.INTER_AREA)
    return _freeze(spr)


@lru_cache(maxsize=None)
def _car_base() -> np.ndarray:
    ppm = 60.0  # pixels per metre at base scale; car 4.5 m x 1.5 m, front to the right
    w, h = int(4.8 * ppm), int(1.62 * ppm)
    img = np.zeros((h, w), np.float32)
    x0 = int(0.15 * ppm)

    def r(a: float, b: float, c: float, d: float, v: float) -> None:
        cv2.rectangle(img, (x0 + int(a * ppm), int(b * ppm)), (x0 + int(c * ppm), int(d * ppm)), v, -1)

    r(0.0, 0.6, 4.5, 1.25, 1.0)  # body
    cabin = np.array([[x0 + int(1.0 * ppm), int(0.62 * ppm)], [x0 + int(1.4 * ppm), int(0.05 * ppm)],
                      [x0 + int(3.2 * ppm), int(0.05 * ppm)], [x0 + int(3.6 * ppm), int(0.62 * ppm)]], np.int32)
    cv2.fillConvexPoly(img, cabin, 0.75)
    r(1.5, 0.15, 2.25, 0.55, 0.35)  # windows (reflect the cold sky)
    r(2.35, 0.15, 3.1, 0.55, 0.35)
    r(3.6, 0.65, 4.5, 1.15, 3.5)  # engine bay
    r(-0.05, 1.05, 0.15, 1.15, 2.5)  # exhaust
    for xw in (0.8, 3.7):  # wheels: hot tyres and brakes
        cv2.circle(img, (x0 + int(xw * ppm), int(1.25 * ppm)), int(0.33 * ppm), 2.2, -1, cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), 2.0)


@lru_cache(maxsize=512)
def car_sprite(height: int, flip: bool):
    base = _car_base()
    k = height / base.shape[0]
    spr = cv2.resize(base, (max(4, int(round(base.shape[1] * k))), max(3, height)), interpolation=cv2.INTER_AREA)
    if flip:
        spr = np.ascontiguousarray(spr[:, ::-1])
    return _freeze(spr)


@lru_cache(maxsize=None)
def _animal_base(phase: int) -> np.ndarray:
    ppm = 100.0  # a dog: 0.95 m long, 0.65 m tall, head to the right
    w, h = int(1.1 * ppm), int(0.7 * ppm)
    img = np.zeros((h, w), np.float32)
    s = np.sin(2 * np.pi * phase / GAIT_PHASES)
    for hx in (0.3, 0.75):  # legs
        for sign in (1, -1):
            cv2.line(img, (int(hx * ppm), int(0.35 * ppm)), (int((hx + sign * 0.07 * s) * ppm), h - 3), 0.7,
                     int(0.07 * ppm), cv2.LINE_AA)
    cv2.ellipse(img, (int(0.52 * ppm), int(0.3 * ppm)), (int(0.33 * ppm), int(0.13 * ppm)), 0, 0, 360, 0.9, -1,
                cv2.LINE_AA)
    cv2.ellipse(img, (int(0.92 * ppm), int(0.2 * ppm)), (int(0.12 * ppm), int(0.09 * ppm)), -20, 0, 360, 1.1, -1,
                cv2.LINE_AA)
    cv2.line(img, (int(0.2 * ppm), int(0.25 * ppm)), (int(0.05 * ppm), int(0.12 * ppm)), 0.6, int(0.04 * ppm),
             cv2.LINE_AA)
    return cv2.GaussianBlur(img, (0, 0), 1.5)


@lru_cache(maxsize=2048)
def animal_sprite(height: int, phase: int, flip: bool):
    base = _animal_base(phase)
    k = height / base.shape[0]
    spr = cv2.resize(base, (max(4, int(round(base.shape[1] * k))), max(3, height)), interpolation=cv2.INTER_AREA)
    if flip:
        spr = np.ascontiguousarray(spr[:, ::-1])
    return _freeze(spr)


def background(scene: Any, rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, tuple[float, float, float, float]]]]:
    """The classic scene's background in raw counts (float32 [H, W]) and its static lamps.

    Sky, warm ground with texture, a road, buildings with windows on the horizon, warm clutter,
    the lamps baked in (``(confuser slot, box)`` each: lamps never move) and the sensor's
    fixed-pattern noise. ``scene`` is the :class:`~streamcam.datasets.synthetic.SyntheticIRScene`
    being built: its size, geometry (``_project``, ``_half_view``), confuser kinds and noise knobs.
    """
    h, w = scene.height, scene.width
    hz = int(round(scene.horizon))
    bg = np.empty((h, w), np.float32)
    ys = np.arange(h, dtype=np.float32)[:, None]
    sky = 5200 + 700 * (ys[:hz] / max(hz, 1)) + rng.uniform(-200, 200)
    bg[:hz] = sky
    g = (ys[hz:] - hz) / max(h - hz, 1)
    bg[hz:] = 7000 + 1100 * g + rng.uniform(-200, 200)
    # Ground texture: low-frequency warm/cool patches (grass, pavement, shadows).
    tex = rng.standard_normal((h // 8 + 1, w // 8 + 1)).astype(np.float32)
    tex = cv2.resize(tex, (w, h), interpolation=cv2.INTER_CUBIC)
    bg[hz:] += 120 * tex[hz:]
    # Road: a warmer asphalt band between two depths.
    y_far, y_near = (int(scene._project(0, z)[1]) for z in (ROAD_Z[1] + 2, ROAD_Z[0] - 2))
    bg[y_far:y_near] += rng.uniform(200, 450)
    # Buildings on the horizon: warm facades with a grid of windows.
    x = int(rng.uniform(-0.1, 0.15) * w)
    while x < w:
        bw = int(rng.uniform(0.12, 0.3) * w)
        if rng.uniform() < 0.8:
            top = int(hz - rng.uniform(0.08, 0.22) * h)
            base = hz + int(0.04 * h)
            facade = rng.uniform(6600, 7600)
            x0, x1 = max(x, 0), min(x + bw, w)
            if x1 > x0:
                bg[max(top, 0):base, x0:x1] = facade
                step_x, step_y = max(4, int(0.025 * w)), max(4, int(0.03 * h))
                for wy in range(top + step_y // 2, hz - step_y // 2, step_y):
                    for wx in range(x0 + step_x // 3, x1 - step_x // 2, step_x):
                        bg[max(wy, 0):wy + step_y // 2, wx:wx + step_x // 2] = facade + rng.uniform(-500, 500)
        x += bw + int(rng.uniform(0.0, 0.08) * w)
    # Static warm patches: vents, sunlit walls, manholes (background clutter).
    for _ in range(int(rng.integers(3, 7))):
        px, py = int(rng.uniform(0, w)), int(rng.uniform(hz, h))
        pw, ph = int(rng.uniform(4, 30)), int(rng.uniform(3, 12))
        bg[py:py + ph, px:px + pw] += rng.uniform(300, 900)
    bg = cv2.GaussianBlur(bg, (0, 0), 0.8)
    # Lamps are static: bake them into the background, keep their boxes.
    lamps: list[tuple[int, tuple[float, float, float, float]]] = []
    for i, kind in enumerate(scene._kinds):
        if kind != "lamp":
            continue
        z = rng.uniform(8.0, 30.0)
        xw = rng.uniform(-0.85, 0.85) * scene._half_view(z)
        fx, fy = scene._project(xw, z)
        pole_h = scene.focal * 5.0 / z
        top = fy - pole_h
        thick = max(1, int(round(scene.focal * 0.12 / z)))
        x0 = int(round(fx - thick / 2))
        bg[max(int(top), 0):int(fy), max(x0, 0):x0 + thick] += 180
        r = max(1.5, scene.focal * 0.18 / z)
        yy, xx = np.ogrid[:h, :w]
        d2 = (xx - fx) ** 2 + (yy - top) ** 2
        bg += (rng.uniform(2500, 5000) * np.exp(-d2 / (2 * (r * 0.8) ** 2))).astype(np.float32)
        box = (max(fx - r * 1.6, 0.0), max(top - r * 1.6, 0.0), min(fx + r * 1.6, w), min(fy, h))
        lamps.append((i, tuple(float(v) for v in box)))
    # Fixed-pattern noise: per-column and per-row offsets of the readout.
    bg += (rng.standard_normal(w) * scene.fixed_pattern).astype(np.float32)[None, :]
    bg += (rng.standard_normal(h) * scene.fixed_pattern * 0.5).astype(np.float32)[:, None]
    return bg, lamps
