"""Calibrating a peak model from a fixed camera's footage: walker boxes, ignore regions, the command."""

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

import conftest
from streamcam.errors import ConfigError
from streamcam.evaluation.calibration import calibrate_peaks
from streamcam.evaluation.footage import calibrate_from_footage, footage_frames, foreground_mask, walker_boxes
from streamcam.evaluation.mot import real_data_dir

ROOT = conftest.ROOT
RGB = ROOT / "engines" / "person-rgb.onnx"
REAL = real_data_dir(ROOT)


def _mask(rects, size=(320, 240)):
    m = np.zeros((size[1], size[0]), np.uint8)
    for x0, y0, x1, y1 in rects:
        m[y0:y1, x0:x1] = 1
    return m


def test_only_a_lone_upright_whole_blob_with_a_peak_on_its_axis_is_a_walker():
    lone, group, edge, no_peak, abreast, speck = ((40, 60, 60, 120), (100, 60, 160, 120), (0, 100, 20, 160),
                                                  (200, 40, 216, 90), (250, 50, 290, 140), (300, 10, 303, 13))
    mask = _mask([lone, group, edge, no_peak, abreast, speck])
    peaks = [(2.0, 50.0, 75.0), (1.0, 50.0, 110.0),  # head and legs of one walker, on the axis
             (2.0, 130.0, 80.0), (2.0, 10.0, 120.0),
             (1.5, 255.0, 70.0), (1.5, 285.0, 70.0)]  # two people side by side in one blob
    boxes, ignore = walker_boxes(mask, peaks)
    assert boxes == [tuple(float(v) for v in lone)]
    assert sorted(ignore) == sorted(tuple(float(v) for v in b) for b in (group, edge, no_peak, abreast))


def test_foreground_is_what_differs_from_the_plate_and_a_mismatched_plate_is_refused():
    rng = np.random.default_rng(0)
    plate = rng.integers(60, 120, (240, 320, 3), dtype=np.uint8)
    frame = plate.copy()
    frame[80:200, 100:140] = (200, 40, 40)  # a walker in a red coat
    frame[81:85, 101:139] = plate[81:85, 101:139]  # clothes that match the background in a stripe
    m = foreground_mask(frame, plate)
    n, _, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    assert n == 2, "the walker is one blob, the stripe closed"
    x, y, w, h, _ = stats[1]
    assert abs(x - 100) <= 2 and abs(y - 80) <= 2 and abs(w - 40) <= 4 and abs(h - 120) <= 4
    with pytest.raises(ConfigError, match="differ"):
        foreground_mask(frame, plate[:, :300])


def test_a_box_in_a_region_nobody_labelled_is_no_false_box():
    cam = np.full((12, 16), -4.0, np.float32)
    cam[3, 4] = cam[3, 12] = 5.0  # one peak on the labelled walker, one on an unlabelled group
    size = (160, 120)
    walker = [(25.0, 20.0, 55.0, 100.0), (30.0, 22.0, 60.0, 98.0), (28.0, 18.0, 58.0, 102.0)]
    items = [(cam, [w], size) for w in walker]
    without = calibrate_peaks(items)
    ignored = calibrate_peaks([(c, g, s, [(100.0, 10.0, 160.0, 110.0)]) for c, g, s in items])
    assert without["accuracy"] == ignored["accuracy"] == 1.0
    assert without["precision"] == 0.5 and ignored["precision"] == 1.0


