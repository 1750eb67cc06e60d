"""The ``lwir`` style of :class:`~streamcam.datasets.synthetic.SyntheticIRScene`: what real street LWIR shows.

The ``classic`` scene (the default) shows people as smooth warm blobs on a cool, plain
ground seen from a low camera. Real night footage of an uncooled LWIR core (the LLVIP
sample, docs/benchmarks.md) differs in ways a model trained on ``classic`` fails on:

* **people are sharp silhouettes with parts**: skin (head, hands) is the hottest, clothing
  can be warmer *or colder* than the ground behind it, limbs, bags and backpacks show;
* **riders** on bicycles and scooters, **groups** walking close together;
* **warm ground**: pavement, paving stones and façades as bright as or brighter than clothing,
  cold planters and tree shadows, and **warm clutter** a person is not: car hoods, bollards,
  manhole rims, poles, traffic lights, parked bicycles, small hot spots;
* **a high camera** looking down (people 0.1-0.35 of the frame height everywhere in it);
* **the sensor**: white-hot or black-hot polarity, AGC range and gamma, optics blur.

Every one of these is drawn per scene seed from a range (domain randomisation: the real
range is not known from 12 frames); :class:`LwirLook` holds one draw. Nothing here is used by
the ``classic`` style, whose frames stay as they were.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

_BASE_H = 200
_PHASES = 8

# Part ids of a person sprite (painted in this order, later parts cover earlier ones).
LEGS, TORSO, EXTRA, SKIN = 1, 2, 3, 4
WALK_VARIANTS = 4  # coat, jacket, slim, backpack
RIDER_VARIANTS = (4, 5)  # bicycle (side view), scooter / bicycle seen from the front


@dataclass(frozen=True)
class LwirLook:
    """One scene's draw of the real-LWIR ranges (see the module doc)."""

    polarity: str
    """``white`` (hot is bright, LLVIP's) or ``black`` (hot is dark)."""
    blur: float
    """Optics / core blur, Gaussian sigma in pixels of a 512-line frame."""
    agc: tuple[float, float]
    """AGC percentiles (low, high)."""
    gamma: float
    """Display gamma after the AGC (8-bit out = 255 (v / 255) ** gamma)."""
    horizon: float
    """Horizon row as a fraction of the frame height (negative: above the frame, a camera looking down)."""
    cam_height: float
    """Camera height above the ground (m)."""
    skin_heat: tuple[float, float]
    """Skin (head, hands) counts above the local ground."""
    group: float
    """Chance that a walker has company (one or two people beside them)."""
    rider: float
    """Chance that a walker rides a bicycle or scooter."""
    noise: float
    fixed_pattern: float

    @classmethod
    def draw(cls, rng: np.random.Generator, polarity: str | None = None) -> "LwirLook":
        if polarity is None:
            polarity = "black" if rng.uniform() < 0.35 else "white"
        down = rng.uniform() < 0.7  # most street cameras look down from a building or pole
        return cls(
            polarity=polarity, blur=float(rng.uniform(0.3, 1.6)),
            agc=(float(rng.uniform(0.0, 3.0)), float(rng.uniform(97.0, 99.9))), gamma=float(rng.uniform(0.7, 1.4)),
            horizon=float(rng.uniform(-0.7, -0.1) if down else rng.uniform(0.05, 0.25)),
            cam_height=float(rng.uniform(6.0, 12.0) if down else rng.uniform(3.0, 5.0)),
            skin_heat=(float(rng.uniform(1000, 1800)), float(rng.uniform(2200, 3800))),
            group=float(rng.uniform(0.2, 0.6)), rider=float(rng.uniform(0.1, 0.35)),
            noise=float(rng.uniform(8, 35)), fixed_pattern=float(rng.uniform(0, 30)))


