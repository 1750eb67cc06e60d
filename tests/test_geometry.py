"""streamcam.geometry: the all-pairs IoU is the one-pair formula, on random and degenerate boxes."""

import numpy as np
import pytest

from streamcam.geometry import iou, iou_matrix


def _boxes(rng, n):
    xy = rng.uniform(0, 100, (n, 2))
    wh = rng.uniform(0, 40, (n, 2)) * (rng.random((n, 1)) > 0.1)  # some empty boxes
    return np.concatenate([xy, xy + wh], axis=1)


@pytest.mark.parametrize("seed", range(5))
def test_iou_matrix_is_iou_of_every_pair(seed):
    rng = np.random.default_rng(seed)
    a, b = _boxes(rng, 7), _boxes(rng, 5)
    ref = np.array([[iou(p, q) for q in b] for p in a])
    np.testing.assert_allclose(iou_matrix(a, b), ref, rtol=1e-12, atol=1e-15)


def test_iou_values_and_shapes():
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert iou((0, 0, 10, 10), (10, 0, 20, 10)) == 0.0  # touching: x1 is exclusive
    assert iou((3, 3, 3, 3), (3, 3, 3, 3)) == 0.0  # empty union
    assert iou_matrix(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
