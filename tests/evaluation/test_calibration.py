"""`streamcam calibrate`: the box rule is chosen on box-labelled validation frames and written into the model."""

import json
import shutil
import subprocess
import sys

import cv2
import pytest

from _tolerance import assert_close_f32, cam_logit_bound
from conftest import ROOT
from streamcam.errors import ConfigError
from streamcam.evaluation.calibration import (calibrate, complexity, labelled_frames, synthetic_frames,
                                              write_calibration)
from streamcam.processor.boxes import BoxRule

MODEL = ROOT / "engines" / "person-ir.onnx"


def test_calibration_sweeps_both_rule_families_and_the_model_carries_the_winner(tmp_path):
    pytest.importorskip("onnx")
    from streamcam.processor.engines import create_engine

    model = tmp_path / "person.onnx"
    shutil.copy(MODEL, model)
    cal = calibrate(str(model), synthetic_frames((5000,), 8))
    # the winner is at least as good as the best symmetric rule, which beats no margin at all
    assert cal["val_localization_accuracy"] >= cal["val_symmetric_margins_only"] >= cal["val_without_shrink"]
    assert cal["persons"] > 0 and cal["val_frames"] == 12 and 0.0 < cal["cam_threshold"] < 1.0
    # without the aspect family the winner is the best symmetric rule (the shipped default's calibration)
    sym = calibrate(str(model), synthetic_frames((5000,), 8), aspect=False)
    assert sym["box_aspect"] is None and sym["box_shrink_cells_y"] == sym["box_shrink_cells_bottom"]
    assert sym["val_localization_accuracy"] == cal["val_symmetric_margins_only"]
    write_calibration(str(model), cal)
    engine = create_engine(str(model))
    try:
        meta = engine.metadata
        assert meta.cam_threshold == cal["cam_threshold"]
        assert meta.box_rule == BoxRule(cal["box_shrink_cells"], cal["box_shrink_cells_y"],
                                        cal["box_shrink_cells_bottom"], cal["box_shrink_rel"], cal["box_aspect"])
        assert meta.provenance["box_calibration"]["val_localization_accuracy"] == cal["val_localization_accuracy"]
    finally:
        engine.close()


def test_ties_go_to_the_simpler_rule():
    plain, sym, tb, asp = BoxRule(), BoxRule(1.0, 1.0, 1.0), BoxRule(0, 2.0, 0.5), BoxRule(0, 1.0, 1.0, 0, 3.0)
    assert complexity(plain) < complexity(sym) < complexity(tb) < complexity(asp)


def _write_labelled(tmp_path, n=6):
    """A user's validation set: frames written as PNG files, boxes in a JSON next to them."""
    from streamcam.datasets.synthetic import SyntheticIRScene

    frames = []
    for k in range(n):
        fr = SyntheticIRScene(seed=5001, people=4 if k % 3 else 0).frame(k * 97)
        cv2.imwrite(str(tmp_path / f"f{k}.png"), fr.image)
        frames.append({"image": f"f{k}.png", "boxes": [list(o.box) for o in fr.objects if o.label == "person"]})
    labels = tmp_path / "val.json"
    labels.write_text(json.dumps({"frames": frames}))
    return labels, frames


def test_own_labelled_frames_calibrate_like_the_synthetic_ones(tmp_path):
    labels, frames = _write_labelled(tmp_path)
    got = labelled_frames(labels)
    assert len(got) == 6 and [len(b) for _, _, b in got] == [len(f["boxes"]) for f in frames]
    assert all(fmt == "GRAY8" and img.ndim == 2 for img, fmt, _ in got)
    # the same frames from the scene itself give the same calibration: the file loses nothing
    from streamcam.datasets.synthetic import SyntheticIRScene

    direct = [(fr.image, "GRAY8", [o.box for o in fr.objects if o.label == "person"])
              for fr in (SyntheticIRScene(seed=5001, people=4 if k % 3 else 0).frame(k * 97) for k in range(6))]
    a, b = calibrate(str(MODEL), got), calibrate(str(MODEL), direct)
    assert a["val_frames"] == 6 and {k: a[k] for k in a if k != "val_frames"} == {k: b[k] for k in b if k != "val_frames"}