def test_footage_without_walkers_or_of_the_wrong_model_is_refused_naming_why(tmp_path):
    pytest.importorskip("onnx")
    still = np.random.default_rng(1).integers(0, 255, (240, 320, 3), dtype=np.uint8)  # nothing moves
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"f{i:02d}.png"), still)
    frames, fmt = footage_frames(str(tmp_path))
    assert len(frames) == 4 and fmt == "BGR8"
    with pytest.raises(ConfigError, match="show 0 people walking alone"):
        calibrate_from_footage(str(RGB), frames, fmt)
    with pytest.raises(ConfigError, match="GAP model"):
        calibrate_from_footage(str(ROOT / "engines" / "person-ir.onnx"), frames, fmt)
    with pytest.raises(ConfigError, match="at least 3"):
        calibrate_from_footage(str(RGB), frames[:2], fmt)
    with pytest.raises(ConfigError, match="trained at the scales"):
        calibrate_from_footage(str(RGB), frames, fmt, scale=0.7)
    model = tmp_path / "m.onnx"
    shutil.copy(RGB, model)
    run = [sys.executable, "-m", "streamcam", "calibrate", str(model), "--footage", str(tmp_path), "--dry-run"]
    out = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "people walking alone" in out.stderr
    both = subprocess.run(run + ["--labels", "x.json"], capture_output=True, text=True, timeout=300)
    assert both.returncode == 2 and "--footage takes no --labels" in both.stderr


@pytest.mark.skipif(not (REAL / "TUD-Campus").is_dir(), reason=f"no TUD-Campus under {REAL}")
def test_the_shipped_visible_model_calibrated_from_a_new_cameras_footage_finds_its_people(tmp_path):
    """`streamcam calibrate --footage` on TUD-Campus's first half (no box read), then its second half:
    the shipped model, PETS09's, localizes none of these people as shipped (docs/benchmarks.md) and
    stays above what tools.footage_calibration_real measured once calibrated from the footage."""
    from streamcam.config import load_config
    from streamcam.evaluation.mot import read_sequence
    from streamcam.evaluation.real import evaluate_mot
    from streamcam.processor.model_meta import read_metadata

    doc = json.loads((ROOT / "docs" / "quality" / "footage-calibration-real.json").read_text())
    want = doc["sequences"]["TUD-Campus"]["shipped"]["footage_calibrated"]
    first = read_sequence(REAL / "TUD-Campus").half("first")
    footage = tmp_path / "footage"
    footage.mkdir()
    for f in first.frames:
        shutil.copy(f.path, footage / f.path.name)
    model = tmp_path / "m.onnx"
    shutil.copy(RGB, model)
    out = subprocess.run([sys.executable, "-m", "streamcam", "calibrate", str(model), "--footage", str(footage)],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "calibrate --footage: input scale" in out.stderr  # progress on the long part
    cal = read_metadata(str(model)).provenance["box_calibration"]
    assert cal["source"] == "footage footage" and cal["walkers"] >= 3
    cfg = load_config(str(ROOT / "configs" / "camera.yaml"), {"processor.model": str(model)})
    got = evaluate_mot(cfg, [str(REAL / "TUD-Campus")], half="second", progress=False)["sequences"][0]
    for part in ("raw", "stabilized"):
        floor = np.floor((want[part]["localization"] - 0.03) * 100) / 100
        assert got[part]["localization"] >= floor, (part, got[part]["localization"], floor)


def test_a_walker_far_off_the_others_height_is_set_aside_not_fitted():
    from streamcam.evaluation.footage import plausible_walkers

    cam = np.zeros((4, 4), np.float32)
    tall = [(0.0, 0.0, 100.0, 250.0), (0.0, 0.0, 110.0, 260.0), (0.0, 0.0, 90.0, 240.0)]
    pigeon = (300.0, 400.0, 320.0, 442.0)
    items = plausible_walkers([(cam, tall[:2], (640, 480), []), (cam, [tall[2], pigeon], (640, 480), [(1.0, 2.0, 3.0, 4.0)]),
                               (cam, [pigeon], (640, 480), [])])
    assert [i[1] for i in items] == [tall[:2], [tall[2]]]
    assert items[1][3] == [(1.0, 2.0, 3.0, 4.0), pigeon]
    kept = plausible_walkers([(cam, tall, (640, 480), []), (cam, [pigeon], (640, 480), [])], keep_empty=True)
    assert [i[1] for i in kept] == [tall, []] and kept[1][3] == [pigeon]  # one item per frame, in order
