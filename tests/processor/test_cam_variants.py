"""Top-k, chosen-class and difference CAMs against the definition M_c = sum_k W[c, k] f_k."""

import numpy as np
import pytest

from streamcam.processor.cam import class_activation_map
from streamcam.processor.cam_variants import cams_for, class_cam, difference_cam, top_k_cams, top_k_classes

from _tolerance import assert_close_f32, cam_bound, cam_logit_bound


@pytest.fixture
def head():
    rng = np.random.default_rng(0)
    f = np.maximum(rng.normal(size=(3, 16, 5, 7)), 0).astype(np.float32)
    w = rng.normal(size=(10, 16)).astype(np.float32)
    b = rng.normal(size=10).astype(np.float32)
    logits = f.mean(axis=(2, 3)) @ w.T + b
    return f, w, b, logits


def test_top_k_classes_order():
    logits = np.array([[0.1, 3.0, 2.0, 3.0], [5.0, -1.0, 0.0, 1.0]])
    np.testing.assert_array_equal(top_k_classes(logits, 3), [[1, 3, 2], [0, 3, 2]])
    assert top_k_classes(logits, 10).shape == (2, 4)
    with pytest.raises(ValueError):
        top_k_classes(logits[0], 1)


def test_top_k_cams_are_the_per_sample_class_maps(head):
    f, w, b, logits = head
    idx, cams = top_k_cams(logits, f, w, k=5)
    assert idx.shape == (3, 5) and cams.shape == (3, 5, 5, 7)
    full = class_activation_map(f, w)
    for n in range(3):
        # A matmul of other shapes may block and order its float32 sums otherwise.
        assert_close_f32(cams[n], full[n, idx[n]], **cam_bound(f[n:n + 1], w))
        # the identity that makes them explanations: mean + bias = logit, best first
        assert_close_f32(cams[n].mean(axis=(1, 2)) + b[idx[n]], logits[n, idx[n]],
                         **cam_logit_bound(f[n:n + 1], w[idx[n]], b[idx[n]]))
        assert np.all(np.diff(logits[n, idx[n]]) <= 0)


def test_chosen_class_and_list(head):
    f, w, _, _ = head
    manual = np.einsum("k,nkhw->nhw", w[4], f)  # einsum and matmul: the same sums, other orders
    assert_close_f32(class_cam(f, w, 4), manual, **cam_bound(f, w[[4]]))
    assert_close_f32(class_cam(f, w, -1), np.einsum("k,nkhw->nhw", w[9], f), **cam_bound(f, w[[9]]))
    assert_close_f32(cams_for(f, w, [4, 2])[:, 0], manual, **cam_bound(f, w[[4]]))
    with pytest.raises(ValueError, match="class index"):
        class_cam(f, w, 10)


def test_difference_cam_is_difference_of_maps_and_of_logits(head):
    f, w, b, logits = head
    d = difference_cam(f, w, 2, 7)
    # Both classes' terms are summed (and W[2] - W[7] rounded): the bound of the two CAMs together.
    both = cam_bound(f, (np.abs(w[2]) + np.abs(w[7]))[None])  # Σ_k (|W[2, k]| + |W[7, k]|) |f_k|
    both["ulps"] += 2
    assert_close_f32(d, class_cam(f, w, 2) - class_cam(f, w, 7), **both)
    both = cam_logit_bound(f, (np.abs(w[2]) + np.abs(w[7]))[None], np.abs(b[2]) + np.abs(b[7]))
    both["ulps"] += 2
    assert_close_f32(d.mean(axis=(1, 2)), (logits[:, 2] - logits[:, 7]) - (b[2] - b[7]), **both)
    np.testing.assert_allclose(difference_cam(f, w, 3, 3), 0.0)


def test_shape_errors_are_clear(head):
    f, w, _, logits = head
    with pytest.raises(ValueError, match=r"expected weights \[C, 16\]"):
        class_cam(f, w[:, :8], 0)
    with pytest.raises(ValueError, match="features"):
        top_k_cams(logits, f[0], w)
