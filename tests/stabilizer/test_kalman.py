import numpy as np
import pytest

from streamcam.stabilizer import kalman
from streamcam.stabilizer.kalman import KalmanBoxFilter, KalmanNoise, box_to_z, measurement_cov


def box_at(t, v=(60.0, -20.0), size=(30.0, 80.0), start=(100.0, 300.0)):
    cx, cy = start[0] + v[0] * t, start[1] + v[1] * t
    return np.array([cx - size[0] / 2, cy - size[1] / 2, cx + size[0] / 2, cy + size[1] / 2])


def test_constant_velocity_prediction_error_goes_to_zero():
    dt = 1 / 30
    kf = KalmanBoxFilter(box_at(0))
    errors, traces = [], []
    for i in range(1, 90):
        pred = kf.predict(dt)
        errors.append(np.abs(pred - box_at(i * dt)).max())
        kf.update(box_at(i * dt))
        traces.append(np.trace(kf.P[0]))
    assert errors[0] > 1.5  # starts with zero velocity: a 2 px lag
    assert max(errors[-10:]) < 0.05
    assert np.allclose(kf.velocity, (60, -20), atol=0.5)
    assert traces[-1] < traces[0] / 3  # covariance shrinks
    assert np.all(np.diff(traces[20:]) <= 1e-9)  # and settles monotonically


def test_covariance_grows_while_coasting_and_stays_symmetric():
    kf = KalmanBoxFilter(box_at(0))
    for i in range(1, 30):
        kf.predict(1 / 30)
        kf.update(box_at(i / 30))
    p0 = np.trace(kf.P[0])
    for _ in range(5):
        kf.predict(1 / 30)
    assert np.trace(kf.P[0]) > p0
    assert np.allclose(kf.P[0], kf.P[0].T)
    assert np.all(np.linalg.eigvalsh(kf.P[0]) > 0)


def test_noisy_measurements_are_smoothed():
    rng = np.random.default_rng(1)
    kf = KalmanBoxFilter(box_at(0))
    err_in, err_out = [], []
    for i in range(1, 200):
        kf.predict(1 / 30)
        truth = box_at(i / 30)
        z = truth + rng.normal(0, 4, 4)
        est = kf.update(z)
        if i > 30:
            err_in.append(np.abs(z - truth).mean())
            err_out.append(np.abs(est - truth).mean())
    assert np.mean(err_out) < 0.6 * np.mean(err_in)


def test_batched_matches_single_filters():
    noise = KalmanNoise()
    boxes = np.array([box_at(0), box_at(0, size=(10, 20), start=(5, 5))])
    x, p = kalman.initiate(kalman.box_to_z(boxes), noise)
    singles = [KalmanBoxFilter(b, noise) for b in boxes]
    for i in range(1, 5):
        x, p = kalman.predict(x, p, 0.04, noise)
        zs = np.array([box_at(i * 0.04), box_at(i * 0.04, size=(10, 20), start=(5, 5))])
        x, p = kalman.update(x, p, kalman.box_to_z(zs), noise)
        for f, z in zip(singles, zs):
            f.predict(0.04)
            f.update(z)
    for k, f in enumerate(singles):
        assert np.allclose(x[k], f.x[0]) and np.allclose(p[k], f.P[0])


def test_box_conversions_round_trip():
    b = np.array([[1.0, 2.0, 11.0, 42.0]])
    assert np.allclose(kalman.z_to_box(kalman.box_to_z(b)), b)


def test_noise_validation():
    with pytest.raises(ValueError, match="meas_std"):
        KalmanNoise(meas_std=0)


def test_filter_matches_filterpy_on_a_dropped_frame_sequence():
    """filterpy's KalmanFilter (Labbe's reference implementation) run with the same model — F(dt),
    Q from its Q_discrete_white_noise per axis, H = [I 0], R per measurement — gives the same states
    and covariances, through uneven dt (dropped frames) and coasting."""
    filterpy = pytest.importorskip("filterpy.kalman")
    from filterpy.common import Q_discrete_white_noise

    noise = KalmanNoise()
    rng = np.random.default_rng(3)
    first = box_at(0.0)
    ours = KalmanBoxFilter(first, noise)
    ref = filterpy.KalmanFilter(dim_x=8, dim_z=4)
    ref.x, ref.P = ours.state.reshape(8, 1), ours.P[0].copy()
    ref.H = np.hstack([np.eye(4), np.zeros((4, 4))])
    q = [noise.accel_std ** 2, noise.accel_std ** 2, noise.size_accel_std ** 2, noise.size_accel_std ** 2]
    t = 0.0
    for k, dt in enumerate([1 / 30, 1 / 30, 2 / 30, 1 / 30, 5 / 30, 1 / 30, 1 / 15, 1 / 30] * 3):
        t += dt
        ref.F = np.eye(8) + np.eye(8, k=4) * dt
        ref.Q = np.zeros((8, 8))
        for axis, var in enumerate(q):  # each axis' (position, velocity) block, in this state's order
            block = Q_discrete_white_noise(dim=2, dt=dt, var=var)
            ref.Q[np.ix_([axis, axis + 4], [axis, axis + 4])] = block
        ours.predict(dt)
        ref.predict()
        np.testing.assert_allclose(ours.state, ref.x[:, 0], rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(ours.P[0], ref.P, rtol=1e-9, atol=1e-9)
        if k % 5 == 4:
            continue  # a frame without a measurement: the filter coasts
        box = np.asarray(box_at(t)) + rng.normal(0, 3, 4)
        z = box_to_z(box)
        ours.update(box)
        ref.update(z.reshape(4, 1), R=measurement_cov(z[None], noise)[0])
        np.testing.assert_allclose(ours.state, ref.x[:, 0], rtol=1e-9, atol=1e-6)
        np.testing.assert_allclose(ours.P[0], ref.P, rtol=1e-9, atol=1e-6)


def test_relative_process_noise_scales_with_each_box_and_matches_the_absolute_filter_at_its_height():
    """With ``accel_std_rel`` a filter of a box h px tall predicts as an absolute-noise filter with
    ``accel_std + accel_std_rel * h`` would: a near person's box may swing ten times as many pixels
    as a far one's, in one batched call."""
    rel = KalmanNoise(accel_std=10.0, accel_std_rel=2.0, size_accel_std=5.0, size_accel_std_rel=0.5)
    boxes = np.array([box_at(0, size=(12, 30)), box_at(0, size=(120, 300), start=(300, 50))])
    x, p = kalman.initiate(kalman.box_to_z(boxes), rel)
    x2, p2 = kalman.predict(x, p, 0.1, rel)
    for k, h in enumerate((30.0, 300.0)):
        same = KalmanNoise(accel_std=10.0 + 2.0 * h, size_accel_std=5.0 + 0.5 * h)
        xa, pa = kalman.predict(x[k:k + 1], p[k:k + 1], 0.1, same)
        np.testing.assert_allclose(x2[k], xa[0]) and np.testing.assert_allclose(p2[k], pa[0])
    # the tall box's process noise is (610 / 70)^2 times the short one's
    q = kalman.process_cov(0.1, rel, x[:, 3])
    assert q[1, 0, 0] / q[0, 0, 0] == pytest.approx((10 + 2 * 300) ** 2 / (10 + 2 * 30) ** 2, rel=1e-9)
    # zero relative terms: the absolute filter, unchanged
    assert np.allclose(kalman.process_cov(0.1, KalmanNoise()), kalman.process_cov(0.1, KalmanNoise(), np.ones(1))[0])
    with pytest.raises(ValueError, match="accel_std_rel"):
        KalmanNoise(accel_std_rel=-1.0)
