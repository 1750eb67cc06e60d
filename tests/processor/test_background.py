"""A stream's background and the head tops it gives a peak rule."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from streamcam.errors import ConfigError, ModelError
from streamcam.processor.background import RunningPlate, head_top, head_top_reference
from streamcam.processor.peak_boxes import PeakBoxRule, fit_geometry


@pytest.mark.parametrize("seed", range(5))
def test_head_top_equals_the_row_by_row_walk(seed):
    rng = np.random.default_rng(seed)
    mask = (rng.random((60, 80)) < 0.6).astype(np.uint8)
    mask[10:50, 30:40] = 1
    for _ in range(40):
        x, y, hw = rng.uniform(-5, 85), rng.uniform(0, 59), rng.uniform(0.5, 8)
        assert head_top(mask, x, y, hw) == head_top_reference(mask, x, y, hw)


def _scene(t: int, size=(160, 120)) -> np.ndarray:
    rng = np.random.default_rng(7)
    img = rng.integers(40, 90, (size[1], size[0], 3), dtype=np.uint8)  # a textured wall
    x = 10 + 4 * t
    img[30:100, x:x + 20] = 220  # a walker crossing
    return img


def test_the_running_plate_is_the_scene_without_its_walker_and_waits_until_it_has_one():
    plate = RunningPlate(interval_s=0.1, samples=15, min_samples=9)
    for t in range(8):
        plate.observe(_scene(t), t * 0.1)
        plate.observe(_scene(t), t * 0.1 + 0.05)  # under the interval: not a sample
        assert plate.foreground(_scene(t)) is None
    for t in range(8, 30):
        plate.observe(_scene(t), t * 0.1)
    import cv2

    wall = cv2.cvtColor(_scene(40), cv2.COLOR_BGR2GRAY)  # the walker has left the frame
    assert np.array_equal(plate.plate, wall)  # it stood on no pixel in most of the window
    fg = plate.foreground(_scene(30))
    assert fg.shape == (120, 160)
    ys, xs = np.nonzero(fg)
    assert abs(ys.min() - 30) <= 2 and abs(ys.max() - 99) <= 2 and abs(xs.min() - 130) <= 2
    plate.observe(_scene(31, size=(80, 60)), 10.0)  # the camera changed resolution: start again
    assert plate.plate is None and plate.foreground(_scene(31, size=(80, 60))) is None
    with pytest.raises(ConfigError, match="min_samples"):
        RunningPlate(samples=5, min_samples=9)


def test_a_peak_on_a_mover_gets_its_box_from_its_head_top():
    rule = PeakBoxRule(level=0.0, radius=1, nms=0.3, size=(0.3, 0.0), centre=0.0, aspect=2.5,
                       top_line=(0.9, -1.0))  # height / H = 0.9 - top / H
    cam = np.full((12, 16), -3.0, np.float32)
    cam[5, 4] = 4.0
    size = (160, 120)
    (plain, _), = rule.boxes(cam, size)
    assert plain[3] - plain[1] == pytest.approx(36.0)  # the row's line: 0.3 x 120
    fg = np.zeros((120, 160), np.uint8)
    fg[40:110, 38:52] = 1  # a walker whose head top is row 40
    (box, _), = rule.boxes(cam, size, fg)
    assert box[1] == pytest.approx(40.0) and box[3] - box[1] == pytest.approx(120 * 0.9 - 40)
    assert box[2] - box[0] == pytest.approx((box[3] - box[1]) / 2.5)
    fg_far = np.zeros_like(fg)
    fg_far[40:110, 100:120] = 1  # a mover elsewhere: the peak is on none
    assert rule.boxes(cam, size, fg_far)[0][0] == plain
    fg_tall = np.zeros_like(fg)
    fg_tall[0:110, 38:52] = 1  # the column runs to the frame's top: 108 px, 3x the row's height
    assert rule.boxes(cam, size, fg_tall)[0][0] == plain
    no_line = PeakBoxRule(level=0.0, radius=1, nms=0.3, size=(0.3, 0.0), centre=0.0, aspect=2.5)
    assert no_line.boxes(cam, size, fg)[0][0] == plain


def test_a_weak_peak_counts_only_where_a_movers_head_top_vouches_for_it():
    # two walkers side by side: the map's strong peak on one, a weak one (logit 0.8) on the other
    rule = PeakBoxRule(level=2.0, radius=1, nms=0.3, size=(0.3, 0.0), centre=0.0, aspect=2.5,
                       top_line=(0.9, -1.0))
    cam = np.full((12, 16), -3.0, np.float32)
    cam[5, 4], cam[5, 10] = 4.0, 0.8
    size = (160, 120)
    fg = np.zeros((120, 160), np.uint8)
    fg[40:110, 38:52] = 1
    assert len(rule.boxes(cam, size, fg)) == 1  # the weak peak's column holds no mover
    fg[40:110, 98:112] = 1
    (a, va), (b, vb) = rule.boxes(cam, size, fg)
    assert (va, vb) == (4.0, pytest.approx(0.8)) and b[1] == pytest.approx(40.0) and 95 < (b[0] + b[2]) / 2 < 115
    assert len(rule.boxes(cam, size)) == 1  # no foreground: the calibrated level alone
    assert len(replace(rule, level_on_mover=1.0).boxes(cam, size, fg)) == 1  # below the mover level too
    cam[5, 10] = -0.5
    assert len(rule.boxes(cam, size, fg)) == 1  # the map says "no person" there: motion alone is not one
    no_line = replace(rule, top_line=None)
    cam[5, 10] = 0.8
    assert len(no_line.boxes(cam, size, fg)) == 1  # without a top line there is no head top to vouch
    assert "level_on_mover" not in no_line.to_dict() and rule.to_dict()["level_on_mover"] == 0.0
    assert PeakBoxRule.from_dict(rule.to_dict()) == rule
    with pytest.raises(ModelError, match="peak_boxes.level_on_mover"):
        PeakBoxRule.from_dict({**rule.to_dict(), "level_on_mover": None})


def test_the_top_line_is_kept_where_the_tops_tell_heights_the_row_cannot():
    # an eye-level camera: every head peak on one row, heights a line in the box tops
    maps, gts = [], []
    for k in range(6):
        cam = np.full((36, 48), -3.0, np.float32)
        cam[12, 4 + 8 * k] = 3.0  # peak at row 200 px of 576
        top = 150.0 + 10 * k
        h = 700.0 - 2.5 * top  # near people (higher tops) are taller
        x = (4 + 8 * k + 0.5) * 16
        maps.append(cam)
        gts.append([(x - h / 5, top, x + h / 5, top + h)])
    fit = fit_geometry(maps, gts, [(768, 576)] * 6, 0.0, 1, 0.3, prior_boxes=0)
    a, b = fit.top_line
    for ((x0, y0, x1, y1),) in gts:
        assert 576 * (a + b * y0 / 576) == pytest.approx(y1 - y0, abs=0.5)
    assert PeakBoxRule.from_dict(fit.to_dict()) == fit
    # from above: the row's line is exact, so a head top's noise would only add error
    rule = PeakBoxRule(level=0.0, radius=1, nms=0.3, size=(0.05, 0.25), centre=0.1, aspect=3.0)
    maps, gts = [], []
    for k in range(5):
        cam = np.full((36, 48), -3.0, np.float32)
        cam[6 + 5 * k, 8 + 6 * k] = 3.0
        maps.append(cam)
        gts.append([b for b, _ in rule.boxes(cam, (768, 576))])
    assert fit_geometry(maps, gts, [(768, 576)] * 5, 0.0, 1, 0.3, prior_boxes=0).top_line is None
    assert "top_line" not in rule.to_dict()  # readable by versions before it
    with pytest.raises(ModelError, match="peak_boxes.top_line"):
        PeakBoxRule(top_line=(1.0, float("nan")))


def test_the_detector_keeps_one_background_per_stream():
    import shutil
    import tempfile
    from pathlib import Path

    import conftest
    from streamcam.processor.detector import Detector
    from streamcam.processor.engines import create_engine
    from streamcam.processor.model_meta import read_metadata, update_metadata

    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "m.onnx"
        shutil.copy(conftest.ROOT / "engines" / "person-rgb.onnx", model)
        rule = dict(read_metadata(str(model)).peak_boxes)
        rule["top_line"] = [0.9, -1.0]
        update_metadata(str(model), peak_boxes=rule)
        det = Detector(create_engine(str(model)), min_score=0.0)
        assert det.background
        clock = iter(np.arange(0, 100, 0.2))
        det.clock = lambda: next(clock)
        for t in range(12):
            a = det.observe(_scene(t), "a")
        assert a is not None and a.shape == (120, 160) and a[60, 10 + 4 * 11 + 5] == 1
        assert det.observe(_scene(0), "b") is None  # a new stream warms up on its own
        r = det.detect(_scene(12), "BGR8", stream="a")
        assert "background" in r.timings_ms