# --------------------------------------------------------------------------- people
@lru_cache(maxsize=None)
def _person_parts(variant: int, phase: int) -> tuple[np.ndarray, np.ndarray]:
    """Part-id map (uint8) and coverage (float32, anti-aliased) of a person at base height."""
    hb = _BASE_H
    rider = variant in RIDER_VARIANTS
    width = int((1.05 if variant == RIDER_VARIANTS[0] else 0.66) * hb)
    ids = np.zeros((hb + 6, width), np.uint8)
    cx = width / 2
    s = np.sin(2 * np.pi * phase / _PHASES)
    girth = (1.25, 1.05, 0.85, 1.0, 1.0, 1.0)[variant]

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(round(x)), int(round(y))

    def line(a, b, part, t):
        cv2.line(ids, pt(*a), pt(*b), part, max(1, int(t)), cv2.LINE_8)

    if variant == RIDER_VARIANTS[0]:  # bicycle, side view: wheels, frame, rider seated and pedalling
        r = 0.2 * hb
        wy = hb - r - 1
        for wx in (cx - 0.3 * hb, cx + 0.3 * hb):
            cv2.circle(ids, pt(wx, wy), int(r), EXTRA, max(1, int(0.025 * hb)))
        frame = [(cx - 0.3 * hb, wy), (cx - 0.05 * hb, 0.6 * hb), (cx + 0.22 * hb, 0.6 * hb), (cx + 0.3 * hb, wy)]
        for a, b in zip(frame[:-1], frame[1:]):
            line(a, b, EXTRA, 0.03 * hb)
        line((cx + 0.22 * hb, 0.6 * hb), (cx + 0.2 * hb, 0.45 * hb), EXTRA, 0.03 * hb)  # handlebar post
        hip = (cx - 0.07 * hb, 0.52 * hb)
        knee = (cx + 0.08 * hb + 0.04 * hb * s, 0.62 * hb)
        line(hip, knee, LEGS, 0.07 * hb)
        line(knee, (cx + 0.02 * hb, wy + 0.02 * hb * s), LEGS, 0.06 * hb)
        cv2.ellipse(ids, pt(cx - 0.03 * hb, 0.36 * hb), pt(0.1 * hb, 0.17 * hb), -20, 0, 360, TORSO, -1)
        line((cx + 0.0 * hb, 0.25 * hb), (cx + 0.19 * hb, 0.44 * hb), TORSO, 0.05 * hb)  # arm to the bar
        cv2.circle(ids, pt(cx + 0.19 * hb, 0.45 * hb), int(0.025 * hb), SKIN, -1)
        cv2.circle(ids, pt(cx + 0.02 * hb, 0.13 * hb), int(0.065 * hb), SKIN, -1)
    else:
        if variant == RIDER_VARIANTS[1]:  # front view: a narrow wheel under a seated rider, bar across
            cv2.ellipse(ids, pt(cx, 0.8 * hb), pt(0.035 * hb, 0.19 * hb), 0, 0, 360, EXTRA, -1)
            line((cx - 0.2 * hb, 0.47 * hb), (cx + 0.2 * hb, 0.47 * hb), EXTRA, 0.025 * hb)
            for sign in (1, -1):
                line((cx + sign * 0.05 * hb, 0.55 * hb), (cx + sign * 0.09 * hb, 0.7 * hb), LEGS, 0.07 * hb)
                line((cx + sign * 0.09 * hb, 0.7 * hb), (cx + sign * 0.05 * hb, 0.9 * hb), LEGS, 0.06 * hb)
        else:
            leg_t = 0.075 * hb * min(girth, 1.05)
            for sign in (1, -1):
                line((cx + sign * 0.045 * hb, 0.52 * hb), (cx + sign * 0.14 * hb * s, hb - 3), LEGS, leg_t)
                cv2.ellipse(ids, pt(cx + sign * 0.14 * hb * s + 0.02 * hb, hb - 4), pt(0.04 * hb, 0.015 * hb), 0, 0,
                            360, LEGS, -1)  # shoes
        coat = 0.72 if variant == 0 else 0.55
        torso = np.array([[cx - 0.11 * hb * girth, 0.19 * hb], [cx + 0.11 * hb * girth, 0.19 * hb],
                          [cx + 0.13 * hb * girth, coat * hb], [cx - 0.13 * hb * girth, coat * hb]], np.int32)
        if not rider:
            cv2.fillConvexPoly(ids, torso, TORSO)
        else:
            cv2.ellipse(ids, pt(cx, 0.37 * hb), pt(0.12 * hb * girth, 0.18 * hb), 0, 0, 360, TORSO, -1)
        if variant == 3:  # backpack: a block on one side of the back
            cv2.rectangle(ids, pt(cx - 0.14 * hb, 0.22 * hb), pt(cx - 0.02 * hb, 0.45 * hb), EXTRA, -1)
        arm_t = 0.05 * hb
        for sign in (1, -1):
            sx = cx + sign * 0.12 * hb * girth
            if rider:
                hand = (cx + sign * 0.19 * hb, 0.46 * hb)
            else:
                hand = (sx - sign * 0.09 * hb * s + sign * 0.01 * hb, 0.5 * hb)
            line((sx, 0.21 * hb), hand, TORSO, arm_t)
            cv2.circle(ids, pt(*hand), int(0.028 * hb), SKIN, -1)
        line((cx, 0.1 * hb), (cx, 0.19 * hb), SKIN, 0.045 * hb)  # neck
        cv2.circle(ids, pt(cx, 0.075 * hb), int(0.062 * hb), SKIN, -1)
        if variant in (0, 1):  # hair / hood: the top of the head cooler than the face
            cv2.ellipse(ids, pt(cx, 0.06 * hb), pt(0.064 * hb, 0.045 * hb), 0, 180, 360, EXTRA, -1)
    cover = cv2.GaussianBlur((ids > 0).astype(np.float32), (0, 0), 1.0)
    return ids, cover


