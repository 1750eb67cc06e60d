import json

import numpy as np
import pytest

import conftest
from streamcam.evaluation.localization import iou, localization_accuracy, match_boxes

ROOT = conftest.ROOT
MODEL = ROOT / "engines" / "person-ir.onnx"
EVAL = ROOT / "docs" / "quality" / "eval-default.json"


@pytest.mark.parametrize("a, b, expected", [
    ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),
    ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),
    ((0, 0, 10, 10), (10, 10, 20, 20), 0.0),
    ((0, 0, 10, 10), (2, 2, 4, 4), 4 / 100),
    ((0, 0, 0, 0), (0, 0, 0, 0), 0.0),
])
def test_iou(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)


def test_one_box_cannot_claim_two_people():
    gt = [[(0, 0, 10, 20), (4, 0, 14, 20)]]  # two overlapping people
    one = [[(2, 0, 12, 20)]]  # IoU >= 0.5 with both
    assert localization_accuracy(one, gt) == 0.5
    assert localization_accuracy([[(0, 0, 10, 20), (4, 0, 14, 20)]], gt) == 1.0


def test_greedy_matching_prefers_the_best_pairs():
    pred = [(0, 0, 10, 10), (1, 0, 11, 10)]
    gt = [(1, 0, 11, 10), (0, 0, 10, 10)]
    assert sorted((i, j) for i, j, _ in match_boxes(pred, gt)) == [(0, 1), (1, 0)]


def test_accuracy_counts_per_person_not_per_frame():
    gt = [[(0, 0, 10, 10)], [(0, 0, 10, 10), (20, 20, 30, 30), (40, 40, 50, 50)], []]
    pred = [[], [(0, 0, 10, 10), (21, 21, 31, 31), (0, 40, 5, 45)], [(1, 1, 2, 2)]]
    assert localization_accuracy(pred, gt) == pytest.approx(2 / 4)
    with pytest.raises(ValueError):
        localization_accuracy(pred[:2], gt)
    assert np.isnan(localization_accuracy([[]], [[]]))


@pytest.mark.skipif(not MODEL.exists(), reason="engines/person-ir.onnx not built")
def test_default_model_localizes_people_on_held_out_scenes():
    """The pipeline's own processing (Detector, calibrated box rule, score gate) on test scenes."""
    from streamcam.config import load_config
    from streamcam.evaluation.pipeline import run_eval

    quality = json.loads(EVAL.read_text())
    floor = quality["regression_floor"]
    m = run_eval(load_config(ROOT / "configs" / "default.yaml"), frames=40, seed=9000, progress=False, sweep=False)
    assert m["persons"] > 90
    assert m["localization_accuracy"] >= floor["localization_accuracy"], m
    assert m["presence_accuracy"] >= floor["presence_accuracy"], m


@pytest.mark.skipif(not MODEL.exists(), reason="engines/person-ir.onnx not built")
def test_the_evaluator_scores_the_boxes_the_live_processor_draws():
    """One CAM evaluator, with the model's box rule: its figures are those of the live processor's
    Detector.detect boxes on the same frames (an independent path through the same code)."""
    from streamcam.datasets.synthetic import SyntheticIRScene
    from streamcam.evaluation.localization import evaluate_detector, model_detector, score_frames

    det = model_detector(str(MODEL))
    try:
        r = evaluate_detector(det, frames=8, seed=9000, scenes=4)
        preds, gts = [], []
        for k in range(8):
            fr = SyntheticIRScene(seed=9000 + k % 4).frame((k // 4) * 97)
            preds.append([d.box for d in det.detect(fr.image, "GRAY8").detections])
            gts.append([o.box for o in fr.objects if o.label == "person"])
    finally:
        det.engine.close()
    ref = score_frames(preds, gts)
    assert r["persons"] == ref["persons"] > 0
    assert (r["localized"], r["predicted_boxes"]) == (ref["localized"], ref["predicted_boxes"])
    assert r["localization_accuracy"] == ref["localization_accuracy"]
