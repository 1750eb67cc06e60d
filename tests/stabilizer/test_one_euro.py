import numpy as np
import pytest

from streamcam.stabilizer.one_euro import OneEuroFilter, one_euro_reference


@pytest.mark.parametrize("min_cutoff,beta,d_cutoff", [(1.0, 0.0, 1.0), (0.5, 0.05, 1.0), (3.0, 0.5, 2.0)])
def test_vectorised_filter_matches_the_reference(min_cutoff, beta, d_cutoff):
    rng = np.random.default_rng(0)
    ts = np.cumsum(rng.uniform(0.02, 0.05, 100))  # irregular frame times
    xs = rng.normal(0, 3, (100, 4)) + np.linspace(0, 100, 100)[:, None] * np.array([1, -1, 0.2, 0])
    f = OneEuroFilter(min_cutoff, beta, d_cutoff)
    out = np.array([f(x, t) for x, t in zip(xs, ts)])
    for k in range(4):
        ref = one_euro_reference(xs[:, k], ts, min_cutoff, beta, d_cutoff)
        assert np.allclose(out[:, k], ref, rtol=1e-12, atol=1e-9)


def test_still_signal_jitter_is_reduced():
    rng = np.random.default_rng(2)
    ts = np.arange(300) / 30
    xs = 50 + rng.normal(0, 2, 300)
    ys = np.array(one_euro_reference(xs, ts, 1.0, 0.0))
    assert np.std(np.diff(ys[30:])) < np.std(np.diff(xs[30:])) / 4


def test_beta_reduces_lag_on_fast_motion():
    ts = np.arange(60) / 30
    xs = 300 * ts  # 300 px/s ramp
    lag_slow = xs[-1] - one_euro_reference(xs, ts, 1.0, 0.0)[-1]
    lag_fast = xs[-1] - one_euro_reference(xs, ts, 1.0, 0.1)[-1]
    assert lag_slow > 20 and lag_fast < lag_slow / 3


def test_first_sample_passes_and_zero_dt_is_ignored():
    f = OneEuroFilter()
    assert np.array_equal(f([1.0, 2.0], 0.0), [1.0, 2.0])
    assert np.array_equal(f([9.0, 9.0], 0.0), [1.0, 2.0])
    y = f([3.0, 4.0], 0.1)
    assert np.all((y > [1.0, 2.0]) & (y < [3.0, 4.0]))


def test_parameter_validation():
    with pytest.raises(ValueError):
        OneEuroFilter(min_cutoff=0)
