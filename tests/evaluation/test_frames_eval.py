"""`streamcam eval --frames-dir`: real frames with box labels, scored like the synthetic eval."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ROOT
from streamcam.errors import ConfigError
from streamcam.evaluation.frames import evaluate_frames, read_frame, read_labels, score_frame, select
from streamcam.processor.detector import FrameResult
from streamcam.protocol import Detection


class _FixedDetector:
    """Stands in for a Detector: the boxes of each frame are given, so every figure can be counted by hand."""

    class_names, class_indices = ("person",), [1]

    def __init__(self, boxes_by_mean):
        self.boxes_by_mean = boxes_by_mean  # frames told apart by their grey level

    def detect(self, image, pixel_format="GRAY8", stream=""):
        boxes = self.boxes_by_mean[int(round(float(image.mean())))]
        return FrameResult([Detection(tuple(map(float, b)), 0.9, "person") for b in boxes], None,
                           np.array([0.1, 0.9], np.float32))


def _folder(tmp_path):
    """Two 200x100 frames (grey 50 and 100) and labels for them, as VAL.json and as CSV."""
    (tmp_path / "ir").mkdir()
    for name, level in (("a.jpg", 50), ("b.png", 100)):
        cv2.imwrite(str(tmp_path / "ir" / name), np.full((100, 200, 3), level, np.uint8))
    frames = [{"image": "ir/a.jpg", "split": "evaluation", "boxes": [[10, 10, 30, 50], [100, 10, 120, 50]]},
              {"image": "ir/b.png", "split": "calibration", "boxes": [[50, 20, 70, 80]]}]
    (tmp_path / "labels.json").write_text(json.dumps({"frames": frames}))
    rows = ["image,xmin,ymin,xmax,ymax,label"] + [
        f"{f['image']},{b[0]},{b[1]},{b[2]},{b[3]},person" for f in frames for b in f["boxes"]]
    (tmp_path / "boxes.csv").write_text("\n".join(rows + ["ir/b.png,0,0,5,5,car"]) + "\n")
    return frames


def test_hand_counted_frames(tmp_path):
    _folder(tmp_path)
    det = _FixedDetector({
        # frame a: one exact box (IoU 1), one on the second person but too wide (IoU 0.5 -> 20x40 in 40x40:
        # 800 / 1600 = 0.5, a hit), one box on the background
        50: [[10, 10, 30, 50], [90, 10, 130, 50], [150, 60, 190, 90]],
        # frame b: a box half the person's height (IoU 0.5 -> hit? 20x30 / 20x60 = 0.5: a hit) and a
        # second box on the same person (no second match, but its centre is inside)
        100: [[50, 20, 70, 50], [55, 40, 65, 70]],
    })
    r = evaluate_frames(det, tmp_path, read_labels(tmp_path / "labels.json"))
    assert (r["persons"], r["boxes"], r["localized"]) == (3, 5, 3)
    assert r["localization_accuracy"] == 1.0 and r["box_precision"] == 0.6
    assert r["centre_hit_rate"] == 0.8  # all but the background box
    assert r["persons_centre_hit"] == 1.0
    assert [f["localized"] for f in r["per_frame"]] == [2, 1]
    # a stricter case by hand: a box shifted off its person
    s = score_frame([[20, 10, 40, 50]], [[10, 10, 30, 50]])  # IoU 400/1200 = 1/3, centre (30, 30) on the edge
    assert s["localized"] == 0 and s["centre_hits"] == 0 and s["best_iou"] == [0.3333]


def test_csv_and_json_labels_agree_and_splits_select(tmp_path):
    frames = _folder(tmp_path)
    j, c = read_labels(tmp_path / "labels.json"), read_labels(tmp_path / "boxes.csv")
    assert [(f.image, f.boxes) for f in j] == [(f.image, f.boxes) for f in c]  # the car row is ignored
    assert [f.image for f in select(j, "evaluation")] == ["ir/a.jpg"]
    assert len(select(j, None)) == len(frames)
    with pytest.raises(ConfigError, match="no frame of that split"):
        select(j, "training")
    img, fmt = read_frame(tmp_path, "ir/a.jpg")  # a grey JPEG stored as three channels comes back grey
    assert fmt == "GRAY8" and img.shape == (100, 200)


@pytest.mark.parametrize("text, match", [
    ('{"frames": [{"image": "a.jpg", "boxes": [[5, 5, 1, 9]]}]}', r"frames\[0\]\.boxes\[0\]"),
    ('{"frames": []}', "non-empty list"),
    ("{nope", "not valid JSON"),
])
def test_bad_labels_name_the_entry(tmp_path, text, match):
    (tmp_path / "l.json").write_text(text)
    with pytest.raises(ConfigError, match=match):
        read_labels(tmp_path / "l.json")


def test_cli_scores_a_folder_through_the_pipeline_detector(tmp_path, tiny_model):
    _folder(tmp_path)
    out = tmp_path / "r.json"
    run = [sys.executable, "-m", "streamcam", "eval", "--frames-dir", str(tmp_path), "--labels",
           str(tmp_path / "boxes.csv"), "--model", tiny_model, "--out", str(out), "--set", "processor.min_score=0.0"]
    p = subprocess.run(run, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["frames"] == 2 and r["persons"] == 3 and len(r["per_frame"]) == 2
    assert r["model"] == str(Path(tiny_model).resolve())
    assert "--config thermal.yaml" in p.stderr  # grey frames, no --config: the real-LWIR config, said so
    bad = subprocess.run(run[:4] + ["--frames-dir", str(tmp_path)], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert bad.returncode != 0 and "--labels" in bad.stderr


def test_without_a_config_grey_frames_are_scored_by_the_thermal_config_colour_by_the_camera_one(tmp_path):
    from streamcam.evaluation.frames import frames_config_name

    _folder(tmp_path)  # grey frames stored as three equal channels, as LLVIP's JPEGs
    assert frames_config_name(tmp_path, tmp_path / "labels.json") == "thermal.yaml"
    colour = np.zeros((100, 200, 3), np.uint8)
    colour[..., 2] = 200
    cv2.imwrite(str(tmp_path / "ir" / "a.jpg"), colour)
    assert frames_config_name(None, tmp_path / "labels.json") == "camera.yaml"
    assert frames_config_name(tmp_path, tmp_path / "missing.json") == "default.yaml"  # the eval names the fault
    p = subprocess.run([sys.executable, "-m", "streamcam", "eval", "--frames-dir", str(tmp_path), "--labels",
                        str(tmp_path / "missing.json")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 2 and "labels file not found" in p.stderr


# --------------------------------------------------------------------------- the real LLVIP sample
DATA = Path(os.environ.get("STREAMCAM_THERMAL_DATA", ROOT / ".." / "shared" / "data" / "thermal" / "LLVIP-sample"))
LABELS = ROOT / "tests" / "data" / "llvip-sample-labels.json"
QUALITY = ROOT / "docs" / "quality" / "thermal-real.json"


def test_our_labels_keep_the_published_boxes_and_split_the_frames():
    frames = read_labels(LABELS)
    assert len(frames) == 12 and all(f.boxes for f in frames)
    cal = [f for f in frames if f.split == "calibration"]
    assert 0 < len(cal) <= 4 and all(f.split in ("calibration", "evaluation") for f in frames)
    published = {("ir/190001.jpg", (1018.0, 330.0, 1137.0, 588.0)), ("ir/190001.jpg", (1204.0, 304.0, 1280.0, 531.0)),
                 ("ir/190005.jpg", (19.0, 286.0, 139.0, 484.0))}
    ours = {(f.image, b) for f in frames for b in f.boxes}
    assert published <= ours
    for f in frames:
        for b in f.boxes:
            assert 0 <= b[0] < b[2] <= 1280 and 0 <= b[1] < b[3] <= 1024


@pytest.mark.skipif(not (DATA / "ir").is_dir(), reason="the LLVIP sample is not here (../shared/data/thermal)")
@pytest.mark.parametrize("config, quality", [
    ("default.yaml", "thermal-real.json"),       # the synthetic scene's model, engines/person-ir.onnx
    ("thermal.yaml", "thermal-real-lwir.json"),  # the real-LWIR model, engines/person-lwir.onnx
])
def test_the_shipped_thermal_models_find_the_people_of_real_lwir_frames(config, quality):
    """The evaluation frames (never trained or calibrated on) stay above the checked-in floors."""
    from streamcam.config import load_config
    from streamcam.evaluation.frames import run_frames_eval

    doc = json.loads((QUALITY.parent / quality).read_text())  # what `make eval-thermal` wrote for the shipped model
    cfg = load_config(str(ROOT / "configs" / config))
    r = run_frames_eval(cfg, DATA, LABELS, split="evaluation")
    assert r["persons"] == doc["persons"]
    for key in ("localization_accuracy", "box_precision", "centre_hit_rate"):
        floor = np.floor((doc[key] - 0.05) * 20) / 20  # a bit below the measurement (another CPU's float kernels)
        assert r[key] >= floor, (key, r[key], floor)
