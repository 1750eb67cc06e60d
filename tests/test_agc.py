import numpy as np
import pytest

from streamcam.agc import AGC, agc_frame, clip_limits
from streamcam.errors import SourceError


def test_agc_maps_percentiles_to_full_range():
    rng = np.random.default_rng(0)
    raw = rng.integers(7000, 9000, size=(120, 160)).astype(np.uint16)
    out = agc_frame(raw, 1, 99)
    assert out.dtype == np.uint8 and out.shape == raw.shape
    assert out.min() == 0 and out.max() == 255
    # About 1 % of pixels at or below lo, 1 % at or above hi.
    assert 0.005 < np.mean(out == 0) < 0.03
    assert 0.005 < np.mean(out == 255) < 0.03


def test_histogram_limits_agree_with_numpy_percentile():
    rng = np.random.default_rng(1)
    raw = (rng.normal(8000, 300, size=(240, 320))).astype(np.uint16)
    lo, hi = clip_limits(raw, 1, 99)
    ref = np.percentile(raw[::2, ::2], [1, 99])
    assert abs(lo - ref[0]) <= 1 and abs(hi - ref[1]) <= 1


def test_hot_outliers_saturate_instead_of_compressing():
    raw = np.full((100, 100), 8000, np.uint16)
    raw[:, 50:] = 8200
    raw[0, :5] = 16000  # a lamp: 0.05 % of pixels
    out = agc_frame(raw)
    assert out[50, 10] == 0 and out[50, 60] == 255


def test_float_frames_are_accepted():
    raw = np.linspace(0, 1, 64 * 48, dtype=np.float32).reshape(48, 64)
    out = agc_frame(raw, 0, 100)
    assert out[0, 0] == 0 and out[-1, -1] == 255


@pytest.mark.parametrize("bad, what", [
    (np.array([[1.0, np.nan], [2.0, 3.0]], np.float32), "NaN"),
    (np.zeros((0, 10), np.uint16), "non-empty"),
    (np.zeros((4, 4), np.int16), "dtype"),
    (np.zeros((4, 4), np.uint32), "dtype"),
    (np.zeros((4, 4, 3), np.uint16), "2-D"),
    ([[1, 2], [3, 4]], "numpy array"),
])
def test_bad_frames_raise_source_error(bad, what):
    with pytest.raises(SourceError, match=what):
        agc_frame(bad)
    with pytest.raises(SourceError, match=what):
        AGC()(bad)


def test_agc_smoothing_avoids_pumping():
    rng = np.random.default_rng(2)
    base = rng.integers(7000, 8000, size=(60, 80)).astype(np.uint16)
    agc = AGC(smoothing=0.1)
    agc(base)
    lo0, hi0 = agc.limits
    hot = base.copy()
    hot[:20, :] = 15000  # a large hot object enters: the raw 99th percentile jumps
    agc(hot)
    lo1, hi1 = agc.limits
    target_hi = clip_limits(hot, 1, 99)[1]
    assert hi1 == pytest.approx(hi0 + 0.1 * (target_hi - hi0))
    for _ in range(100):
        agc(hot)
    assert agc.limits[1] == pytest.approx(target_hi, rel=1e-3)
    agc.reset()
    assert agc.limits is None


def test_agc_rejects_bad_settings():
    with pytest.raises(ValueError):
        AGC(lo_pct=50, hi_pct=10)
    with pytest.raises(ValueError):
        AGC(smoothing=0)
