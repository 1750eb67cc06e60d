"""The whole pipeline as a user runs it: real processes, real sockets, real signals."""

import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from streamcam import protocol
from _label_fixtures import decode_all
from _pipeline_fixtures import bound, pipeline_yaml, published, receive, stage_pids, start_run
from _processor_fixtures import processor_thread, stats_when
from _wait import wait_for


@pytest.mark.slow
def test_run_publishes_frames_and_detections_and_stops_cleanly(short_tmp, tiny_model):
    cfg = pipeline_yaml(short_tmp, tiny_model, metrics=True)
    sup = start_run(cfg)
    try:
        pub = published(short_tmp / "run")
        dets = receive(pub, "detections/cam0", 10)
        frames = receive(pub, "frames/cam0", 3)
        assert len(dets) == 10 and len(frames) == 3
        for m in dets:
            assert m.kind == "detections" and m.stream == "cam0" and m.header["width"] == 320
            assert m.header["latency_ms"] >= 0 and isinstance(m.detections(), list)
        seqs = [m.seq for m in dets]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        img = cv2.imdecode(np.frombuffer(frames[-1].part("image"), np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (240, 320, 3)
        assert not frames[-1].has_part("image_plain")  # serve is off: no heatmap-free copy is encoded
        pids = stage_pids(short_tmp / "run")
        assert len(pids) == 3, pids  # publisher, processor, one capture
        stats = receive(pub, "stats/", 1)
        assert stats and stats[0].header["streams"]["cam0"]["published"] > 0
        import urllib.request

        # Each stage's metrics on a port the OS picked (metrics.base_port: 0), read back from the run dir.
        pub_metrics, proc_metrics, cap_metrics = (
            urllib.request.urlopen(bound(short_tmp / "run", stage, "metrics"), timeout=5).read().decode()
            for stage in ("publisher", "processor", "capture-cam0"))
        assert 'streamcam_latency_ms_bucket{le="100.0",stage="publisher",stream="cam0"}' in pub_metrics
        assert 'streamcam_frames_out_total{stage="processor",stream="cam0"}' in proc_metrics
        assert 'streamcam_engine_ms_count{backend="onnxruntime",stage="processor"}' in proc_metrics
        assert 'streamcam_frames_in_total{stage="capture",stream="cam0"}' in cap_metrics
    finally:
        t0 = time.monotonic()
        sup.send_signal(signal.SIGTERM)
        out, _ = sup.communicate(timeout=10)
        stop_s = time.monotonic() - t0
    assert sup.returncode == 0, out
    assert stop_s < 2.5, f"stopping took {stop_s:.2f} s"
    # The supervisor has reaped them; /proc may lag a moment.
    wait_for("no orphaned stage processes", lambda: stage_pids(short_tmp / "run") == [], timeout=2.0)
    assert not list((short_tmp / "run").glob("*.sock")), "stale ipc socket files"
    summary = json.loads((short_tmp / "run" / "summary.json").read_text())
    assert summary["streams"]["cam0"]["published"] > 0
    assert "stream cam0" in out and "latency" in out


@pytest.mark.slow
def test_a_killed_stage_is_restarted_and_the_stream_resumes(short_tmp, tiny_model):
    cfg = pipeline_yaml(short_tmp, tiny_model)
    sup = start_run(cfg)
    try:
        pub = published(short_tmp / "run")
        assert receive(pub, "detections/cam0", 3)
        [victim] = stage_pids(short_tmp / "run", "process")
        os.kill(victim, signal.SIGKILL)
        killed_ns = time.time_ns()
        # Generous timeouts: a restarted stage imports and loads its model again, slowly on a loaded
        # machine; the condition, not the time, is what is tested.
        wait_for("the supervisor to replace the killed processor",
                 lambda: (pids := stage_pids(short_tmp / "run", "process")) and victim not in pids, timeout=60.0)
        # Results the old processor sent before it died may still come out of the publisher; a frame
        # captured after the kill can only have been detected by the new one.
        wait_for("a detection of a frame captured after the kill",
                 lambda: [m for m in receive(pub, "detections/cam0", 5, timeout=1.0) if m.t_capture_ns > killed_ns],
                 timeout=60.0)
    finally:
        sup.send_signal(signal.SIGINT)
        out, _ = sup.communicate(timeout=10)
    assert "restarts: {'processor': 1}" in out


def test_bad_config_is_rejected_before_anything_starts(short_tmp, tiny_model):
    cfg = pipeline_yaml(short_tmp, tiny_model)
    cfg.write_text(cfg.read_text().replace("min_score: 0.0", "min_scor: 0.0"))
    r = subprocess.run([sys.executable, "-m", "streamcam", "run", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "processor.min_scor: unknown key" in r.stderr
    assert not (short_tmp / "run").exists()


def test_corrupt_model_gives_one_clear_error(short_tmp):
    bad = short_tmp / "bad.onnx"
    bad.write_bytes(b"this is not a model")
    cfg = pipeline_yaml(short_tmp, bad)
    r = subprocess.run([sys.executable, "-m", "streamcam", "process", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "cannot load model" in r.stderr and str(bad) in r.stderr


def test_malformed_frames_are_counted_and_the_processor_keeps_going(short_tmp, tiny_model):
    """Garbage pushed into the processor's frames socket is rejected, counted, and skipped."""
    from streamcam.config import load_config

    cfg = load_config(pipeline_yaml(short_tmp, tiny_model))
    with processor_thread(cfg) as (push, pull):
        push.send_multipart([b"frame/cam0", b"{broken"])
        push.send_multipart([b"frame/cam0"])
        img = np.zeros((240, 320), np.uint8)
        good = protocol.encode("frame", "cam0", 1, time.time_ns(), [protocol.raw_part("image", img, "GRAY8")])
        got = None
        deadline = time.monotonic() + 10
        while got is None and time.monotonic() < deadline:
            push.send_multipart(good)
            if pull.poll(300):
                got = protocol.decode(pull.recv_multipart())
        assert got is not None and got.kind == "result" and got.seq == 1
        assert got.part("cam").dtype == np.float32
        stats = stats_when(cfg.run_dir, lambda s: s["rejected"] == {"bad_header": 1, "too_few_parts": 1})
        assert stats["rejected"] == {"bad_header": 1, "too_few_parts": 1}


def test_detect_writes_one_json_line_per_frame(short_tmp, tiny_model):
    cfg = pipeline_yaml(short_tmp, tiny_model)
    out = short_tmp / "d.jsonl"
    r = subprocess.run([sys.executable, "-m", "streamcam", "detect", "synthetic:12", "--config", str(cfg), "--out", str(out),
                        "--quiet"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 12 and [x["seq"] for x in lines] == list(range(12))
    for rec in lines:
        assert set(rec) == {"seq", "t_capture_ns", "stream", "width", "height", "detections", "probs"}
        assert (rec["width"], rec["height"]) == (320, 240)
        assert set(rec["probs"]) == {"no_person", "person"} and sum(rec["probs"].values()) == pytest.approx(1, abs=1e-3)
        for d in rec["detections"]:
            assert set(d) == {"box", "score", "label", "track_id"} and len(d["box"]) == 4


def test_detect_writes_the_annotated_video(short_tmp, tiny_model):
    cfg = pipeline_yaml(short_tmp, tiny_model)
    out, video = short_tmp / "d.jsonl", short_tmp / "d.mp4"
    r = subprocess.run([sys.executable, "-m", "streamcam", "detect", "synthetic:10", "--config", str(cfg), "--out", str(out),
                        "--video", str(video), "--quiet"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["video"] == str(video)
    frames = decode_all(video)
    assert len(frames) == 10 and frames[0].shape == (240, 320, 3)
    # Annotated, not the grey source: the heatmap blend colours the frame.
    b, g, rr = (frames[0][..., i].astype(int) for i in range(3))
    assert max(abs(b - g).mean(), abs(g - rr).mean()) > 5


def test_help_lists_every_command():
    r = subprocess.run([sys.executable, "-m", "streamcam", "--help"], capture_output=True, text=True)
    for cmd in ("run", "capture", "process", "publish", "view", "serve", "record", "detect", "demo", "eval", "info"):
        assert f"    {cmd}" in r.stdout
    r = subprocess.run([sys.executable, "-m", "streamcam", "info"], capture_output=True, text=True)
    assert "onnxruntime  usable" in r.stdout and "tensorrt" in r.stdout


def test_import_is_light():
    code = "import sys, streamcam, streamcam.config, streamcam.protocol; " \
           "print(sorted(m for m in ('torch', 'tensorrt', 'pycuda', 'onnxruntime', 'cv2', 'scipy') if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "[]", r.stdout + r.stderr


def test_detect_every_runs_the_network_on_every_nth_frame_and_predicts_between(short_tmp, tiny_model):
    """processor.detect_every 3: of 9 frames of one stream, 3 go through the engine; all 9 are answered."""
    from streamcam.config import load_config

    cfg = load_config(pipeline_yaml(short_tmp, tiny_model), {"processor.detect_every": 3})
    got = []
    with processor_thread(cfg) as (push, pull):
        img = np.zeros((240, 320), np.uint8)
        t0 = time.time_ns()
        for seq in range(9):
            push.send_multipart(protocol.encode("frame", "cam0", seq, t0 + seq * 50_000_000,
                                                [protocol.raw_part("image", img, "GRAY8")]))
            deadline = time.monotonic() + 10  # one at a time: the newest-frame policy skips none
            while time.monotonic() < deadline and len(got) <= seq:
                if pull.poll(200):
                    got.append(protocol.decode(pull.recv_multipart()))
        assert [m.seq for m in got] == list(range(9))
        engine = [m.header["timings_ms"]["engine"] for m in got]
        assert [e > 0 for e in engine] == [True, False, False] * 3
        assert all(m.part("cam") is not None for m in got)  # the last map is shown between detections
        stats = stats_when(cfg.run_dir, lambda s: s["predicted"] == 6)
        assert stats["predicted"] == 6 and stats["detect_every"] == 3
    with pytest.raises(Exception, match="detect_every"):
        load_config(pipeline_yaml(short_tmp, tiny_model), {"processor.detect_every": 0})
