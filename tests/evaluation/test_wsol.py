"""WSOL metrics (Choe et al. 2020, pointing game of Zhang et al. 2016) on hand-made maps with hand-computed answers."""

import numpy as np
import pytest

from streamcam.evaluation.wsol import (WSOLEvaluator, best_iou, boxes_at_thresholds, contour_boxes, evaluate_maps,
                                       pointing_hit)


def box_map(h=100, w=120, box=(20, 30, 60, 70), value=1.0):
    m = np.zeros((h, w), np.float32)
    x0, y0, x1, y1 = box
    m[y0:y1, x0:x1] = value
    return m


def test_box_map_matching_gt_has_iou_one_at_every_threshold_below_its_value():
    gt = (20, 30, 60, 70)
    m = box_map(box=gt, value=0.8)  # normalised: 1 inside, 0 outside -> every t in [0, 1) keeps exactly the box
    per_t = boxes_at_thresholds(m, [0.0, 0.2, 0.5, 0.99])
    assert all(b == [(20.0, 30.0, 60.0, 70.0)] for b in per_t)
    r = evaluate_maps([m], [[gt]])
    assert r["max_box_acc"] == 1.0 and r["gt_known_loc_acc"] == 1.0 and r["max_box_acc_v2"] == 1.0
    assert r["pointing_game"] == 1.0


def test_ramp_box_threshold_picks_a_subbox():
    # Values 1..4 in nested rings: t above the ring value cuts it. Inner 2x2 square of value 4 at (4..6).
    m = np.zeros((10, 10), np.float32)
    m[1:9, 1:9] = 1
    m[2:8, 2:8] = 2
    m[3:7, 3:7] = 3
    m[4:6, 4:6] = 4
    # normalised: 0.25, 0.5, 0.75, 1.0. t=0.3 -> pixels > 0.3: the 6x6 ring 2..8.
    (b,), = boxes_at_thresholds(m, [0.3])
    assert b == (2.0, 2.0, 8.0, 8.0)
    (b,), = boxes_at_thresholds(m, [0.8])
    assert b == (4.0, 4.0, 6.0, 6.0)
    # GT = (2, 2, 8, 8): IoU 1 for t in [0.25, 0.5), 16/36 at t in [0.5, 0.75) (box 3..7), 0.25*... so
    # MaxBoxAcc(0.5) = 1, and BoxAcc at t=0.2 (box 1..9, IoU 36/64 = 0.5625) is a hit too.
    r = evaluate_maps([m], [[(2, 2, 8, 8)]], thresholds=[0.2, 0.3, 0.6, 0.8])
    assert r["max_box_acc"] == 1.0 and r["max_box_acc_threshold"] == 0.2
    ev = WSOLEvaluator(thresholds=[0.2, 0.3, 0.6, 0.8])
    ev.update(m, [(2, 2, 8, 8)])
    np.testing.assert_allclose(ev.ious[0], [36 / 64, 1.0, 16 / 36, 4 / 36])
    np.testing.assert_array_equal(ev.box_acc(0.5), [1, 1, 0, 0])
    np.testing.assert_array_equal(ev.box_acc(0.7), [0, 1, 0, 0])


def test_two_blobs_largest_contour_wins_and_multi_contour_finds_the_small_one():
    m = np.zeros((100, 100), np.float32)
    m[10:50, 10:50] = 0.6   # big, cooler blob (40x40)
    m[70:80, 70:80] = 1.0   # small, hotter blob (10x10)
    (b,), = boxes_at_thresholds(m, [0.5])
    assert b == (10.0, 10.0, 50.0, 50.0)
    boxes = boxes_at_thresholds(m, [0.5], multi_contour=True)[0]
    assert set(boxes) == {(10.0, 10.0, 50.0, 50.0), (70.0, 70.0, 80.0, 80.0)}
    # Above 0.6 only the small blob remains.
    assert boxes_at_thresholds(m, [0.7])[0] == [(70.0, 70.0, 80.0, 80.0)]
    # GT on the small blob: largest-contour BoxAcc misses for t < 0.6, hits for t >= 0.6;
    # multi-contour hits everywhere.
    ev = WSOLEvaluator(thresholds=[0.1, 0.5, 0.7])
    ev.update(m, [(70, 70, 80, 80)])
    np.testing.assert_array_equal(ev.box_acc(0.5), [0, 0, 1])
    np.testing.assert_array_equal(ev.box_acc(0.5, multi_contour=True), [1, 1, 1])
    r = ev.result()
    assert r["max_box_acc"] == 1.0 and r["max_box_acc_threshold"] == 0.7
    assert r["gt_known_loc_acc"] == 0.0  # at t = 0.2 the big blob is the box
    assert r["pointing_game"] == 1.0


def test_max_box_acc_v2_is_the_mean_over_iou_levels():
    # A predicted box covering GT (40x40) with IoU 0.64 (50x50 map box): hits at 0.3 and 0.5, not 0.7.
    m = box_map(h=100, w=100, box=(0, 0, 50, 50))
    r = evaluate_maps([m], [[(0, 0, 40, 40)]])
    assert r["max_box_acc_by_iou"] == {"0.3": 1.0, "0.5": 1.0, "0.7": 0.0}
    assert r["max_box_acc_v2"] == pytest.approx(2 / 3)
    # Two images, one hit one miss -> 0.5.
    r2 = evaluate_maps([m, m], [[(0, 0, 40, 40)], [(60, 60, 90, 90)]])
    assert r2["max_box_acc"] == 0.5 and r2["images"] == 2


def test_several_gt_boxes_best_match_counts():
    m = box_map(box=(20, 30, 60, 70))
    assert best_iou([(20, 30, 60, 70)], [(0, 0, 5, 5), (20, 30, 60, 70)]) == 1.0
    assert evaluate_maps([m], [[(0, 0, 5, 5), (20, 30, 60, 70)]])["max_box_acc"] == 1.0


@pytest.mark.parametrize("peak, box, tol, hit", [
    ((50, 50), (40, 40, 60, 60), 15, True),      # inside
    ((70, 50), (40, 40, 60, 60), 15, True),      # 10.5 px right of the box (pixel centre 70.5 vs x1 60)
    ((74, 50), (40, 40, 60, 60), 15, True),      # centre 74.5: 14.5 px
    ((75, 50), (40, 40, 60, 60), 15, False),     # centre 75.5: 15.5 px > 15
    ((80, 50), (40, 40, 60, 60), 15, False),     # 20.5 px
    ((74, 74), (40, 40, 60, 60), 15, False),     # diagonal: 14.5 * sqrt2 = 20.5 px
    ((80, 50), (40, 40, 60, 60), 0, False),
])
def test_pointing_game(peak, box, tol, hit):
    m = np.zeros((100, 100), np.float32)
    m[peak[1], peak[0]] = 1.0
    assert pointing_hit(m, [box], tol) is hit


def test_empty_and_constant_maps_miss():
    m = np.zeros((20, 20), np.float32)  # constant: normalised to zeros, no pixel > t
    assert boxes_at_thresholds(m, [0.0, 0.5]) == [[], []]
    r = evaluate_maps([m], [[(0, 0, 10, 10)]])
    assert r["max_box_acc"] == 0.0
    assert contour_boxes(np.zeros((5, 5), np.uint8)) == []
    with pytest.raises(ValueError):
        WSOLEvaluator().result()
    with pytest.raises(ValueError):
        evaluate_maps([m], [])
