"""The visible-to-white-hot step of the real-LWIR recipe (tools/thermal_mil_lwir.py)."""

from __future__ import annotations

import numpy as np
import pytest

from tools.thermal_mil_lwir import pseudo_lwir


def _scene():
    rng = np.random.default_rng(3)
    plate = np.clip(rng.normal(110, 6, (240, 320)), 0, 255).astype(np.uint8)  # textured pavement
    frame = plate.copy()
    frame[60:140, 100:130] = 30  # a walker in dark clothes, darker than the ground as a photograph shows
    frame[60:72, 108:122] = 80   # the head
    return plate, frame


def test_movers_turn_bright_and_keep_their_texture_the_ground_stays():
    plate, frame = _scene()
    out = pseudo_lwir(frame, plate, np.random.default_rng(0))
    assert out.shape == frame.shape and out.dtype == np.uint8
    person, ground = out[64:136, 104:126], out[170:230, 200:300]
    assert person.mean() > ground.mean() + 30  # white-hot (hot level 160-240): the dark walker is now warmer than the ground
    assert out[62:70, 110:120].mean() > out[100:130, 106:124].mean()  # the head stays brighter than the coat
    assert np.array_equal(ground, frame[170:230, 200:300])  # no mover there: untouched


def test_a_frame_without_movers_is_the_frame():
    plate, _ = _scene()
    assert np.array_equal(pseudo_lwir(plate, plate, np.random.default_rng(1)), plate)


def test_hot_clutter_paints_warm_shapes_and_keeps_the_rest():
    from tools.thermal_mil_lwir import hot_clutter

    plate, _ = _scene()
    out = hot_clutter(plate, np.random.default_rng(5), 4)
    assert out.shape == plate.shape and out.dtype == np.uint8
    changed = np.abs(out.astype(int) - plate.astype(int)) > 20
    assert 0.001 < changed.mean() < 0.5  # some shapes, not the whole frame
    assert out[changed].mean() > plate[changed].mean() + 30  # warm (hot level 140-240 on a 110 ground)
    assert np.array_equal(hot_clutter(plate, np.random.default_rng(5), 0), plate)  # none asked: the frame


def test_cross_validation_folds_cover_every_frame_once_as_a_test_frame():
    from tools.thermal_mil_lwir import cv_folds

    images = [f"ir/19000{i}.jpg" for i in range(1, 7)] + [f"ir/20000{i}.jpg" for i in range(2, 8)]
    for how, n_folds in (("two", 2), ("scene", 2), ("frame", 12)):
        folds = cv_folds(images, how)
        assert len(folds) == n_folds
        tested = sorted(j for _, test in folds for j in test)
        assert tested == list(range(12)), how
        for cal, test in folds:
            assert cal and not set(cal) & set(test)
    # scene folds: each scene scored by a rule calibrated on the other scene only
    for cal, test in cv_folds(images, "scene"):
        assert {images[j][3:5] for j in cal} != {images[j][3:5] for j in test}
        assert len({images[j][3:5] for j in test}) == 1
    with pytest.raises(ValueError, match="expected one of"):
        cv_folds(images, "random")
