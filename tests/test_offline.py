"""`streamcam detect` without --config: the shipped config that fits the footage."""

import subprocess
import sys

import cv2
import numpy as np

from conftest import ROOT
from streamcam.offline import detect_config_name
from tools.bench.clips import write_mjpg


def _frames(colour: bool, n: int = 4):
    rng = np.random.default_rng(0)
    for _ in range(n):
        grey = rng.integers(0, 255, (96, 128), np.uint8)
        if colour:
            im = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
            im[..., 2] = 255 - im[..., 2]  # red unlike the rest: a colour camera
            yield im
        else:
            yield grey


def test_the_default_config_follows_the_footage(tmp_path):
    grey, colour = write_mjpg(tmp_path / "ir.avi", _frames(False), 10), write_mjpg(tmp_path / "rgb.avi", _frames(True), 10)
    assert detect_config_name(str(grey)) == "thermal.yaml"  # MJPG decodes grey to three near-equal channels
    assert detect_config_name(str(colour)) == "camera.yaml"
    assert detect_config_name("synthetic:30") == "default.yaml"
    assert detect_config_name(str(tmp_path / "seq.npy")) == "thermal.yaml"  # a raw thermal sequence by its kind
    (tmp_path / "g").mkdir()
    (tmp_path / "c").mkdir()
    cv2.imwrite(str(tmp_path / "g" / "0001.png"), next(_frames(False)))
    cv2.imwrite(str(tmp_path / "c" / "0001.png"), next(_frames(True)))
    assert detect_config_name(str(tmp_path / "g")) == "thermal.yaml"
    assert detect_config_name(str(tmp_path / "c")) == "camera.yaml"
    assert detect_config_name(str(tmp_path / "missing.mp4")) == "default.yaml"  # the detect names the fault


def test_detect_without_a_config_runs_grey_footage_through_the_thermal_config(tmp_path):
    clip = write_mjpg(tmp_path / "ir.avi", _frames(False, 3), 10)
    out = tmp_path / "d.jsonl"
    p = subprocess.run([sys.executable, "-m", "streamcam", "detect", str(clip), "--out", str(out), "--quiet"],
                       capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "--config thermal.yaml" in p.stderr
    assert len(out.read_text().splitlines()) == 3
    bad = subprocess.run([sys.executable, "-m", "streamcam", "detect", str(tmp_path / "missing.mp4"), "--out",
                          str(out)], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert bad.returncode == 2 and "does not exist" in bad.stderr
