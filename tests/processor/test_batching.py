"""Batching across streams: one engine call for the newest frames of several streams, the same
results as one frame at a time (the slow obvious reference), with real ONNX Runtime models."""

import time

import numpy as np
import pytest

import conftest
from streamcam import protocol
from streamcam.datasets.synthetic import SyntheticIRScene
from streamcam.processor.detector import Detector
from streamcam.processor.engines import create_engine
from tiny_model import make_tiny_gap_onnx

ROOT = conftest.ROOT


def _same(batched, single, box_px=1e-2, tol=1e-4):
    assert len(batched.detections) == len(single.detections)
    for a, b in zip(batched.detections, single.detections):
        assert a.label == b.label
        np.testing.assert_allclose(a.box, b.box, atol=box_px)
        assert abs(a.score - b.score) < tol
    np.testing.assert_allclose(batched.probs, single.probs, atol=tol)
    assert (batched.cam is None) == (single.cam is None)
    if batched.cam is not None:
        np.testing.assert_allclose(batched.cam, single.cam, atol=tol)


def test_a_batch_of_streams_gives_each_frame_what_it_gets_alone():
    """The default model on four different scenes (four "cameras"): one engine call, same boxes."""
    det = Detector(create_engine(str(ROOT / "engines" / "person-ir.onnx")))
    frames = [SyntheticIRScene(seed=s).frame(10 + s).image for s in range(4)]
    batched = det.detect_batch(frames, ["GRAY8"] * 4, min_score=0.0)
    assert [r.batch for r in batched] == [4] * 4
    assert all(r.timings_ms["engine_call"] >= r.timings_ms["engine"] for r in batched)
    assert sum(len(r.detections) for r in batched) > 0  # the comparison below compares boxes, not empty lists
    for frame, b in zip(frames, batched):
        _same(b, det.detect(frame, "GRAY8", min_score=0.0))


def test_a_multiple_instance_model_batches_too():
    """person-rgb (presence: peak, dynamic H and W) with grey and colour frames in one batch."""
    det = Detector(create_engine(str(ROOT / "engines" / "person-rgb.onnx"), threads=2))
    rng = np.random.default_rng(0)
    grey = SyntheticIRScene(seed=3, width=384, height=288).frame(5).image
    colour = rng.integers(0, 255, (288, 384, 3), dtype=np.uint8)
    batched = det.detect_batch([grey, colour], ["GRAY8", "BGR8"], min_score=0.0)
    assert [r.batch for r in batched] == [2, 2] and all(r.cam is not None for r in batched)
    _same(batched[0], det.detect(grey, "GRAY8", min_score=0.0))
    _same(batched[1], det.detect(colour, "BGR8", min_score=0.0))


def test_an_older_model_with_a_fixed_batch_still_loads_and_batches_in_chunks(tmp_path):
    make_tiny_gap_onnx(str(tmp_path / "fixed1.onnx"), batch=1)
    make_tiny_gap_onnx(str(tmp_path / "dynamic.onnx"))
    fixed, dynamic = (create_engine(str(tmp_path / f"{n}.onnx")) for n in ("fixed1", "dynamic"))
    assert fixed.max_batch == 1 and dynamic.max_batch is None
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 255, (48, 64), dtype=np.uint8) for _ in range(3)]
    got = Detector(fixed, min_score=0.0).detect_batch(frames, ["GRAY8"] * 3)
    want = Detector(dynamic, min_score=0.0).detect_batch(frames, ["GRAY8"] * 3)
    for g, w in zip(got, want):
        _same(g, w)
    make_tiny_gap_onnx(str(tmp_path / "fixed2.onnx"), batch=2)
    with pytest.raises(ValueError, match="batches of exactly 2 frames"):
        Detector(create_engine(str(tmp_path / "fixed2.onnx"))).detect_batch(frames, ["GRAY8"] * 3)


def test_bad_batch_input_names_what_is_wrong():
    det = Detector(create_engine(str(ROOT / "engines" / "person-ir.onnx")))
    with pytest.raises(ValueError, match="one pixel format per image"):
        det.detect_batch([np.zeros((48, 64), np.uint8)], [])
    assert det.detect_batch([], []) == []


def test_the_processor_batches_the_newest_frames_of_all_streams(short_tmp, tiny_model):
    """Three streams' frames arriving together go through the engine in one call; each result is
    what its frame gives alone, and every frame is answered."""
    from _processor_fixtures import processor_thread, stats_when
    from streamcam.config import config_from_dict

    cfg = config_from_dict({
        "streams": [{"id": f"cam{i}"} for i in range(3)],
        "processor": {"model": tiny_model, "min_score": 0.0}, "stabilizer": {"enabled": False},
        "serve": {"enabled": False}, "run": {"run_dir": str(short_tmp / "run")},
    })
    reference = Detector(create_engine(tiny_model), min_score=0.0)
    rng = np.random.default_rng(2)
    images = {f"cam{i}": rng.integers(0, 255, (48, 64), dtype=np.uint8) for i in range(3)}
    got: list = []
    with processor_thread(cfg) as (push, pull):
        t0 = time.time_ns()
        for burst in range(20):  # until one burst lands in one drain of the socket (nearly always the first)
            for sid, img in images.items():
                push.send_multipart(protocol.encode("frame", sid, burst, t0 + burst, [protocol.raw_part("image", img, "GRAY8")]))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and len(got) < 3 * (burst + 1):
                if pull.poll(200):
                    got.append(protocol.decode(pull.recv_multipart()))
            if any(m.header.get("batch", 1) > 1 for m in got):
                break
        batched = [m for m in got if m.header.get("batch", 1) > 1]
        assert batched, "no burst of three streams was batched"
        assert len(got) == 3 * (burst + 1)  # none skipped: one frame per stream per burst
        for m in batched:
            want = reference.detect(images[m.stream], "GRAY8")
            assert m.header["batch"] >= 2 and m.header["timings_ms"]["engine_call"] > 0
            assert [d.label for d in m.detections()] == [d.label for d in want.detections]
            for a, b in zip(m.detections(), want.detections):
                np.testing.assert_allclose(a.box, b.box, atol=0.02)
            np.testing.assert_allclose(m.header["probs"], want.probs, atol=2e-4)
        stats = stats_when(cfg.run_dir, lambda s: s["detected"] == len(got))
        assert stats["batch_max"] >= 2 and stats["detected"] == len(got)
