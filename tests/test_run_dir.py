"""One running pipeline per run directory, and file sources that end (loop: false) end the run cleanly."""

import json
import signal
import subprocess
import sys

import cv2
import numpy as np

from _pipeline_fixtures import pipeline_yaml, published, receive, stage_pids, start_run
from _wait import wait_for


def test_a_second_run_of_the_same_config_refuses_naming_the_first(short_tmp, tiny_model):
    cfg = pipeline_yaml(short_tmp, tiny_model)
    first = start_run(cfg)
    try:
        pub = published(short_tmp / "run")
        assert receive(pub, "detections/cam0", 3)
        pids = sorted(stage_pids(short_tmp / "run"))
        stats = short_tmp / "run" / "stats" / "publisher.json"
        stats_before = wait_for("the publisher's stats (written once a second)", stats.exists, timeout=10)
        second = subprocess.run([sys.executable, "-m", "streamcam", "run", str(cfg)], capture_output=True,
                                text=True, timeout=60)
        assert second.returncode == 2, second.stdout + second.stderr
        assert f"pid {first.pid}" in second.stderr and "in use" in second.stderr, second.stderr
        # The first run is untouched: its stages, its sockets, its stats.
        assert sorted(stage_pids(short_tmp / "run")) == pids
        assert stats_before and stats.exists()  # a second run would have deleted the stats dir
        assert published(short_tmp / "run") == pub  # and its bound addresses
        assert receive(pub, "detections/cam0", 3)
    finally:
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=15)
    assert first.returncode == 0, out
    # Its lock went with it: the config runs again.
    again = subprocess.run([sys.executable, "-m", "streamcam", "run", str(cfg), "--duration", "1"],
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr


def test_a_file_that_ends_ends_the_run_cleanly(short_tmp, tiny_model):
    video = short_tmp / "clip.avi"
    w = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 20, (160, 120))
    for i in range(30):
        frame = np.zeros((120, 160, 3), np.uint8)
        frame[:, (i * 5) % 160:] = 120
        w.write(frame)
    w.release()
    cfg = pipeline_yaml(short_tmp, tiny_model)
    cfg.write_text(cfg.read_text().replace(
        "source: {kind: synthetic, width: 320, height: 240, fps: 20, people: 2, confusers: 1}",
        f"source: {{kind: file, uri: {video}, loop: false, fps: 20}}"))
    r = subprocess.run([sys.executable, "-m", "streamcam", "run", str(cfg)], capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "restart" not in r.stdout + r.stderr, r.stdout + r.stderr
    summary = json.loads((short_tmp / "run" / "summary.json").read_text())
    capture = json.loads((short_tmp / "run" / "stats" / "capture-cam0.json").read_text())
    assert capture["captured"] == 30  # played once, not looped
    assert 0 < summary["streams"]["cam0"]["published"] <= 30
    assert stage_pids(short_tmp / "run") == []
