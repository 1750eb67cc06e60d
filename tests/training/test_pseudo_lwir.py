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


def test_parts_keep_the_head_hottest_and_draw_each_movers_clothing():
    plate, frame = _scene()
    frame[60:140, 200:230] = 30  # a second walker
    cols = slice(104, 126)
    head, coat, legs = (slice(61, 75), cols), (slice(90, 100), cols), (slice(120, 135), cols)
    coats, legs_over_coat = [], []
    for seed in range(12):
        out = pseudo_lwir(frame, plate, np.random.default_rng(seed), parts=True).astype(float)
        assert out[head].mean() > plate[head].mean() + 30  # the head at the hot level
        assert out[coat].mean() <= out[head].mean() + 10  # clothing never hotter than the head (beyond texture)
        coats.append(out[coat].mean() - plate[coat].mean())
        assert np.array_equal(out[170:230, 40:90], plate[170:230, 40:90].astype(float))  # the ground stays
        legs_over_coat.append(out[legs].mean() - out[coat].mean())
    assert min(coats) < 5 < 30 < max(coats)  # some coats as cold as the pavement, some warm
    assert min(legs_over_coat) < -10 and max(legs_over_coat) > 10  # trousers drawn apart from the coat
    plain = pseudo_lwir(frame, plate, np.random.default_rng(0))
    assert np.array_equal(plain, pseudo_lwir(frame, plate, np.random.default_rng(0), parts=False))


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


def test_lwir_calibration_frames_train_without_reading_an_evaluation_frame(tmp_path, monkeypatch):
    """Each scene's plate is the pixel-wise minimum of its calibration frames (a bright person who
    moved is gone), and an evaluation frame is never opened: its file here is not even an image."""
    import json

    import cv2

    import tools.thermal_mil_lwir as tool

    data = tmp_path / "llvip"
    (data / "ir").mkdir(parents=True)
    ground = np.full((64, 80), 90, np.uint8)
    frames = []
    for name, x in (("190002", 10), ("190004", 50), ("200003", 20), ("200006", 60)):
        im = ground.copy()
        im[20:50, x:x + 10] = 230  # a white-hot walker, elsewhere in the scene's other frame
        cv2.imwrite(str(data / "ir" / f"{name}.png"), im)
        frames.append({"image": f"ir/{name}.png", "boxes": [[x, 20, x + 10, 50]], "split": "calibration"})
    (data / "ir" / "190001.png").write_text("not an image: an evaluation frame must not be read")
    frames.append({"image": "ir/190001.png", "boxes": [[0, 0, 5, 5]], "split": "evaluation"})
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"frames": frames}))
    monkeypatch.setattr(tool, "DATA", data)
    monkeypatch.setattr(tool, "LABELS", labels)
    out = tmp_path / "train"
    used = tool.render_lwir_calibration(out, (80, 64), copies=2)
    assert sorted(used) == ["ir/190002.png", "ir/190004.png", "ir/200003.png", "ir/200006.png"]
    assert len(list((out / "person").glob("*.png"))) == 8
    plates = sorted((out / "empty").glob("*.png"))
    assert [p.name for p in plates] == ["llvip-plate-19.png", "llvip-plate-20.png"]
    for p in plates:
        assert np.array_equal(cv2.imread(str(p), cv2.IMREAD_GRAYSCALE), ground)
    only = tmp_path / "plates-only"
    tool.render_lwir_calibration(only, (80, 64), copies=0)
    assert not list((only / "person").glob("*.png")) and len(list((only / "empty").glob("*.png"))) == 2
