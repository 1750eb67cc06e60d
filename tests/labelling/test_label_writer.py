"""The labelling writer alone: labels -> train/, val/ + VAL.json, labels.yaml, the session, reloaded."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import yaml

from _label_fixtures import H, N, W, decode_all, write_png_folder, write_thermal, write_video
from streamcam.capture.indexed import IndexedFrames
from streamcam.evaluation.calibration import labelled_frames
from streamcam.labelling.labels import LabelError, Labels, Range, ValidationFrame, parse_classes, parse_labels
from streamcam.labelling.writer import load_session, train_segments, write_dataset
from streamcam.training.data import load_data

CLASSES = ("person", "empty")


def labels() -> Labels:
    return parse_labels({"ranges": [{"start": 20, "end": 32, "class": "person", "step": 3},
                                    {"start": 0, "end": 10, "class": "empty", "step": 2}],
                         "validation": [{"frame": 26, "boxes": [[40.5, 30, 70, 90], [100, 10, 120.25, 60]]},
                                        {"frame": 4, "boxes": []}]},
                        N, W, H, CLASSES)


def names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_writes_training_folder_val_json_and_labels_yaml(tmp_path):
    video = write_video(tmp_path / "clip.avi")
    out = tmp_path / "out"
    with IndexedFrames(video) as frames:
        summary = write_dataset(labels(), frames, out, CLASSES, default_step=2)
    # every step-th frame of each range, the validation frames (26, 4) left out
    assert names(out / "train" / "person") == ["f000020.png", "f000023.png", "f000029.png"]
    assert names(out / "train" / "empty") == ["f000000.png", "f000002.png", "f000006.png", "f000008.png"]
    assert summary["train"] == {"person": 3, "empty": 4} and summary["val_boxes"] == 2 and not summary["warnings"]
    assert summary["next"] == [f"streamcam train {out.as_posix()}/train --out {out.as_posix()}/model.onnx",
                               f"streamcam calibrate {out.as_posix()}/model.onnx --labels {out.as_posix()}/VAL.json"]
    ref = decode_all(video)
    assert np.array_equal(cv2.imread(str(out / "train" / "person" / "f000023.png")), ref[23])

    data = load_data(out / "train")
    assert data.counts() == {"empty": 4, "person": 3} and data.is_grey is False

    val = labelled_frames(out / "VAL.json")
    assert [len(b) for _, _, b in val] == [0, 2]  # frame order: 4 (no object), 26
    assert val[1][2] == [(40.5, 30.0, 70.0, 90.0), (100.0, 10.0, 120.25, 60.0)]
    assert np.array_equal(val[1][0], ref[26])
    doc = json.loads((out / "VAL.json").read_text())
    assert [f["image"] for f in doc["frames"]] == ["val/f000004.png", "val/f000026.png"]

    spec = yaml.safe_load((out / "labels.yaml").read_text())
    assert spec["video"] == "../clip.avi" and spec["step"] == 2
    # person 20..31 step 3 keeps 20 23 26 29; 26 is a validation frame: split so 29 stays in phase
    assert spec["segments"] == [{"start": 0, "end": 3, "class": "empty", "step": 2},
                                {"start": 6, "end": 10, "class": "empty", "step": 2},
                                {"start": 20, "end": 24, "class": "person", "step": 3},
                                {"start": 29, "end": 32, "class": "person", "step": 3}]


def test_labels_yaml_trains_on_the_same_frames(tmp_path):
    video = write_video(tmp_path / "clip.avi")
    out = tmp_path / "out"
    with IndexedFrames(video) as frames:
        write_dataset(labels(), frames, out, CLASSES)
    from_yaml = load_data(out / "labels.yaml", classes=["empty", "person"])
    from_folder = load_data(out / "train")
    assert [f.rsplit("#", 1)[1] for f in from_yaml.files] == ["0", "2", "6", "8", "20", "23", "29"]
    assert from_yaml.counts() == from_folder.counts()


def test_save_again_replaces_the_outputs_and_reloads(tmp_path):
    video = write_video(tmp_path / "clip.avi")
    out = tmp_path / "out"
    with IndexedFrames(video) as frames:
        write_dataset(labels(), frames, out, CLASSES, default_step=2)
        session = load_session(out, frames)
        assert session["labels"] == labels() and session["classes"] == CLASSES and session["step"] == 2
        smaller = Labels((Range(0, 3, "empty"),), ())
        summary = write_dataset(smaller, frames, out, CLASSES)
        assert len(summary["warnings"]) == 2  # one class only, and no boxes
        assert names(out / "train") == ["empty"] and names(out / "train" / "empty") == [
            "f000000.png", "f000001.png", "f000002.png"]
        assert names(out / "val") == [] and not (out / "VAL.json").exists()
        assert sorted(p.name for p in out.iterdir()) == ["label-session.json", "labels.yaml", "train", "val"]
        assert load_session(out, frames)["labels"] == smaller


def test_session_of_another_recording_or_a_foreign_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    with IndexedFrames(write_video(tmp_path / "clip.avi")) as frames:
        write_dataset(labels(), frames, out, CLASSES)
    with IndexedFrames(write_video(tmp_path / "short.avi", n=10)) as other:
        with pytest.raises(LabelError, match="use another --out"):
            load_session(out, other)
        (tmp_path / "busy").mkdir()
        (tmp_path / "busy" / "notes.txt").write_text("mine")
        with pytest.raises(LabelError, match="not empty"):
            load_session(tmp_path / "busy", other)
        assert load_session(tmp_path / "new", other) is None
    session = json.loads((out / "label-session.json").read_text())
    session["classes"] = ["person", "../../etc"]  # a hand-edited session cannot write outside train/
    (out / "label-session.json").write_text(json.dumps(session))
    with IndexedFrames(tmp_path / "clip.avi") as frames, pytest.raises(LabelError, match="cannot be a folder name"):
        load_session(out, frames)


def test_image_folder_and_16_bit_thermal_frames_are_written_as_stored(tmp_path):
    lab = Labels((Range(0, 4, "person"), Range(4, 6, "empty")), (ValidationFrame(1, ((60.0, 40.0, 90.0, 80.0),)),))
    with IndexedFrames(write_thermal(tmp_path / "ir")) as frames:
        write_dataset(lab, frames, tmp_path / "out", CLASSES)
    saved = cv2.imread(str(tmp_path / "out" / "train" / "person" / "f000002.png"), cv2.IMREAD_UNCHANGED)
    assert saved.dtype == np.uint16 and saved[0, 0] == 3020
    assert load_data(tmp_path / "out" / "train").counts() == {"empty": 2, "person": 3}
    assert labelled_frames(tmp_path / "out" / "VAL.json")[0][2] == [(60.0, 40.0, 90.0, 80.0)]
    with IndexedFrames(write_png_folder(tmp_path / "imgs")) as frames:
        write_dataset(Labels((Range(0, 12, "person", 4),)), frames, tmp_path / "out2", CLASSES)
    assert names(tmp_path / "out2" / "train" / "person") == ["f000000.png", "f000004.png", "f000008.png"]
    # labels.yaml of a folder or a thermal sequence is a labelled video too (frame i: the i-th file)
    from_yaml = load_data(tmp_path / "out" / "labels.yaml")
    assert [f.rsplit("#", 1)[1] for f in from_yaml.files] == ["0", "2", "3", "4", "5"]
    assert from_yaml.counts() == {"empty": 2, "person": 3}


def test_train_segments_drop_validation_frames_off_the_step():
    lab = Labels((Range(0, 10, "person", 2),), (ValidationFrame(3), ValidationFrame(0)))
    assert train_segments(lab) == [{"start": 2, "end": 10, "class": "person", "step": 2}]  # 3 is not kept anyway


BAD = [
    ({"ranges": []}, "labels.validation", "missing"),
    ({"ranges": {}, "validation": []}, "ranges", "expected a list"),
    ({"ranges": [{"start": 0, "end": 41, "class": "person"}], "validation": []}, "ranges[0].end", "value <= 40"),
    ({"ranges": [{"start": 5, "end": 5, "class": "person"}], "validation": []}, "ranges[0].end", "6 <= value"),
    ({"ranges": [{"start": -1, "end": 5, "class": "person"}], "validation": []}, "ranges[0].start", "0 <= value"),
    ({"ranges": [{"start": 1.5, "end": 5, "class": "person"}], "validation": []}, "ranges[0].start", "integer"),
    ({"ranges": [{"start": True, "end": 5, "class": "person"}], "validation": []}, "ranges[0].start", "integer"),
    ({"ranges": [{"start": 0, "end": 5, "class": "dog"}], "validation": []}, "ranges[0].class", "'dog'"),
    ({"ranges": [{"start": 0, "end": 5, "class": "person", "step": 0}], "validation": []}, "ranges[0].step", "1 <= value"),
    ({"ranges": [{"start": 0, "end": 5, "class": "person", "colour": 1}], "validation": []}, "ranges[0].colour",
     "unknown key"),
    ({"ranges": [{"start": 0, "end": 9, "class": "person"}, {"start": 8, "end": 12, "class": "empty"}],
      "validation": []}, "ranges[1]", "overlap"),
    ({"ranges": [], "validation": [{"frame": 40, "boxes": []}]}, "validation[0].frame", "value <= 39"),
    ({"ranges": [], "validation": [{"frame": 3, "boxes": []}, {"frame": 3, "boxes": []}]}, "validation[1].frame",
     "twice"),
    ({"ranges": [], "validation": [{"frame": 3, "boxes": [[10, 10, 5, 20]]}]}, "validation[0].boxes[0]", "x0 < x1"),
    ({"ranges": [], "validation": [{"frame": 3, "boxes": [[0, 0, 161, 20]]}]}, "validation[0].boxes[0]", "<= 160"),
    ({"ranges": [], "validation": [{"frame": 3, "boxes": [[0, 0, 10]]}]}, "validation[0].boxes[0]", "x0, y0"),
    ({"ranges": [], "validation": [{"frame": 3, "boxes": [[0, float("nan"), 10, 20]]}]},
     "validation[0].boxes[0][1]", "finite"),
    ({"ranges": [], "validation": [{"frame": 3, "boxes": [[0, "1", 10, 20]]}]}, "validation[0].boxes[0][1]", "finite"),
    ({"ranges": [], "validation": [{"frame": 3}]}, "validation[0].boxes", "missing"),
    ([], "labels", "expected an object"),
]


@pytest.mark.parametrize("doc, field, why", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_labels_name_the_field(doc, field, why):
    with pytest.raises(LabelError) as info:
        parse_labels(doc, N, W, H, CLASSES)
    assert info.value.field == field and why in str(info.value), str(info.value)


def test_classes_must_be_folder_names():
    assert parse_classes("person, empty,car") == ("person", "empty", "car")
    for bad in ("person", "a,a", "a,../b", "a,.hidden"):
        with pytest.raises(LabelError, match="classes"):
            parse_classes(bad)
