"""Peak boxes: local maxima of a CAM sized by the camera's ground-plane fit."""

from __future__ import annotations

import numpy as np
import pytest

from streamcam.errors import ModelError
from streamcam.processor.peak_boxes import (PERSON_ASPECT, PeakBoxRule, fit_geometry, local_peaks,
                                            local_peaks_reference, shrunk_aspect)


def _blob_map(h=36, w=48, peaks=((10, 8, 4.0), (30, 20, 2.5))):
    yy, xx = np.mgrid[0:h, 0:w]
    cam = np.full((h, w), -3.0, np.float32)
    for x, y, v in peaks:
        cam = np.maximum(cam, v - 0.5 * ((xx - x) ** 2 + (yy - y) ** 2)).astype(np.float32)
    return cam


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("radius", [1, 2, 3])
def test_fast_peaks_equal_the_reference(seed, radius):
    rng = np.random.default_rng(seed)
    cam = np.round(rng.normal(0, 1, (12, 17)), 1).astype(np.float32)  # rounded: plateaus occur
    assert local_peaks(cam, 0.2, radius) == local_peaks_reference(cam, 0.2, radius)


def test_each_peak_above_level_gives_one_box_sized_by_its_row():
    cam = _blob_map()
    rule = PeakBoxRule(level=0.0, radius=1, nms=0.3, size=(0.1, 0.2), centre=0.0, aspect=2.0)
    boxes = rule.boxes(cam, (768, 576))
    assert len(boxes) == 2 and boxes[0][1] > boxes[1][1]  # strongest first
    (x0, y0, x1, y1), v = boxes[0]
    # peak at cell (10, 8) -> frame (168, 136); height 576 * (0.1 + 0.2 * 136 / 576)
    assert (x0 + x1) / 2 == pytest.approx(168, abs=0.5) and (y0 + y1) / 2 == pytest.approx(136, abs=0.5)
    assert y1 - y0 == pytest.approx(576 * 0.1 + 0.2 * 136, rel=1e-4)
    assert (y1 - y0) / (x1 - x0) == pytest.approx(2.0)
    near, far = boxes[1][0], boxes[0][0]
    assert near[3] - near[1] > far[3] - far[1]  # lower in the frame: nearer, taller
    assert PeakBoxRule(level=3.0).boxes(cam, (768, 576))[0][1] == pytest.approx(4.0)
    assert len(PeakBoxRule(level=3.0).boxes(cam, (768, 576))) == 1


def test_overlapping_peaks_are_one_object():
    cam = _blob_map(peaks=((10, 8, 4.0), (12, 8, 3.9)))
    cam[8, 11] = 3.0  # a saddle between two close maxima
    wide = PeakBoxRule(level=0.0, size=(0.3, 0.0), aspect=1.0, nms=0.3)
    assert len(wide.boxes(cam, (768, 576))) == 1
    assert len(PeakBoxRule(level=0.0, size=(0.02, 0.0), aspect=1.0, nms=0.3).boxes(cam, (768, 576))) == 2


def test_geometry_fit_recovers_the_size_line():
    rule = PeakBoxRule(level=0.0, radius=1, nms=0.3, size=(0.05, 0.25), centre=0.1, aspect=3.0)
    maps, gts = [], []
    for k in range(5):
        cam = _blob_map(peaks=((8 + 6 * k, 6 + 5 * k, 3.0), (40 - 5 * k, 28 - 4 * k, 3.0)))
        maps.append(cam)
        gts.append([b for b, _ in rule.boxes(cam, (768, 576))])
    assert all(0 < b[1] and b[3] < 576 for g in gts for b in g)  # no box cut by the frame here
    fit = fit_geometry(maps, gts, [(768, 576)] * 5, 0.0, 1, 0.3, prior_boxes=0)
    assert fit.size == pytest.approx(rule.size, abs=5e-3)  # a box may hold a neighbour's stronger peak
    assert fit.centre == pytest.approx(0.1, abs=2e-2) and fit.aspect == pytest.approx(3.0, rel=1e-3)
    assert fit_geometry([maps[0]], [[]], [(768, 576)], 0.0, 1, 0.3) is None  # nothing to fit


