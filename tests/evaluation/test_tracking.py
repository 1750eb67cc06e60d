import json

import pytest

pytest.importorskip("motmetrics")
pytest.importorskip("norfair")

import conftest
from streamcam.evaluation.tracking import GreedyIoUIds, evaluate_tracking, tracking_metrics  # noqa: E402

ROOT = conftest.ROOT
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
                    "docs/quality/tracking.json (streamcam eval --tracking)")
def test_tracking_quality_does_not_regress():
    from streamcam.config import load_config

    ref = json.loads(QUALITY.read_text())
    if ref.get("model") is None:
        pytest.skip("docs/quality/tracking.json was made with a simulated detector")
    # The stabilizer config `streamcam eval --tracking` uses: configs/default.yaml; the box-size
    # correction is the model's own (its metadata).
    config = load_config(ROOT / "configs" / "default.yaml").stabilizer
    assert config.box_correction is None
    from streamcam.processor.model_meta import read_metadata

    assert not config.for_model(read_metadata(str(MODEL)).box_correction).box_correction.is_identity
    r = evaluate_tracking(str(MODEL), seeds=(ref["seeds"][0],), frames=90, config=config)
    clip_ref = ref["per_clip"][0]["stabilized"]
    # The first 90 frames of the reference clip (measured: raw MOTA 0.34 / IDF1 0.67, stabilized
    # 0.65 / 0.80): the stabilizer must beat raw detections on every figure and stay close to the
    # recorded quality of the whole clip (0.78 / 0.68; the first seconds hold a crossing).
    st, raw = r["metrics"]["stabilized"], r["metrics"]["raw"]
    assert st["jitter_px"] < raw["jitter_px"] / 2
    assert st["flicker_per_100"] <= raw["flicker_per_100"] / 3
    assert st["mota"] >= raw["mota"] + 0.2 and st["idf1"] >= raw["idf1"] + 0.05
    assert st["mota"] >= clip_ref["mota"] - 0.2 and st["mota"] >= 0.6


def test_recorded_figures_meet_the_issue_targets():
    ref = json.loads(QUALITY.read_text()) if QUALITY.exists() else pytest.skip("no docs/quality/tracking.json")
    if ref.get("model") is None:
        pytest.skip("docs/quality/tracking.json was made with a simulated detector")
    st, raw = ref["metrics"]["stabilized"], ref["metrics"]["raw"]
    assert ref["seeds"] == [9000, 9001, 9002, 9003] and ref["frames_per_clip"] == 300
    assert st["mota"] >= 0.6 and st["idf1"] >= 0.7
    assert st["mota"] > raw["mota"] and st["idf1"] > raw["idf1"]
    assert ref["improvement"]["jitter_reduction"] >= 3 and ref["improvement"]["flicker_reduction"] >= 3


@pytest.mark.skipif(not MODEL.exists(), reason="needs engines/person-ir.onnx")
def test_a_fitted_box_correction_is_written_into_the_model(tmp_path):
    import shutil
    import subprocess
    import sys

    from streamcam.errors import ModelError
    from streamcam.processor.model_meta import read_metadata, update_metadata

    pytest.importorskip("onnx")
    model = tmp_path / "m.onnx"
    shutil.copy(MODEL, model)
    update_metadata(str(model), box_correction=None)
    before = read_metadata(str(model))
    assert before.box_correction is None
    out = subprocess.run([sys.executable, "-m", "streamcam.evaluation.tracking", "--model", str(model),
                          "--fit-box-correction", "--write", "--seeds", "5000", "--frames", "40"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    after = read_metadata(str(model))
    assert set(after.box_correction) == {"width", "height"} and all(len(v) == 3 for v in after.box_correction.values())
    # a real fit, not the identity
    assert after.box_correction["width"] != [0.0, 1.0, 0.0]
    assert after.provenance["box_correction_fit"]["seeds"] == [5000]
    np_equal = (after.cam_weights == before.cam_weights).all() and after.cam_threshold == before.cam_threshold
    assert np_equal  # nothing else changed
    with pytest.raises(ModelError, match="update_metadata"):
        update_metadata(str(model), no_such_field=1)


@pytest.mark.parametrize("name", ["sort", "bytetrack", "ocsort"])
def test_roboflow_trackers_follow_a_walking_box_with_one_id(name):
    pytest.importorskip("trackers")
    from streamcam.evaluation.peer_trackers import RoboflowTracker

    tr = RoboflowTracker(name, fps=30.0)
    outs = [tr.update([(100 + 2 * i, 200, 140 + 2 * i, 300)], [0.9]) for i in range(12)]
    assert all(len(o) <= 1 for o in outs) and len({t for o in outs for t, _ in o}) == 1
    assert len(outs[-1]) == 1 and abs(outs[-1][0][1][0] - 122) < 4  # confirmed and where the box is
    with pytest.raises(ValueError, match="expected one of"):
        RoboflowTracker("deepsort")


@pytest.mark.slow
def test_eval_tracking_runs_the_roboflow_peers_on_the_same_boxes():
    pytest.importorskip("trackers")
    r = evaluate_tracking(simulate=True, seeds=(9000,), frames=60)
    for m in ("sort", "bytetrack", "ocsort", "sort_corrected", "bytetrack_corrected", "ocsort_corrected"):
        assert 0.0 < r["metrics"][m]["idf1"] <= 1.0, m
    assert r["peers_missing"] == {}


def test_a_detect_rate_tracks_on_the_prediction_between_detections():
    """The network on every third frame (detect_fps 10 of 30): the stabilizer's predicted boxes
    between detections keep tracking well ahead of holding the last boxes; every frame is scored."""
    every = evaluate_tracking(simulate=True, seeds=(9000,), frames=120)
    third = evaluate_tracking(simulate=True, seeds=(9000,), frames=120, detect_every=3)
    assert third["detect_every"] == 3
    s, raw = third["metrics"]["stabilized"], third["metrics"]["raw"]
    assert s["num_objects"] == every["metrics"]["stabilized"]["num_objects"]  # the same frames are scored
    assert s["mota"] > raw["mota"] + 0.1 and s["idf1"] > raw["idf1"]
    with pytest.raises(ValueError, match="detect_every"):
        evaluate_tracking(simulate=True, seeds=(9000,), frames=10, detect_every=0)