@lru_cache(maxsize=4096)
def person_sprite(variant: int, phase: int, height: int, flip: bool):
    """``(part ids uint8, coverage float32, tight box, clothing texture float32)`` of a person ``height`` px tall."""
    ids, cover = _person_parts(variant, phase)
    k = height / _BASE_H
    w, h = max(3, int(round(ids.shape[1] * k))), max(4, int(round(ids.shape[0] * k)))
    ids_s = cv2.resize(ids, (w, h), interpolation=cv2.INTER_NEAREST)
    cov = cv2.resize(cover, (w, h), interpolation=cv2.INTER_AREA)
    if flip:
        ids_s, cov = np.ascontiguousarray(ids_s[:, ::-1]), np.ascontiguousarray(cov[:, ::-1])
    ys, xs = np.nonzero(cov > 0.2)
    tb = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1) if len(xs) else (0, 0, w, h)
    # Clothing texture (folds, seams, prints): smooth noise at ~1/25 of the height, fixed per sprite.
    trng = np.random.default_rng([variant, phase, height])
    g = max(2, height // 25)
    tex = cv2.resize(trng.standard_normal((h // g + 2, w // g + 2)).astype(np.float32), (w, h),
                     interpolation=cv2.INTER_LINEAR) * np.float32(0.15)
    for a in (ids_s, cov, tex):
        a.setflags(write=False)
    return ids_s, cov, tb, tex


def person_values(rng: np.random.Generator) -> np.ndarray:
    """Heat of each part relative to the skin's (index = part id): clothing warmer or colder than the ground."""
    v = np.zeros(5, np.float32)
    v[LEGS] = rng.uniform(-0.5, 0.9)
    v[TORSO] = rng.uniform(-0.6, 0.9)
    v[EXTRA] = rng.uniform(-0.5, 0.5)
    v[SKIN] = 1.0
    return v


def composite_person(buf: np.ndarray, sprite, values: np.ndarray, heat: float, x0: int, y0: int) -> None:
    """Paint a person sprite into ``buf`` (counts) at ``(x0, y0)``: coverage-weighted replacement of
    the ground by the local ground level plus ``heat`` times each part's value (clothing can be
    colder than the ground), clothing parts with the sprite's texture."""
    ids, cover, _, texture = sprite
    h, w = buf.shape
    sh, sw = ids.shape
    ax0, ay0, ax1, ay1 = max(x0, 0), max(y0, 0), min(x0 + sw, w), min(y0 + sh, h)
    if ax1 <= ax0 or ay1 <= ay0:
        return
    region = buf[ay0:ay1, ax0:ax1]
    win = (slice(ay0 - y0, ay1 - y0), slice(ax0 - x0, ax1 - x0))
    sub_ids, a = ids[win], cover[win]
    ref = float(np.median(region))
    val = values[sub_ids]
    val = np.where(sub_ids != SKIN, val + texture[win], val)
    region *= 1.0 - a
    region += a * (ref + np.float32(heat) * val)


# --------------------------------------------------------------------------- background
def _ellipse(bg, c, axes, angle, value, thickness=-1, add=True):
    m = np.zeros(bg.shape, np.uint8)
    cv2.ellipse(m, (int(c[0]), int(c[1])), (max(1, int(axes[0])), max(1, int(axes[1]))), angle, 0, 360, 1, thickness)
    if add:
        bg[m > 0] += value
    else:
        bg[m > 0] = value


def background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Warm, busy street ground in counts (float32 [h, w]): pavement zones, paving, planters and
    shadows, parked cars, façades, bollards, manholes, poles with traffic lights, parked bicycles,
    tree canopies, upright boxes (traffic lights, bins, cabinets), railings, hot spots."""
    s = h / 512.0  # sizes are drawn for a 512-line frame and scaled
    level = rng.uniform(6500, 7800)
    bg = np.full((h, w), level, np.float32)
    # Zones: road, sidewalk, planter strips: half-planes with their own level.
    for _ in range(int(rng.integers(1, 4))):
        ang = rng.uniform(0, np.pi)
        nx, ny = np.cos(ang), np.sin(ang)
        d = rng.uniform(-0.3, 0.3) * (w + h)
        yy, xx = np.mgrid[:h, :w].astype(np.float32)
        side = (xx - w / 2) * nx + (yy - h / 2) * ny > d
        bg[side] += rng.uniform(-1500, 900)
    # Paving stones or slabs: a grid with per-stone levels and grout lines.
    if rng.uniform() < 0.6:
        p = max(4, int(rng.uniform(8, 40) * s))
        gh, gw = h // p + 2, w // p + 2
        stones = rng.normal(0, rng.uniform(20, 90), (gh, gw)).astype(np.float32)
        tiles = np.kron(stones, np.ones((p, p), np.float32))[:h, :w]
        bg += tiles
        grout = rng.uniform(-150, 100)
        bg[::p, :] += grout
        bg[:, ::p] += grout
    tex = cv2.resize(rng.standard_normal((h // 16 + 2, w // 16 + 2)).astype(np.float32), (w, h),
                     interpolation=cv2.INTER_CUBIC)
    bg += rng.uniform(50, 250) * tex
    # Cold planters / tree shadows and canopies (dark, large).
    for _ in range(int(rng.integers(0, 4))):
        _ellipse(bg, (rng.uniform(0, w), rng.uniform(0, h)), (rng.uniform(20, 120) * s, rng.uniform(15, 80) * s),
                 rng.uniform(0, 180), -rng.uniform(800, 3000))
    # Parked cars: big rounded shapes, roofs cooler or warmer than the ground, a warm hood.
    for _ in range(int(rng.integers(0, 4))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        ax, ay, ang = rng.uniform(50, 130) * s, rng.uniform(30, 60) * s, rng.uniform(0, 180)
        _ellipse(bg, (cx, cy), (ax, ay), ang, level + rng.uniform(-2500, 600), add=False)
        _ellipse(bg, (cx, cy), (ax * 0.5, ay * 0.6), ang, rng.uniform(-900, 900))
        if rng.uniform() < 0.5:
            t = np.deg2rad(ang)
            _ellipse(bg, (cx + 0.6 * ax * np.cos(t), cy + 0.6 * ax * np.sin(t)), (ax * 0.3, ay * 0.6), ang,
                     rng.uniform(600, 2500))
    # Façade / building edge: a band of wall, warm or cool, with a window grid.
    if rng.uniform() < 0.4:
        x0 = int(rng.uniform(0, 0.8) * w)
        bw = int(rng.uniform(0.15, 0.5) * w)
        y1 = int(rng.uniform(0.1, 0.5) * h)
        wall = level + rng.uniform(-800, 1200)
        bg[:y1, x0:x0 + bw] = wall
        sx, sy = max(4, int(rng.uniform(10, 30) * s)), max(4, int(rng.uniform(12, 30) * s))
        for yy in range(sy // 2, y1 - sy // 2, sy):
            for xx in range(x0 + sx // 3, min(x0 + bw, w) - sx // 2, sx):
                bg[yy:yy + sy // 2, xx:xx + sx // 2] = wall + rng.uniform(-900, 900)
    # Bollards: short vertical warm cylinders with a darker top.
    for _ in range(int(rng.integers(0, 9))):
        bx, by = rng.uniform(0, w), rng.uniform(0, h)
        bw_, bh_ = rng.uniform(8, 18) * s, rng.uniform(20, 50) * s
        bg[int(by):int(by + bh_), int(bx):int(bx + bw_)] += rng.uniform(300, 2500)
        _ellipse(bg, (bx + bw_ / 2, by), (bw_ / 2, bw_ / 4), 0, -rng.uniform(0, 1500))
    # Manholes: a dark disc with a bright rim.
    for _ in range(int(rng.integers(0, 4))):
        c = (rng.uniform(0, w), rng.uniform(0, h))
        r = rng.uniform(15, 45) * s
        _ellipse(bg, c, (r, r * rng.uniform(0.5, 0.9)), 0, -rng.uniform(500, 2000))
        _ellipse(bg, c, (r, r * 0.7), 0, rng.uniform(300, 1500), thickness=max(1, int(3 * s)))
    # Poles with traffic lights or lamps: thin long lines, boxes with hot spots.
    for _ in range(int(rng.integers(0, 3))):
        x = int(rng.uniform(0, w))
        t = max(1, int(rng.uniform(3, 10) * s))
        v = rng.uniform(-2500, 1500)
        bg[:, x:x + t] += v
        ly = int(rng.uniform(0, h))
        bg[ly:ly + int(60 * s), x - int(12 * s):x + int(12 * s)] += v
        for k in range(3):
            _ellipse(bg, (x, ly + (k + 0.5) * 20 * s), (6 * s, 6 * s), 0, rng.uniform(0, 3000))
    # Parked bicycles (no rider): thin wheel outlines and a frame.
    for _ in range(int(rng.integers(0, 3))):
        c = (rng.uniform(0, w), rng.uniform(0, h))
        r = rng.uniform(15, 35) * s
        v = rng.uniform(-1200, 1200)
        for dx in (-1.5 * r, 1.5 * r):
            _ellipse(bg, (c[0] + dx, c[1]), (r, r * rng.uniform(0.6, 1.0)), 0, v, thickness=max(1, int(2 * s)))
        m = np.zeros(bg.shape, np.uint8)
        cv2.line(m, (int(c[0] - 1.5 * r), int(c[1])), (int(c[0] + 1.5 * r), int(c[1] - r)), 1, max(1, int(3 * s)))
        bg[m > 0] += v
    # Tree canopies and hedges: large patches of leaves, fine bright and dark texture.
    for _ in range(int(rng.integers(0, 4))):
        m = np.zeros(bg.shape, np.uint8)
        c = (rng.uniform(0, w), rng.uniform(0, h))
        for _ in range(int(rng.integers(2, 6))):
            cv2.circle(m, (int(c[0] + rng.uniform(-60, 60) * s), int(c[1] + rng.uniform(-40, 40) * s)),
                       int(rng.uniform(20, 70) * s), 1, -1)
        g = max(2, int(rng.uniform(2, 7) * s))
        leaves = cv2.resize(rng.standard_normal((h // g + 2, w // g + 2)).astype(np.float32), (w, h),
                            interpolation=cv2.INTER_NEAREST if rng.uniform() < 0.5 else cv2.INTER_LINEAR)[:h, :w]
        amp = rng.uniform(600, 2500)
        bg[m > 0] += (amp * np.tanh(leaves) + rng.uniform(-1500, 500))[m > 0]
    # Boxes on the street: traffic-light heads, bins, utility cabinets: upright rectangles with
    # edges, rims and lit parts (upright and person-sized, like a standing figure).
    for _ in range(int(rng.integers(0, 5))):
        bw_, bh_ = rng.uniform(15, 60) * s, rng.uniform(40, 150) * s
        x0, y0 = int(rng.uniform(0, w)), int(rng.uniform(0, h))
        x1, y1 = int(x0 + bw_), int(y0 + bh_)
        bg[y0:y1, x0:x1] += rng.uniform(-2500, 2000)
        grad = np.linspace(0, rng.uniform(-800, 800), max(1, min(y1, h) - y0), dtype=np.float32)[:, None]
        bg[y0:y1, x0:x1] += grad[:bg[y0:y1, x0:x1].shape[0]]
        edge = max(1, int(rng.uniform(1, 4) * s))
        bg[y0:y0 + edge, x0:x1] += rng.uniform(-1500, 2000)
        for k in range(int(rng.integers(0, 4))):
            _ellipse(bg, (x0 + bw_ / 2, y0 + (k + 0.6) * bh_ / 4), (bw_ / 4, bw_ / 4), 0, rng.uniform(500, 3500))
    # Railings and bike racks: rows of thin bars.
    for _ in range(int(rng.integers(0, 3))):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        n, step, bh_ = int(rng.integers(4, 14)), rng.uniform(6, 20) * s, rng.uniform(20, 60) * s
        v = rng.uniform(-1500, 1500)
        for k in range(n):
            x = int(x0 + k * step)
            bg[int(y0):int(y0 + bh_), x:x + max(1, int(2 * s))] += v
    # Hot spots: lamps, lit windows, vents, exhausts: small, very warm.
    for _ in range(int(rng.integers(2, 10))):
        r = rng.uniform(2, 14) * s
        _ellipse(bg, (rng.uniform(0, w), rng.uniform(0, h)), (r, r * rng.uniform(0.4, 1.0)), rng.uniform(0, 180),
                 rng.uniform(800, 5000))
    return bg


def display(image: np.ndarray, look: LwirLook) -> np.ndarray:
    """The 8-bit frame after the AGC as a camera shows it: gamma, then the polarity (black-hot = 255 - white-hot)."""
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** look.gamma + 0.5, 0, 255).astype(np.uint8)
    out = lut[image]
    return 255 - out if look.polarity == "black" else out