def test_geometry_fit_recovers_a_peak_off_the_persons_axis():
    """A map whose peaks sit right of the people (a walker's leading side, receptive fields off the
    cell centres): the fitted ``centre_x`` puts the boxes back on them."""
    truth = PeakBoxRule(level=0.0, radius=1, nms=0.3, size=(0.05, 0.25), centre=0.1, aspect=3.0, centre_x=-0.2)
    maps = [_blob_map(peaks=((8 + 6 * k, 6 + 5 * k, 3.0), (40 - 5 * k, 28 - 4 * k, 3.0))) for k in range(5)]
    gts = [[b for b, _ in truth.boxes(m, (768, 576))] for m in maps]
    on_axis = PeakBoxRule(**{**truth.to_dict(), "size": truth.size, "centre_x": 0.0})
    (x0, _, x1, _), _ = truth.boxes(maps[0], (768, 576))[0]
    (u0, _, u1, _), _ = on_axis.boxes(maps[0], (768, 576))[0]
    assert (x0 + x1) / 2 == pytest.approx((u0 + u1) / 2 - 0.2 * (u1 - u0))  # left of the peak by 0.2 widths
    fit = fit_geometry(maps, gts, [(768, 576)] * 5, 0.0, 1, 0.3, prior_boxes=0)
    assert fit.centre_x == pytest.approx(-0.2, abs=1e-2) and fit.centre == pytest.approx(0.1, abs=2e-2)
    with pytest.raises(ModelError, match="peak_boxes.centre_x"):
        PeakBoxRule(centre_x=1.5)
    assert PeakBoxRule.from_dict({k: v for k, v in truth.to_dict().items() if k != "centre_x"}).centre_x == 0.0


def test_size_line_fits_relative_errors():
    """Heights scattered by a factor (as IoU sees them): the fit balances the relative errors of small,
    far people and tall, near ones; a plain least-squares line would be pulled to the tall ones' pixels."""
    rng = np.random.default_rng(3)
    maps, gts = [], []
    for k in range(12):
        x, y = 6 + 3 * k, 4 + 2 * k  # far (top, small) to near (bottom, tall)
        cam = _blob_map(peaks=((x, y, 3.0),))
        py = (y + 0.5) * 16
        h = 576 * (0.02 + 0.4 * py / 576) * float(np.exp(rng.normal(0, 0.25)))
        cx = (x + 0.5) * 16
        maps.append(cam)
        gts.append([(cx - h / 6, py - h / 2, cx + h / 6, py + h / 2)])
    fit = fit_geometry(maps, gts, [(768, 576)] * 12, 0.0, 1, 0.3, prior_boxes=0)
    rows = np.array([((g[0][1] + g[0][3]) / 2, g[0][3] - g[0][1]) for g in gts])
    pred = np.array([fit.height(y, 576) for y, _ in rows])
    rel = lambda p: float((((p - rows[:, 1]) / rows[:, 1]) ** 2).sum())  # noqa: E731
    A = np.c_[np.ones(len(rows)), rows[:, 0] / 576]
    plain = A @ np.linalg.lstsq(A, rows[:, 1] / 576, rcond=None)[0] * 576
    assert rel(pred) < rel(plain)
    for shift in (-0.01, 0.01):  # no other line does better at it
        assert rel(pred) <= rel(pred + 576 * shift)


def test_few_boxes_lean_on_the_pedestrian_aspect_and_many_decide_alone():
    wide = PeakBoxRule(level=0.0, radius=1, nms=0.3, size=(0.05, 0.25), centre=0.1, aspect=1.6)
    maps = [_blob_map(peaks=((8 + 6 * k, 6 + 5 * k, 3.0),)) for k in range(4)]
    gts = [[b for b, _ in wide.boxes(m, (768, 576))] for m in maps]
    few = fit_geometry(maps, gts, [(768, 576)] * 4, 0.0, 1, 0.3)
    assert 1.6 < few.aspect < PERSON_ASPECT  # 4 wide boxes move it, but not all the way
    assert few.aspect == pytest.approx(np.exp((4 * np.log(1.6) + 10 * np.log(PERSON_ASPECT)) / 14), rel=1e-6)
    assert fit_geometry(maps, gts, [(768, 576)] * 4, 0.0, 1, 0.3, prior_boxes=0).aspect == pytest.approx(1.6)
    assert shrunk_aspect([1.6] * 1000) == pytest.approx(1.6, rel=0.01)
    assert shrunk_aspect([]) == PERSON_ASPECT and shrunk_aspect([1.6], weight=0) == pytest.approx(1.6)


