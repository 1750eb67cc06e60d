"""Constant-velocity Kalman filter on boxes ``(cx, cy, w, h)``: the motion model of the tracks.

State ``x = [cx, cy, w, h, vcx, vcy, vw, vh]`` (pixels and pixels/second); measurement
``z = [cx, cy, w, h]`` (``H = [I4 0]``). Time is in seconds, so a dropped frame is just
a longer ``dt``.

Model (per axis, continuous white-noise acceleration, Bar-Shalom's "CWNA")::

    F(dt) = [[I, dt I], [0, I]]
    Q(dt) = diag(q)^2 kron [[dt^4/4, dt^3/2], [dt^3/2, dt^2]]
    predict:  x <- F x,                P <- F P F' + Q
    update:   S = H P H' + R,  K = P H' S^-1,
              x <- x + K (z - H x),    P <- (I - K H) P (I - K H)' + K R K'   (Joseph form)

Noise parameters (:class:`KalmanNoise`):

* ``accel_std`` (px/s^2): how hard the centre may accelerate. People walk at nearly
  constant velocity; the CAM peak sways with the gait, which this also absorbs.
* ``size_accel_std`` (px/s^2): how fast the box size may change its rate (perspective
  growth as people approach; CAM blob breathing).
* ``accel_std_rel`` and ``size_accel_std_rel`` (1/s^2, times the box height): the same, in
  proportion to the object. A person 300 px tall near the camera accelerates ten times as many
  pixels as one 30 px tall far away; absolute noise fitted to one lags the other (measured on
  TUD-Campus, docs/benchmarks.md). DeepSORT scales its process noise by the box height the same
  way (Wojke, Bewley & Paulus, ICIP 2017). Zero by default: absolute noise only.
* ``meas_std`` (px) + ``meas_std_rel`` x size: standard deviation of a measured centre
  (CAM boxes are quantised by the feature stride, ~8 px at 640x480, and grow noisier
  with the object); ``size_meas_std`` + ``size_meas_std_rel`` x size for width/height
  (CAM box extents jitter more than centres).
* ``init_velocity_std`` (px/s): uncertainty of the velocity of a new track (unknown;
  walking people move up to ~150 px/s in a 640x480 frame).

The functions are vectorised over ``N`` filters (``x [N, 8]``, ``P [N, 8, 8]``), so the
stabilizer predicts and updates all its tracks in one call. :class:`KalmanBoxFilter` wraps
one filter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_H_EYE = np.eye(8)


@dataclass(frozen=True)
class KalmanNoise:
    """Noise parameters of the constant-velocity box filter (units: px, s)."""

    accel_std: float = 60.0
    """Centre acceleration std (px/s^2): larger follows turns faster, smooths less."""
    size_accel_std: float = 30.0
    """Width/height acceleration std (px/s^2)."""
    meas_std: float = 3.0
    """Measured centre std (px), the size-independent part."""
    meas_std_rel: float = 0.05
    """Measured centre std as a fraction of the box side (added to ``meas_std``)."""
    size_meas_std: float = 4.0
    """Measured width/height std (px), the size-independent part."""
    size_meas_std_rel: float = 0.1
    """Measured width/height std as a fraction of that side."""
    init_velocity_std: float = 80.0
    """Velocity std (px/s) of a newly created track."""
    accel_std_rel: float = 0.0
    """Centre acceleration std per pixel of box height (1/s^2), added to ``accel_std``."""
    size_accel_std_rel: float = 0.0
    """Width/height acceleration std per pixel of box height (1/s^2), added to ``size_accel_std``."""

    def __post_init__(self) -> None:
        for name in ("accel_std", "size_accel_std", "meas_std", "meas_std_rel", "size_meas_std",
                     "size_meas_std_rel", "init_velocity_std", "accel_std_rel", "size_accel_std_rel"):
            v = getattr(self, name)
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"KalmanNoise.{name}: expected a finite number >= 0, got {v}")
        if self.meas_std <= 0 or self.size_meas_std <= 0:
            raise ValueError(f"KalmanNoise: expected meas_std > 0 and size_meas_std > 0, "
                             f"got {self.meas_std}, {self.size_meas_std}")


def box_to_z(boxes: np.ndarray) -> np.ndarray:
    """``[..., 4]`` boxes ``(x0, y0, x1, y1)`` -> ``(cx, cy, w, h)``."""
    b = np.asarray(boxes, dtype=np.float64)
    return np.stack([(b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2,
                     b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]], axis=-1)


def z_to_box(z: np.ndarray) -> np.ndarray:
    """``[..., 4]`` ``(cx, cy, w, h)`` -> boxes ``(x0, y0, x1, y1)`` (w, h clipped at >= 1 px)."""
    z = np.asarray(z, dtype=np.float64)
    w = np.maximum(z[..., 2], 1.0) / 2
    h = np.maximum(z[..., 3], 1.0) / 2
    return np.stack([z[..., 0] - w, z[..., 1] - h, z[..., 0] + w, z[..., 1] + h], axis=-1)


def measurement_cov(z: np.ndarray, noise: KalmanNoise) -> np.ndarray:
    """Diagonal measurement covariance ``R [N, 4, 4]`` for measurements ``z [N, 4]``."""
    w = np.maximum(z[:, 2], 1.0)
    h = np.maximum(z[:, 3], 1.0)
    std = np.stack([noise.meas_std + noise.meas_std_rel * w, noise.meas_std + noise.meas_std_rel * h,
                    noise.size_meas_std + noise.size_meas_std_rel * w,
                    noise.size_meas_std + noise.size_meas_std_rel * h], axis=1)
    r = np.zeros((z.shape[0], 4, 4))
    idx = np.arange(4)
    r[:, idx, idx] = std ** 2
    return r


def initiate(z: np.ndarray, noise: KalmanNoise) -> tuple[np.ndarray, np.ndarray]:
    """New filters from first measurements ``z [N, 4]``: zero velocity, ``P`` from R and ``init_velocity_std``."""
    z = np.asarray(z, dtype=np.float64).reshape(-1, 4)
    n = z.shape[0]
    x = np.zeros((n, 8))
    x[:, :4] = z
    p = np.zeros((n, 8, 8))
    p[:, :4, :4] = measurement_cov(z, noise)
    idx = np.arange(4, 8)
    p[:, idx, idx] = noise.init_velocity_std ** 2
    return x, p


def transition(dt: float) -> np.ndarray:
    f = np.eye(8)
    f[np.arange(4), np.arange(4, 8)] = dt
    return f


def process_cov(dt: float, noise: KalmanNoise, heights: np.ndarray | None = None) -> np.ndarray:
    """``Q(dt)``, continuous white-noise acceleration per axis: ``[8, 8]``, or ``[N, 8, 8]`` for
    filters of box heights ``heights [N]`` (the relative terms scale with each one's)."""
    i = np.arange(4)
    if heights is None:  # the absolute model: one Q for every filter (the default, on the hot path)
        q = np.array([noise.accel_std, noise.accel_std, noise.size_accel_std, noise.size_accel_std]) ** 2
        out = np.zeros((8, 8))
        out[i, i] = q * dt ** 4 / 4
        out[i, i + 4] = out[i + 4, i] = q * dt ** 3 / 2
        out[i + 4, i + 4] = q * dt ** 2
        return out
    h = np.maximum(np.asarray(heights, np.float64), 1.0)
    c = noise.accel_std + noise.accel_std_rel * h
    s = noise.size_accel_std + noise.size_accel_std_rel * h
    q = np.stack([c, c, s, s], axis=-1) ** 2  # [N, 4]
    # [N, 8, 8]: the same blocks, per filter (a dense einsum, not fancy indexing per filter)
    block = np.array([[dt ** 4 / 4, dt ** 3 / 2], [dt ** 3 / 2, dt ** 2]])
    out = np.zeros((len(q), 2, 4, 2, 4))
    out[:, :, i, :, i] = np.einsum("nk,ab->knab", q, block)
    return out.reshape(len(q), 8, 8)


def predict(x: np.ndarray, p: np.ndarray, dt: float, noise: KalmanNoise) -> tuple[np.ndarray, np.ndarray]:
    """Predict ``N`` filters ``dt`` seconds ahead: ``(F x, F P F' + Q)``."""
    if dt <= 0 or x.shape[0] == 0:
        return x, p
    f = transition(dt)
    relative = noise.accel_std_rel > 0 or noise.size_accel_std_rel > 0
    q = process_cov(dt, noise, x[:, 3] if relative else None)
    return x @ f.T, f @ p @ f.T + q


def update(x: np.ndarray, p: np.ndarray, z: np.ndarray, noise: KalmanNoise) -> tuple[np.ndarray, np.ndarray]:
    """Correct ``N`` filters with measurements ``z [N, 4]`` (Joseph-form covariance update)."""
    if x.shape[0] == 0:
        return x, p
    z = np.asarray(z, dtype=np.float64)
    r = measurement_cov(z, noise)
    s = p[:, :4, :4] + r
    # K = P H' S^-1  <=>  K' = S^-1 (H P)   (S and P symmetric)
    k = np.linalg.solve(s, p[:, :4, :]).transpose(0, 2, 1)  # [N, 8, 4]
    x = x + np.einsum("nij,nj->ni", k, z - x[:, :4])
    ikh = _H_EYE - np.concatenate([k, np.zeros_like(k)], axis=2)  # I - K H
    p = ikh @ p @ ikh.transpose(0, 2, 1) + k @ r @ k.transpose(0, 2, 1)
    return x, p


class KalmanBoxFilter:
    """One constant-velocity box filter: ``predict(dt)``, ``update(box)``, ``box``, ``velocity``."""

    def __init__(self, box, noise: KalmanNoise | None = None) -> None:
        self.noise = noise or KalmanNoise()
        self.x, self.P = initiate(box_to_z(np.asarray(box, dtype=np.float64))[None], self.noise)

    def predict(self, dt: float) -> np.ndarray:
        self.x, self.P = predict(self.x, self.P, dt, self.noise)
        return self.box

    def update(self, box) -> np.ndarray:
        self.x, self.P = update(self.x, self.P, box_to_z(np.asarray(box, dtype=np.float64))[None], self.noise)
        return self.box

    @property
    def box(self) -> np.ndarray:
        """Current estimate ``(x0, y0, x1, y1)``."""
        return z_to_box(self.x[0, :4])

    @property
    def state(self) -> np.ndarray:
        """``[cx, cy, w, h, vcx, vcy, vw, vh]``."""
        return self.x[0].copy()

    @property
    def velocity(self) -> np.ndarray:
        """Centre velocity ``(vx, vy)`` in px/s."""
        return self.x[0, 4:6].copy()