@pytest.mark.parametrize("entry, match", [
    ({"image": "missing.png", "boxes": []}, r"frames\[0\]\.image: cannot read 'missing.png'"),
    ({"image": "f1.png", "boxes": [[10, 10, 5, 40]]}, r"frames\[0\]\.boxes\[0\]: expected \[x0, y0, x1, y1\]"),
    ({"image": "f1.png", "boxes": [[0, 0, 10, 9999]]}, r"frames\[0\]\.boxes\[0\].*640x480"),
    ({"picture": "f1.png"}, r"frames\[0\]: expected"),
])
def test_bad_labels_are_rejected_naming_the_entry(tmp_path, entry, match):
    _write_labelled(tmp_path, n=2)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([entry]))
    with pytest.raises(ConfigError, match=match):
        labelled_frames(bad)


def test_labels_without_any_box_and_unreadable_files_are_rejected(tmp_path):
    _write_labelled(tmp_path, n=1)  # frame 0 is empty
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps([{"image": "f0.png", "boxes": []}]))
    with pytest.raises(ConfigError, match="no frame has a box"):
        labelled_frames(empty)
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        labelled_frames(tmp_path / "junk.json")
    with pytest.raises(ConfigError, match="not found"):
        labelled_frames(tmp_path / "nope.json")