def test_boxes_are_clipped_to_the_frame_and_cut_boxes_do_not_bend_the_fit():
    rule = PeakBoxRule(level=0.0, radius=1, nms=0.3, size=(0.05, 0.25), centre=0.1, aspect=3.0)
    cam = _blob_map(peaks=((1, 33, 3.0), (24, 12, 3.0)))
    boxes = [b for b, _ in rule.boxes(cam, (768, 576))]
    assert all(0 <= b[0] < b[2] <= 768 and 0 <= b[1] < b[3] <= 576 for b in boxes)
    assert any(b[0] == 0 or b[3] == 576 for b in boxes)  # the corner person is cut, as a label is
    whole = [_blob_map(peaks=((8 + 6 * k, 6 + 5 * k, 3.0),)) for k in range(4)]
    maps = whole + [cam]
    gts = [[b for b, _ in rule.boxes(m, (768, 576))] for m in maps]
    # the cut box says the person is shorter than the size line: it is left out while 3 whole ones remain
    fit = fit_geometry(maps, gts, [(768, 576)] * 5, 0.0, 1, 0.3, prior_boxes=0)
    assert fit.size == pytest.approx(rule.size, abs=2e-3) and fit.aspect == pytest.approx(3.0, rel=1e-3)
    # only cut boxes: they are all there is, and they are used
    cut = [b for b in gts[-1] if b[0] == 0 or b[3] == 576]
    assert len(cut) == 1 and fit_geometry([cam] * 3, [cut] * 3, [(768, 576)] * 3, 0.0, 1, 0.3) is not None


def test_rule_round_trip_and_validation_name_the_field():
    rule = PeakBoxRule(level=1.5, radius=2, nms=0.4, size=(0.1, 0.2), centre=-0.1, aspect=2.5)
    assert PeakBoxRule.from_dict(rule.to_dict()) == rule
    with pytest.raises(ModelError, match="peak_boxes.aspect"):
        PeakBoxRule(aspect=0.0)
    with pytest.raises(ModelError, match="unknown keys \\['levle'\\]"):
        PeakBoxRule.from_dict({"levle": 1})
    with pytest.raises(ModelError, match="peak_boxes.radius"):
        PeakBoxRule.from_dict({"radius": 0})


def test_contain_drops_a_second_peak_inside_a_stronger_box():
    cam = _blob_map(peaks=((20, 8, 4.0), (20, 20, 2.0)))  # a head, and legs under it
    tall = dict(level=0.0, size=(0.9, 0.0), aspect=2.0, nms=0.9)
    assert len(PeakBoxRule(**tall).boxes(cam, (768, 576))) == 2
    assert len(PeakBoxRule(**tall, contain=True).boxes(cam, (768, 576))) == 1


def test_ivr_floor_counts_from_the_45th_percentile():
    from streamcam.processor.boxes import boxes_from_cam
    from streamcam.processor.cam import normalize_ivr, normalize_minmax

    cam = np.zeros((10, 10), np.float32)
    cam[:, :6] = 0.5  # a warm region: more than 55 % of the map (a warm facade, a lawn in the sun)
    cam[2:4, 7:9] = 1.0
    ivr = normalize_ivr(cam)
    assert ivr.min() == 0.0 and ivr.max() == 1.0
    assert ivr[0, 0] == pytest.approx(0.0)  # the 45th percentile is 0.5: the warm region is the floor
    assert normalize_minmax(cam)[0, 0] == pytest.approx(0.5)
    zero = boxes_from_cam(cam, (10, 10), 0.4, max_side=None, min_area_frac=0.0)  # cells = pixels
    floor = boxes_from_cam(cam, (10, 10), 0.4, max_side=None, min_area_frac=0.0, floor="ivr")
    assert sorted(b for b, _ in zero) == [(0.0, 0.0, 6.0, 10.0), (7.0, 2.0, 9.0, 4.0)]  # the warm region is a box
    assert [b for b, _ in floor] == [(7.0, 2.0, 9.0, 4.0)]
    with pytest.raises(ValueError, match="floor"):
        boxes_from_cam(cam, (100, 100), 0.4, floor="median")
