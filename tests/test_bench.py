"""The benchmark tools run at tiny sizes and return well-formed, positive numbers (fast: no full runs)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
from tools.bench import interleaved, machine_info, peer_available, ratio_median  # noqa: E402


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def _need(module: str) -> None:
    ok, why = peer_available(module)
    if not ok:
        pytest.skip(why)


def test_interleaved_and_ratio():
    rates = interleaved({"a": lambda: None, "b": lambda: sum(range(100))}, rounds=3, iters=5)
    assert set(rates) == {"a", "b"} and all(len(v) == 3 and all(_positive(x) for x in v) for v in rates.values())
    assert ratio_median([2.0, 4.0, 6.0], [1.0, 2.0, 3.0]) == 2.0


def test_machine_info_has_versions():
    info = machine_info()
    assert info["cores"] >= 1 and info["cpu"] and info["numpy"] == np.__version__


def test_peer_missing_is_a_reason():
    ok, why = peer_available("no_such_peer_package_xyz")
    assert not ok and "pip install" in why


def test_limits_count_macs_and_peak(tmp_path):
    from tests.tiny_model import make_tiny_gap_onnx
    from tools.bench import limits

    path = str(tmp_path / "tiny.onnx")
    make_tiny_gap_onnx(path, width=64, height=48, k=16)
    macs = limits.count_macs(path)
    # conv1: 8x24x32 outputs x (1x3x3); conv2: 16x12x16 x (8x3x3); gemm: 2 x 16.
    assert macs["conv"] == 8 * 24 * 32 * 9 + 16 * 12 * 16 * 72 and macs["gemm"] == 32
    res = limits.run({"tiny": path}, threads_list=(1,), n=128, seconds=0.05)
    row = res["rows"][0]
    assert all(_positive(row[k]) for k in ("engine_fps", "achieved_gflops", "peak_gflops", "fraction_of_peak"))


def test_transport_streamcam_pushpull_and_imagezmq(tmp_path):
    from tools.bench import transport

    frame = np.zeros((48, 64, 3), np.uint8)
    r = transport.trial("streamcam PUSH/PULL", "ipc", frame, str(tmp_path), 0, warmup_s=0.02, window_s=0.1)
    assert _positive(r["fps"]) and _positive(r["p99_ms"]) and r["p50_ms"] <= r["p99_ms"]
    assert _positive(transport.memcpy_rate(frame.nbytes, 0.01))
    _need("imagezmq")
    r = transport.trial("imagezmq REQ/REP", "tcp", frame, str(tmp_path), 1, warmup_s=0.02, window_s=0.1)
    assert _positive(r["fps"]) and _positive(r["p99_ms"])


def test_report_renders_tables():
    from tools.bench import report

    md = report.cam_section({"rows": [{"threads": 1, "method": "streamcam", "fps": 10.0, "ms_per_frame": 100.0},
                                      {"threads": 1, "method": "torchcam", "fps": 5.0, "ms_per_frame": 200.0,
                                       "speedup": 2.0, "target": 1.5, "verdict": "PASS"}],
                             "skipped": {"grad-cam": "not installed"}, "rounds": 1, "iters": 1, "model": "m"})
    assert "| 1 | torchcam |" in md and "PASS" in md and "Skipped grad-cam" in md


@pytest.mark.torch
def test_cam_bench_tiny(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    from tools.bench import cam

    res = cam.run(threads_list=(1,), rounds=1, iters=1)
    names = {r["method"] for r in res["rows"]}
    assert "streamcam" in names and all(_positive(r["fps"]) for r in res["rows"])
    for peer, module in (("torchcam", "torchcam"), ("grad-cam", "pytorch_grad_cam")):
        if peer_available(module)[0]:
            row = next(r for r in res["rows"] if r["method"] == peer)
            assert _positive(row["speedup"]) and row["verdict"] in ("PASS", "MISSED")
        else:
            assert peer in res["skipped"]


@pytest.mark.torch
def test_pipeline_scaling_and_naive(tmp_path):
    pytest.importorskip("torch")
    from tools.bench import pipeline

    path, desc = pipeline.ensure_model(str(tmp_path))
    assert os.path.isfile(path) and desc
    rows = pipeline.scaling_by_size(path, threads=1, iters=1, sizes=((320, 240), (640, 480)))
    assert [r["size"] for r in rows][0] == "320x240" and all(_positive(r["total_ms"]) for r in rows)
    assert _positive(pipeline.bare_engine_fps(path, 1, 0.05))
    for m in ("torchcam", "imagezmq"):
        _need(m)
    n = pipeline.naive_loop(0.2, threads=1)
    assert _positive(n["fps"]) and _positive(n["p99_ms"])


def test_stage_cpu_reads_processes_and_threads():
    """tools.bench_camera's /proc readers: this process's CPU, faults and threads; a gone pid is None."""
    from tools.bench_camera import process_cpu_s, process_usage, thread_cpu_s

    if not os.path.isdir("/proc/self/task"):
        pytest.skip("no /proc here")
    sum(range(200_000))
    cpu, faults = process_usage(os.getpid())
    assert cpu > 0 and faults > 0 and process_cpu_s(os.getpid()) >= cpu
    threads = thread_cpu_s(os.getpid())
    assert os.getpid() in threads and sum(threads.values()) <= process_cpu_s(os.getpid()) + 0.05
    assert process_usage(2**22 + 12345) is None


def test_camera_steps_tiny(tmp_path):
    """tools.bench_camera_steps' one path on a few 768x576 MJPG frames: every step timed, positive."""
    import cv2

    from tools.bench_camera_steps import STEPS, run_path

    video = tmp_path / "v.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 25, (768, 576))
    for i in range(6):
        vw.write(np.full((576, 768, 3), 40 * i, np.uint8))
    vw.release()
    for path in ("before", "after"):
        got = run_path(path, str(video), frames=2, every=2, engine=False)
        assert set(got["ms"]) == set(STEPS) == set(got["faults"])
        assert all(_positive(x) for x in got["ms"]["decode"] + got["ms"]["JPEG"] + got["ms"]["preprocess"])
        assert len(got["ms"]["decode"]) == 2 and got["ms"]["engine"] == []  # the network only in the warm-up


def test_bench_clips_are_mjpg_files_opencv_plays_back_frame_for_frame(tmp_path):
    """tools.bench.clips.write_mjpg: grey and colour frames in, the same count and size read back."""
    import cv2

    from _label_fixtures import decode_all
    from tools.bench.clips import write_mjpg

    grey = [np.full((48, 64), 40 * i, np.uint8) for i in range(5)]
    for name, frames in (("grey.avi", grey), ("bgr.avi", [cv2.cvtColor(g, cv2.COLOR_GRAY2BGR) for g in grey])):
        got = decode_all(write_mjpg(tmp_path / name, iter(frames), 15))
        assert len(got) == 5 and got[0].shape[:2] == (48, 64)
        assert abs(float(got[3].mean()) - 120.0) < 4.0  # the frames in order, JPEG-close
        assert cv2.VideoCapture(str(tmp_path / name)).get(cv2.CAP_PROP_FPS) == pytest.approx(15)
    with pytest.raises(ValueError, match="no frames"):
        write_mjpg(tmp_path / "none.avi", iter([]), 15)
