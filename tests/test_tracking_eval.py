import json
from pathlib import Path

import pytest

pytest.importorskip("motmetrics")
pytest.importorskip("norfair")

from streamcam.evaluation.tracking import GreedyIoUIds, evaluate_tracking, tracking_metrics  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "engines" / "person-ir.onnx"
QUALITY = ROOT / "docs" / "quality" / "tracking.json"


def test_metrics_on_a_hand_made_sequence():
    gt = [[(1, (0, 0, 10, 20))] for _ in range(10)]
    pred = [[(7, (1, 0, 11, 20))] for _ in range(10)]
    pred[4] = []  # one-frame gap: flicker
    pred[8] = [(8, (1, 0, 11, 20))]  # id switch
    m = tracking_metrics(gt, pred)
    assert m["num_misses"] == 1 and m["num_switches"] == 2 and m["num_false_positives"] == 0
    assert m["mota"] == pytest.approx(1 - 3 / 10)
    assert m["flicker_gaps"] == 1 and m["jitter_px"] == pytest.approx(0.0)


def test_greedy_baseline_keeps_ids_of_overlapping_boxes():
    g = GreedyIoUIds()
    a = g.update([(0, 0, 10, 10), (50, 50, 60, 60)])
    b = g.update([(51, 50, 61, 60), (1, 0, 11, 10)])
    assert {t for t, _ in a} == {t for t, _ in b} and b[0][0] == a[1][0]


def test_stabilizer_beats_the_raw_baseline_on_a_simulated_detector():
    r = evaluate_tracking(simulate=True, seeds=(9000,), frames=120)
    raw, st = r["metrics"]["raw"], r["metrics"]["stabilized"]
    assert st["mota"] > raw["mota"] and st["idf1"] > raw["idf1"]
    assert r["improvement"]["jitter_reduction"] >= 3


@pytest.mark.skipif(not (MODEL.exists() and QUALITY.exists()), reason="needs engines/person-ir.onnx and "
                    "docs/quality/tracking.json (python -m streamcam.evaluation.tracking)")
def test_tracking_quality_does_not_regress():
    ref = json.loads(QUALITY.read_text())
    if ref.get("model") is None:
        pytest.skip("docs/quality/tracking.json was made with a simulated detector")
    r = evaluate_tracking(str(MODEL), seeds=(ref["seeds"][0],), frames=90)
    clip_ref = ref["per_clip"][0]["stabilized"]
    clip_ref_raw = ref["per_clip"][0]["raw"]
    # The first 90 frames of the reference clip: the stabilizer must still beat raw detections and
    # stay close to the recorded quality of the whole clip.
    st, raw = r["metrics"]["stabilized"], r["metrics"]["raw"]
    assert st["jitter_px"] < raw["jitter_px"]
    assert st["idf1"] >= raw["idf1"]
    assert st["mota"] >= min(clip_ref["mota"], clip_ref_raw["mota"]) - 0.15
