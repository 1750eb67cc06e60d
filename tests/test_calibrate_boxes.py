"""tools/calibrate_boxes.py: the box rule is chosen on validation frames and written into the model."""

import shutil
import sys

import pytest

from conftest import ROOT


def test_calibration_sweeps_both_rule_families_and_the_model_carries_the_winner(tmp_path):
    pytest.importorskip("onnx")
    sys.path.insert(0, str(ROOT / "tools"))
    from calibrate_boxes import calibrate, write_metadata

    from streamcam.processor.boxes import BoxRule
    from streamcam.processor.engines import create_engine

    model = tmp_path / "person.onnx"
    shutil.copy(ROOT / "engines" / "person-ir.onnx", model)
    cal = calibrate(str(model), seeds=(5000,), frames=8)
    # the winner is at least as good as the best symmetric rule, which beats no margin at all
    assert cal["val_localization_accuracy"] >= cal["val_symmetric_margins_only"] >= cal["val_without_shrink"]
    assert cal["persons"] > 0 and 0.0 < cal["cam_threshold"] < 1.0
    # without the aspect family the winner is the best symmetric rule (the shipped default's calibration)
    sym = calibrate(str(model), seeds=(5000,), frames=8, aspect=False)
    assert sym["box_aspect"] is None and sym["box_shrink_cells_y"] == sym["box_shrink_cells_bottom"]
    assert sym["val_localization_accuracy"] == cal["val_symmetric_margins_only"]
    write_metadata(str(model), cal)
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
    sys.path.insert(0, str(ROOT / "tools"))
    from calibrate_boxes import _complexity

    from streamcam.processor.boxes import BoxRule

    plain, sym, tb, asp = BoxRule(), BoxRule(1.0, 1.0, 1.0), BoxRule(0, 2.0, 0.5), BoxRule(0, 1.0, 1.0, 0, 3.0)
    assert _complexity(plain) < _complexity(sym) < _complexity(tb) < _complexity(asp)

