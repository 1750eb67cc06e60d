"""A synthetic thermal (IR) surveillance scene with ground truth: the embedded default source.

What it shows: a fixed camera ~4 m above a ground plane, looking at a street with
buildings on the horizon. People walk across it (size set by perspective: about
25 px tall near the horizon, 160 px at the bottom of a 640x480 frame), and warm
*confusers* share the view: cars (wide warm blobs with a hot engine and wheels),
street lamps (small, very hot points on thin poles) and animals (small, low,
horizontal warm shapes). The background is cool with structure (sky gradient,
warmer ground towards the camera, buildings with windows, a road, warm patches).

Sensor model: raw 14-bit counts (uint16, like a thermal core), temporal noise,
fixed-pattern noise (column and row offsets, fixed per seed), a slow global drift,
then :func:`~streamcam.agc.agc_frame` to 8 bit.

Determinism and random access: ``frame(i)`` is a pure function of ``(seed, i)``.
Every moving object belongs to a *slot*; time is cut into episodes of
``episode_s`` seconds per slot, and each episode's parameters (start point,
velocity, heat, presence window) come from a generator seeded with
``(seed, slot, episode)``. Positions are analytic in time (straight walks, depth
reflected at the scene's near/far limits), so no state is carried between frames.

Speed: sprites are drawn once at a base resolution and resized per integer size
on first use (cached), the background (with fixed-pattern noise and static lamps)
is precomputed, temporal noise is a random window into a precomputed noise field.
A 640x480 frame renders in ~3 ms on one core (see ``tests/datasets/test_synthetic.py``).

Ground truth: one :class:`SceneObject` per object with at least ``min_visible`` of
its area inside the frame; its ``box`` is the tight box of the object's rendered
pixels (the visible part, clipped to the frame). Occlusion between objects is not
modelled in the boxes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import cv2
import numpy as np

from ..agc import agc_frame
from . import synthetic_classic as classic
from . import synthetic_lwir as lwir

LABELS = ("person", "car", "lamp", "animal")
_MAX_COUNTS = (1 << 14) - 1

# Geometry, for a frame of height H: focal length F = 1.25 H px, horizon at 0.25 H,
# camera 3.94 m above the ground. A 1.75 m person whose feet touch the bottom edge is
# 1/3 H tall (160 px at 480), one 42 m away is ~25 px tall.
_F_PER_H = 1.25
_HORIZON_PER_H = 0.25
_CAM_HEIGHT_M = 3.94
_PERSON_Z = (6.0, 42.0)

_STRIDE_M = 1.4
"""Metres a walker covers per gait cycle (the sprites' phases follow the walk)."""


@dataclass(frozen=True)
class SceneObject:
    """Ground truth for one object in one frame."""

    id: int
    """Stable while the object stays in the scene (one walk = one id)."""
    label: str
    """``person``, ``car``, ``lamp`` or ``animal``."""
    box: tuple[float, float, float, float]
    """x0, y0, x1, y1 in frame pixels (x1/y1 exclusive) of the visible part, clipped to the frame."""


@dataclass(frozen=True)
class SceneFrame:
    """One rendered frame: raw counts, the 8-bit image after AGC, and its ground truth."""

    index: int
    raw: np.ndarray
    """uint16 [H, W] radiometric counts (14-bit range)."""
    image: np.ndarray
    """uint8 [H, W] after AGC (1st / 99th percentile)."""
    objects: tuple[SceneObject, ...]

    @property
    def persons(self) -> tuple[SceneObject, ...]:
        return tuple(o for o in self.objects if o.label == "person")


def _reflect(z: float, lo: float, hi: float) -> float:
    """Fold ``z`` into [lo, hi] like a ball bouncing between walls (analytic in time)."""
    span = hi - lo
    u = (z - lo) % (2 * span)
    return lo + (u if u <= span else 2 * span - u)


# --------------------------------------------------------------------------- scene
@dataclass(frozen=True)
class _Walker:
    slot: int
    episode: int
    label: str
    xc: float  # world X (m) at time tc
    zc: float  # depth (m) at time tc
    vx: float
    vz: float
    tc: float
    t_in: float
    t_out: float
    heat: float  # counts above the local background for body heat 1.0
    size_m: float  # person height / car height / animal height (m)
    variant: int
    companions: tuple = ()  # lwir style: (dx m, dz m, variant) of people walking beside this one


class SyntheticIRScene:
    """Deterministic, random-access synthetic thermal surveillance scene with ground truth.

    Parameters (the knobs):
        width, height: frame size in pixels.
        seed: selects the background, fixed-pattern noise, lamp positions, and every
            trajectory; two scenes with the same arguments render identical frames.
        people: number of person slots. Each slot is occupied ``presence`` of the time
            (a walk of ``presence * episode_s`` seconds per episode), so frames hold
            0..people persons. ``people=0`` gives a scene that never has a person
            (negatives for training).
        confusers: number of confuser objects (cars, lamps, animals, kinds drawn per
            seed from ``confuser_kinds``). Lamps are static; cars and animals move.
        fps: frame rate; frame ``i`` shows time ``i / fps``.
        presence: fraction of the time a person slot is occupied.
        episode_s: length of one episode per slot (one walk, then absence).
        noise: temporal noise std (counts). A 14-bit core with NETD ~50 mK at
            ~40 counts/K gives ~20 counts.
        fixed_pattern: std of the per-column offsets (counts); rows get half of it.
        person_heat: (min, max) counts above background of a person's body (clothing
            and distance vary it).
        min_visible: an object is in the ground truth when at least this fraction of
            its area is inside the frame.
        agc_percentiles: (lo, hi) percentiles of the AGC.
        style: ``classic`` (the default look: smooth warm people on a cool plain ground, low
            camera) or ``lwir`` (real street LWIR, drawn per seed: sharp people with parts and
            clothing colder or warmer than the ground, riders, groups, warm busy ground with
            clutter, a high camera, AGC/gamma/blur and polarity; see
            :mod:`~streamcam.datasets.synthetic_lwir`). In ``lwir`` the sensor knobs (noise,
            fixed_pattern, agc_percentiles) come from the seed's draw.
        polarity: ``white`` (hot is bright), ``black`` (hot is dark: the 8-bit frame is
            255 - the white-hot one) or None: white for ``classic``, drawn per seed for ``lwir``.
    """

    def __init__(
        self,
        width: int = 640,
        height: int = 480,
        seed: int = 0,
        people: int = 4,
        confusers: int = 3,
        fps: float = 30.0,
        *,
        presence: float = 0.8,
        episode_s: float = 16.0,
        noise: float = 20.0,
        fixed_pattern: float = 25.0,
        person_heat: tuple[float, float] = (700.0, 1800.0),
        confuser_kinds: tuple[str, ...] = ("car", "lamp", "animal"),
        min_visible: float = 0.5,
        agc_percentiles: tuple[float, float] = (1.0, 99.0),
        style: str = "classic",
        polarity: str | None = None,
    ) -> None:
        if width < 64 or height < 48:
            raise ValueError(f"SyntheticIRScene: expected width >= 64 and height >= 48, got {width}x{height}")
        if people < 0 or confusers < 0:
            raise ValueError(f"SyntheticIRScene: expected people, confusers >= 0, got {people}, {confusers}")
        if not 0.0 < presence <= 1.0:
            raise ValueError(f"SyntheticIRScene: expected 0 < presence <= 1, got {presence}")
        if fps <= 0:
            raise ValueError(f"SyntheticIRScene: expected fps > 0, got {fps}")
        if style not in ("classic", "lwir"):
            raise ValueError(f"SyntheticIRScene: expected style 'classic' or 'lwir', got {style!r}")
        if polarity not in (None, "white", "black"):
            raise ValueError(f"SyntheticIRScene: expected polarity 'white', 'black' or None, got {polarity!r}")
        unknown = set(confuser_kinds) - {"car", "lamp", "animal"}
        if unknown or not confuser_kinds:
            raise ValueError(f"SyntheticIRScene: unknown confuser kinds {sorted(unknown)} (car, lamp, animal)")
        self.width, self.height, self.seed = int(width), int(height), int(seed)
        self.people, self.confusers, self.fps = int(people), int(confusers), float(fps)
        self.presence, self.episode_s = float(presence), float(episode_s)
        self.noise, self.fixed_pattern = float(noise), float(fixed_pattern)
        self.person_heat = (float(person_heat[0]), float(person_heat[1]))
        self.min_visible = float(min_visible)
        self.agc_percentiles = agc_percentiles
        self.style = style
        self.focal = _F_PER_H * self.height
        self.horizon = _HORIZON_PER_H * self.height
        self._cam_h, self._person_z = _CAM_HEIGHT_M, _PERSON_Z
        self.look: lwir.LwirLook | None = None
        self.polarity = polarity or "white"
        if style == "lwir":
            self.look = lwir.LwirLook.draw(np.random.default_rng([self.seed, 0xC7]), polarity)
            self.polarity = self.look.polarity
            self.noise, self.fixed_pattern, self.agc_percentiles = self.look.noise, self.look.fixed_pattern, self.look.agc
            self.horizon = self.look.horizon * self.height
            self._cam_h = self.look.cam_height
            # People from just below the bottom edge to the top edge (or 60 m away).
            near = self.focal * self._cam_h / (1.1 * self.height - self.horizon)
            far = self.focal * self._cam_h / (0.05 * self.height - self.horizon) if self.horizon < 0 else 60.0
            self._person_z = (float(near), float(min(max(far, near * 1.5), 60.0)))
        # Independent streams: the same seed with another ``people`` count keeps the same
        # background, confusers and trajectories of the remaining slots.
        krng = np.random.default_rng([self.seed, 0xA1])
        self._kinds = tuple(str(krng.choice(confuser_kinds)) for _ in range(self.confusers))
        self._phase = np.concatenate([
            np.random.default_rng([self.seed, 0xA2]).uniform(0, self.episode_s, size=self.people),
            np.random.default_rng([self.seed, 0xA3]).uniform(0, self.episode_s, size=self.confusers)])
        rng = np.random.default_rng([self.seed, 0xB6])
        if style == "lwir":
            self._background, self._static = self._make_background_lwir(rng)
        else:
            self._background, self._static = self._make_background(rng)
            classic.warm_sprites()
        pad = 32
        self._noise_field = (rng.standard_normal((self.height + pad, self.width + pad)) * self.noise).astype(
            np.float32)
        self._drift = (rng.uniform(0, 2 * np.pi), rng.uniform(40, 120))

    # ----------------------------------------------------------------- geometry
    def _project(self, x: float, z: float) -> tuple[float, float]:
        """World ground point (X, Z) -> image (x, y) of that point."""
        return self.width / 2 + self.focal * x / z, self.horizon + self.focal * self._cam_h / z

    def _half_view(self, z: float) -> float:
        return z * (self.width / 2) / self.focal

    # ----------------------------------------------------------------- background
    def _make_background_lwir(self, rng: np.random.Generator):
        h, w = self.height, self.width
        bg = lwir.background(rng, w, h)
        bg += (rng.standard_normal(w) * self.fixed_pattern).astype(np.float32)[None, :]
        bg += (rng.standard_normal(h) * self.fixed_pattern * 0.5).astype(np.float32)[:, None]
        return bg, ()

    def _make_background(self, rng: np.random.Generator):
        bg, lamps = classic.background(self, rng)
        return bg, tuple(SceneObject(id=100000 + i, label="lamp", box=box) for i, box in lamps)

    # ----------------------------------------------------------------- walkers
    def _walker(self, slot: int, t: float) -> _Walker | None:
        is_person = slot < self.people
        label = "person" if is_person else self._kinds[slot - self.people]
        if label == "lamp":
            return None
        tt = t + self._phase[slot]
        episode = int(np.floor(tt / self.episode_s))
        key = 1 + slot if is_person else 1000 + slot - self.people
        rng = np.random.default_rng([self.seed, key, episode & 0x7FFFFFFF])
        t0 = episode * self.episode_s - self._phase[slot]
        dur = self.presence * self.episode_s if is_person else self.episode_s
        t_in = t0 + rng.uniform(0, self.episode_s - dur)
        t_out = t_in + dur
        tc = rng.uniform(t_in, t_out)
        if label == "car":
            zc = rng.uniform(*classic.ROAD_Z)
            speed = 0.0 if rng.uniform() < 0.35 else rng.uniform(3.0, 11.0)
            ang = 0.0 if rng.uniform() < 0.5 else np.pi
            heat, size, variant = rng.uniform(300, 650), rng.uniform(1.4, 1.7), 0
        elif label == "animal":
            zc = 1.0 / rng.uniform(1 / 30.0, 1 / 7.0)
            speed, ang = rng.uniform(0.5, 2.5), rng.uniform(-0.4, 0.4) + (0 if rng.uniform() < 0.5 else np.pi)
            heat, size, variant = rng.uniform(600, 1500), rng.uniform(0.45, 0.75), 0
        else:
            zc = 1.0 / rng.uniform(1 / self._person_z[1], 1 / self._person_z[0])  # uniform in image height
            speed, ang = rng.uniform(0.0, 1.9), rng.uniform(0, 2 * np.pi)
            heat, size = rng.uniform(*self.person_heat), rng.uniform(1.55, 1.95)
            variant = int(rng.integers(0, 3))
        companions: tuple = ()
        if label == "person" and self.look is not None:
            lrng = np.random.default_rng([self.seed, key, episode & 0x7FFFFFFF, 0x1F])
            heat = lrng.uniform(*self.look.skin_heat)
            if lrng.uniform() < self.look.rider:
                variant = int(lrng.choice(lwir.RIDER_VARIANTS))
                speed = lrng.uniform(2.5, 6.0)
            else:
                variant = int(lrng.integers(0, lwir.WALK_VARIANTS))
                if lrng.uniform() < self.look.group:
                    companions = tuple((float(sgn * k * lrng.uniform(0.45, 0.8)), float(lrng.uniform(-0.6, 0.6)),
                                        int(lrng.integers(0, lwir.WALK_VARIANTS)))
                                       for k, sgn in zip(range(1, int(lrng.integers(1, 3)) + 1), (1, -1)))
        xc = rng.uniform(-0.9, 0.9) * self._half_view(zc)
        # Cars keep to their lane (no depth motion); people and animals walk on the plane.
        vx, vz = speed * np.cos(ang), (speed * np.sin(ang) if label != "car" else 0.0)
        return _Walker(slot, episode, label, xc, zc, vx, vz, tc, t_in, t_out, heat, size, variant, companions)

    def _place(self, wk: _Walker, t: float):
        """Sprite, top-left corner and amplitude of a walker at time t (None if absent)."""
        if not wk.t_in <= t < wk.t_out:
            return None
        dt = t - wk.tc
        lo, hi = (classic.ROAD_Z if wk.label == "car" else self._person_z)
        z = _reflect(wk.zc + wk.vz * dt, lo, hi)
        xw = wk.xc + wk.vx * dt
        fx, fy = self._project(xw, z)
        size_px = int(round(self.focal * wk.size_m / z))
        speed = float(np.hypot(wk.vx, wk.vz))
        phase = int((abs(dt) * speed / _STRIDE_M * classic.GAIT_PHASES)) % classic.GAIT_PHASES if speed > 0.05 else 0
        if wk.label == "person":
            size_px = classic.quantize_px(int(np.clip(size_px, 16, 240)))
            spr, tb = classic.person_sprite(wk.variant, phase, size_px)
            bottom_pad = spr.shape[0] - (tb[3])
        elif wk.label == "car":
            spr, tb = classic.car_sprite(classic.quantize_px(int(np.clip(size_px, 6, 200))), wk.vx < 0)
            bottom_pad = spr.shape[0] - tb[3]
        else:
            spr, tb = classic.animal_sprite(classic.quantize_px(int(np.clip(size_px, 4, 120))), phase, wk.vx < 0)
            bottom_pad = spr.shape[0] - tb[3]
        x0 = int(round(fx - spr.shape[1] / 2))
        y0 = int(round(fy - spr.shape[0] + bottom_pad))
        return spr, tb, x0, y0, wk.heat

    def _place_lwir(self, wk: _Walker, t: float):
        """lwir style: ``[(sprite, part values, heat, x0, y0, id offset), ...]`` for a walker and company."""
        if not wk.t_in <= t < wk.t_out:
            return []
        dt = t - wk.tc
        speed = float(np.hypot(wk.vx, wk.vz))
        phase = int((abs(dt) * speed / _STRIDE_M * classic.GAIT_PHASES)) % classic.GAIT_PHASES if speed > 0.05 else 0
        z0 = _reflect(wk.zc + wk.vz * dt, *self._person_z)
        flip = wk.vx < 0
        out = []
        vrng = np.random.default_rng([self.seed, wk.slot, wk.episode & 0x7FFFFFFF, 0x2E])
        for k, (dx, dz, variant) in enumerate(((0.0, 0.0, wk.variant),) + tuple(wk.companions)):
            values = lwir.person_values(vrng)
            heat = wk.heat * (1.0 if k == 0 else vrng.uniform(0.8, 1.2))
            size_m = wk.size_m * (1.0 if k == 0 else vrng.uniform(0.88, 1.08))
            z = max(self._person_z[0] * 0.8, z0 + dz)
            fx, fy = self._project(wk.xc + wk.vx * dt + dx, z)
            if variant in lwir.RIDER_VARIANTS:
                size_m *= 1.1  # the wheel below the rider
            size_px = classic.quantize_px(int(np.clip(self.focal * size_m / z, 12, 0.45 * self.height)))
            spr = lwir.person_sprite(int(variant), (phase + 3 * k) % classic.GAIT_PHASES, size_px, flip)
            bottom_pad = spr[0].shape[0] - spr[2][3]
            x0 = int(round(fx - spr[0].shape[1] / 2))
            y0 = int(round(fy - spr[0].shape[0] + bottom_pad))
            out.append((spr, values, heat, x0, y0, k))
        return out

    def _render_lwir(self, buf: np.ndarray, t: float) -> list[SceneObject]:
        """People (max-free, part-wise compositing) and moving confusers of the lwir style, far to near."""
        placed = []
        for slot in range(self.people + self.confusers):
            wk = self._walker(slot, t)
            if wk is None:
                continue
            if wk.label == "person":
                for item in self._place_lwir(wk, t):
                    placed.append((item[4] + item[0][0].shape[0], wk, item))
            else:
                p = self._place(wk, t)
                if p is not None:
                    placed.append((p[3] + p[0].shape[0], wk, p))
        placed.sort(key=lambda item: item[0])
        objects: list[SceneObject] = []
        for _, wk, item in placed:
            if wk.label == "person":
                spr, values, heat, x0, y0, k = item
                lwir.composite_person(buf, spr, values, heat, x0, y0)
                tb = spr[2]
                oid = wk.episode * 2000 + wk.slot + (10_000_000 + 4 * (wk.episode * 2000 + wk.slot) + k if k else 0)
            else:
                spr, tb, x0, y0, heat = item
                if not self._composite(buf, spr, x0, y0, heat):
                    continue
                oid = wk.episode * 2000 + 1000 + wk.slot - self.people
            box = self._visible_box(x0, y0, tb)
            if box is not None:
                objects.append(SceneObject(oid, wk.label, box))
        return objects

    # ----------------------------------------------------------------- rendering
    def frame(self, index: int) -> SceneFrame:
        """Render frame ``index`` (any non-negative integer, in any order)."""
        if index < 0:
            raise ValueError(f"SyntheticIRScene.frame: expected index >= 0, got {index}")
        t = index / self.fps
        buf = self._background.copy()
        if self.look is not None:
            return self._finish(index, t, buf, self._render_lwir(buf, t))
        placed = []
        for slot in range(self.people + self.confusers):
            wk = self._walker(slot, t)
            if wk is None:
                continue
            p = self._place(wk, t)
            if p is not None:
                placed.append((wk, p))
        # Nearer objects are drawn last; max-compositing over the local background
        # makes a warm body hide what is behind it instead of adding heat.
        placed.sort(key=lambda item: item[1][3] + item[1][0].shape[0])
        objects: list[SceneObject] = list(self._static)
        for wk, (spr, tb, x0, y0, heat) in placed:
            if not self._composite(buf, spr, x0, y0, heat):
                continue
            box = self._visible_box(x0, y0, tb)
            if box is not None:
                oid = wk.episode * 2000 + (wk.slot if wk.label == "person" else 1000 + wk.slot - self.people)
                objects.append(SceneObject(oid, wk.label, box))
        return self._finish(index, t, buf, objects)

    def _composite(self, buf: np.ndarray, spr: np.ndarray, x0: int, y0: int, heat: float) -> bool:
        """Max-composite a sprite's heat over the local background at ``(x0, y0)``; False if it is off-frame."""
        h, w = self.height, self.width
        sh, sw = spr.shape
        ax0, ay0, ax1, ay1 = max(x0, 0), max(y0, 0), min(x0 + sw, w), min(y0 + sh, h)
        if ax1 <= ax0 or ay1 <= ay0:
            return False
        region = buf[ay0:ay1, ax0:ax1]
        sub = spr[ay0 - y0:ay1 - y0, ax0 - x0:ax1 - x0]
        np.maximum(region, self._background[ay0:ay1, ax0:ax1] + np.float32(heat / 255.0) * sub, out=region)
        return True

    def _visible_box(self, x0: int, y0: int, tb) -> tuple[float, float, float, float] | None:
        """The sprite's object box clipped to the frame, or None when too little of it is visible."""
        h, w = self.height, self.width
        bx0, by0, bx1, by1 = x0 + tb[0], y0 + tb[1], x0 + tb[2], y0 + tb[3]
        cx0, cy0, cx1, cy1 = max(bx0, 0), max(by0, 0), min(bx1, w), min(by1, h)
        if cx1 <= cx0 or cy1 <= cy0:
            return None
        visible = (cx1 - cx0) * (cy1 - cy0) / float((bx1 - bx0) * (by1 - by0))
        return (float(cx0), float(cy0), float(cx1), float(cy1)) if visible >= self.min_visible else None

    def _finish(self, index: int, t: float, buf: np.ndarray, objects: list[SceneObject]) -> SceneFrame:
        """Sensor: (lwir: optics blur), temporal noise, drift, 14-bit clip, AGC, (gamma,) polarity."""
        h, w = self.height, self.width
        if self.look is not None and self.look.blur > 0:
            buf = cv2.GaussianBlur(buf, (0, 0), self.look.blur * h / 512.0)
        rng = np.random.default_rng([self.seed, 0x5EED, index])
        oy, ox = rng.integers(0, self._noise_field.shape[0] - h + 1), rng.integers(0, self._noise_field.shape[1] - w + 1)
        buf += self._noise_field[oy:oy + h, ox:ox + w]
        buf += np.float32(self._drift[1] * np.sin(self._drift[0] + 2 * np.pi * t / 60.0))
        np.clip(buf, 0, _MAX_COUNTS, out=buf)
        raw = buf.astype(np.uint16)
        image = agc_frame(raw, *self.agc_percentiles)
        if self.look is not None:
            image = lwir.display(image, self.look)
        elif self.polarity == "black":
            image = 255 - image
        return SceneFrame(index=int(index), raw=raw, image=image, objects=tuple(objects))

    def __iter__(self) -> Iterator[SceneFrame]:
        i = 0
        while True:
            yield self.frame(i)
            i += 1