def test_cli_calibrates_a_model_from_a_labels_file_and_reports_bad_input(tmp_path):
    pytest.importorskip("onnx")
    labels, _ = _write_labelled(tmp_path)
    model = tmp_path / "m.onnx"
    shutil.copy(MODEL, model)
    run = [sys.executable, "-m", "streamcam", "calibrate", str(model), "--labels", str(labels)]
    out = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    from streamcam.processor.model_meta import read_metadata

    cal = read_metadata(str(model)).provenance["box_calibration"]
    assert cal["source"] == "labels val.json" and cal["val_frames"] == 6
    bad = subprocess.run(run[:-1] + [str(tmp_path / "nope.json")], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "streamcam calibrate: error: labels file not found" in bad.stderr


def test_sixteen_bit_thermal_and_colour_frames_are_read(tmp_path):
    import numpy as np

    from streamcam.datasets.synthetic import SyntheticIRScene

    fr = SyntheticIRScene(seed=5002, people=4).frame(0)
    raw16 = (fr.image.astype(np.uint16) * 64 + 1000)  # a radiometric-looking 16-bit frame
    cv2.imwrite(str(tmp_path / "t16.png"), raw16)
    cv2.imwrite(str(tmp_path / "rgb.png"), cv2.cvtColor(fr.image, cv2.COLOR_GRAY2BGR))
    boxes = [list(o.box) for o in fr.objects if o.label == "person"]
    (tmp_path / "l.json").write_text(json.dumps([{"image": "t16.png", "boxes": boxes},
                                                 {"image": "rgb.png", "boxes": boxes}]))
    (img16, fmt16, b16), (img3, fmt3, _) = labelled_frames(tmp_path / "l.json")
    assert img16.dtype == np.uint8 and fmt16 == "GRAY8" and len(b16) == len(boxes)
    assert np.corrcoef(img16.ravel(), fr.image.ravel())[0, 1] > 0.99  # stretched, not clipped
    assert fmt3 == "BGR8" and img3.shape == (*fr.image.shape, 3)


def test_the_decision_shift_moves_the_positive_logit_in_graph_and_metadata_alike(tmp_path):
    import numpy as np

    pytest.importorskip("onnx")
    from streamcam.datasets.synthetic import SyntheticIRScene
    from streamcam.processor.cam import class_activation_map
    from streamcam.processor.engines import create_engine
    from streamcam.processor.preprocess import preprocess

    model = tmp_path / "m.onnx"
    shutil.copy(MODEL, model)
    image = SyntheticIRScene(seed=5000, people=4).frame(0).image

    def logits_and_cam_means():
        eng = create_engine(str(model))
        try:
            meta = eng.metadata
            out = eng.infer(preprocess(image, "GRAY8", meta)[0])
            cams = class_activation_map(out.features, meta.cam_weights, list(range(len(meta.classes))))[0]
            bound = cam_logit_bound(out.features, meta.cam_weights, meta.cam_bias)
            return out.logits[0].astype(np.float64), cams.mean(axis=(1, 2)) + meta.cam_bias, meta, bound
        finally:
            eng.close()

    before, _, meta, _ = logits_and_cam_means()
    cal = calibrate(str(model), synthetic_frames((5000,), 4))
    cal["person_logit_shift"] = 1.5
    write_calibration(str(model), cal)
    after, explained, meta2, bound = logits_and_cam_means()
    pos = meta.class_index(meta.positive_classes[0])
    expected = before.copy()
    expected[pos] += 1.5
    # The same graph but for one bias: the rounding of that bias and of the logit's last additions
    # moves, within the identity's bound of these terms.
    assert_close_f32(after, expected, **bound)
    assert_close_f32(explained, after, **bound)  # mean(CAM) + b == logit still holds
    assert meta2.cam_threshold == cal["cam_threshold"] and meta2.box_aspect == cal["box_aspect"]


def test_frames_kept_elsewhere_calibrate_by_split_and_one_kind_of_frame_leaves_the_bias(tmp_path):
    from streamcam.evaluation.calibration import frames_of_split

    from streamcam.datasets.synthetic import SyntheticIRScene

    data, frames = tmp_path / "data", []
    data.mkdir()
    for k in range(4):
        fr = SyntheticIRScene(seed=5001, people=4).frame(97 * (k + 1))
        cv2.imwrite(str(data / f"f{k}.png"), fr.image)
        frames.append({"image": f"f{k}.png", "split": "calibration" if k < 3 else "evaluation",
                       "boxes": [list(o.box) for o in fr.persons]})
    labels = tmp_path / "labels.json"  # not next to the frames
    labels.write_text(json.dumps({"frames": frames}))
    got = frames_of_split(labels, data, "calibration")
    assert len(got) == 3 and all(b for _, _, b in got)
    cal = calibrate(str(MODEL), got)
    # every frame shows people: nothing places the decision, so the bias stays
    assert cal["person_logit_shift"] == 0.0 and cal["val_presence_accuracy_after"] == cal["val_presence_accuracy_before"]
    with pytest.raises(ConfigError, match="no frame of that split"):
        frames_of_split(labels, data, "training")


def test_the_f1_objective_trades_localization_for_precision_and_bad_objectives_are_refused():
    frames = list(synthetic_frames((5000,), 8))
    loc = calibrate(str(MODEL), frames, aspect=False)
    f1 = calibrate(str(MODEL), frames, aspect=False, objective="f1")

    def f1_of(r):
        a, p = r["val_localization_accuracy"], r["val_box_precision"]
        return 2 * a * p / (a + p) if a + p else 0.0

    assert loc["objective"] == "localization" and f1["objective"] == "f1"
    assert loc["val_objective"] == loc["val_localization_accuracy"]
    assert f1["val_objective"] == pytest.approx(f1_of(f1), abs=1e-4)
    # each is the best of the same sweep by its own measure
    assert f1_of(f1) >= f1_of(loc) - 1e-4
    assert loc["val_localization_accuracy"] >= f1["val_localization_accuracy"]
    with pytest.raises(ConfigError, match="objective"):
        calibrate(str(MODEL), frames, objective="recall")


def test_the_peak_radius_stays_under_a_person_s_width_so_people_abreast_stay_two():
    import numpy as np

    from streamcam.evaluation.calibration import calibrate_peaks, peak_radii
    from streamcam.processor.peak_boxes import PeakBoxRule

    yy, xx = np.mgrid[0:16, 0:20]

    def person_map(*centres):
        cam = np.full((16, 20), -4.0, np.float32)
        for x, y in centres:
            cam = np.maximum(cam, 3.0 - 1.5 * ((xx - x) ** 2 + (yy - y) ** 2)).astype(np.float32)
        return cam

    truth = PeakBoxRule(level=0.0, radius=1, nms=0.2, size=(0.25, 0.0), centre=0.0, aspect=2.5)
    # 64 px cells (a 1280x1024 frame at stride 16 of 320x256): people ~100 px wide, 1.6 cells.
    # Calibration frames that show people alone, with a stray bump a wide radius would swallow:
    alone = []
    for x, y in ((4, 5), (10, 8), (15, 4), (7, 11)):
        cam = person_map((x, y))
        cam[y, min(19, x + 3)] = 2.5  # a local maximum three cells away: a stray peak
        alone.append((cam, [b for b, _ in truth.boxes(person_map((x, y)), (1280, 1024))], (1280, 1024)))
    assert peak_radii(alone) == (1,)
    rule = PeakBoxRule.from_dict(calibrate_peaks(alone)["rule"])
    assert rule.radius == 1
    # on these frames alone radius 3 looks better (it swallows the stray peaks) ...
    wider = PeakBoxRule(**{**rule.to_dict(), "radius": 3, "size": tuple(rule.size)})
    assert sum(len(wider.boxes(c, s)) for c, _, s in alone) < sum(len(rule.boxes(c, s)) for c, _, s in alone)
    # ... so two people walking abreast, 2 cells (128 px) apart, keep a box each
    pair = person_map((8, 8), (10, 8))
    assert len(rule.boxes(pair, (1280, 1024))) == 2
    assert len(wider.boxes(pair, (1280, 1024))) == 1
    # people many cells wide (a near camera) leave every radius open
    wide = [(c, [(b[0] - 300, b[1], b[2] + 300, b[3]) for b in g], s) for c, g, s in alone]
    assert peak_radii(wide) == (1, 2, 3)


def test_a_multi_scale_model_can_be_calibrated_at_one_chosen_scale_and_only_a_trained_one():
    lwir = str(ROOT / "engines" / "person-lwir.onnx")  # a multiple-instance model trained at 640x512 and 320x256
    frames = list(synthetic_frames((5000,), 3))
    full, half = calibrate(lwir, frames, objective="f1", scale=1.0), calibrate(lwir, frames, objective="f1", scale=0.5)
    assert (full["input_width"], full["input_height"], full["input_scale"]) == (640, 512, 1.0)
    assert (half["input_width"], half["input_height"], half["input_scale"]) == (320, 256, 0.5)
    assert full["input_scale_fixed"] and half["input_scale_fixed"]
    chosen = calibrate(lwir, frames)  # the objective localization: a peak rule's scale still goes by F1
    assert not chosen["input_scale_fixed"] and chosen["peak_boxes"] and chosen["scale_chosen_by"] == "f1"
    by = chosen["val_objective_by_scale"]
    f1 = 2 * chosen["val_peak_localization_accuracy"] * chosen["val_peak_precision"] / (
        chosen["val_peak_localization_accuracy"] + chosen["val_peak_precision"])
    assert by[str(chosen["input_scale"])] == pytest.approx(f1) == pytest.approx(max(by.values()))
    with pytest.raises(ConfigError, match=r"trained at the scales \[1.0, 0.5\]"):
        calibrate(lwir, frames, scale=0.75)
    with pytest.raises(ConfigError, match="not trained at several input scales"):
        calibrate(str(MODEL), frames, scale=1.0)


def test_a_scale_chosen_by_less_than_one_labelled_person_is_called_chance():
    from streamcam.evaluation.calibration import scale_choice_undecided

    llvip = {"val_objective_by_scale": {"1.0": 0.5455, "0.5": 0.6154}, "persons": 5, "objective": "f1",
             "input_scale_fixed": False}  # the LLVIP sample's 4 calibration frames
    note = scale_choice_undecided(llvip)
    assert note and "0.5 over 1.0" in note and "5 people" in note and "--scale" in note
    assert scale_choice_undecided({**llvip, "persons": 50}) is None  # 0.07 is more than 1 / 50
    assert scale_choice_undecided({**llvip, "input_scale_fixed": True}) is None  # the user chose
    assert scale_choice_undecided({"val_objective_by_scale": {"1.0": 0.5}, "persons": 5}) is None  # one scale
    assert scale_choice_undecided({"persons": 5}) is None  # not a multi-scale model
