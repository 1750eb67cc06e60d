"""The GPU frame path (processor.frame_path): wiring on the CPU through its numpy twin, and on a GPU
the real thing against the reference.

CPU: the reference frame path gives the cpu path's detections and maps exactly and the
publisher's blend within a grey level; the window the kernel reads is crop_to_frame's; the
processor sends the blended frame with ``heatmap_blended`` over real sockets and the publisher
draws on it without blending again; the whole pipeline runs as processes; config and
backend errors come before anything starts.
GPU (``gpu`` marker): GpuFramePath against the numpy reference on the GPU path's own features
(≤ 1e-3 on the maps, ≤ 1 grey level on the blended frame), and against the full CPU path.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from streamcam import protocol
from streamcam.config import config_from_dict
from streamcam.errors import ConfigError, ProtocolError
from streamcam.gpu.reference import feature_window, fused_cam_reference, raw_maps
from streamcam.processor.detector import Detector
from streamcam.processor.preprocess import crop_to_frame, preprocess
from streamcam.publisher.annotate import heatmap_overlay
from _processor_fixtures import processor_thread
from test_gpu_kernels import ALPHA, assert_blend_close
from tiny_model import make_tiny_gap_onnx

# (resize, model channels, frame shape): stretch and letterbox with padding on either axis, grey and BGR.
FRAME_CASES = [
    ("stretch", 1, (240, 320)),
    ("stretch", 3, (240, 320, 3)),
    ("letterbox", 3, (240, 480, 3)),   # wider than the input: padding above and below
    ("letterbox", 1, (300, 200, 3)),   # taller: padding left and right, BGR → grey
    ("letterbox", 3, (97, 131)),       # odd sizes, grey → 3 channels
]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("fp")
    out = {}
    for resize in ("stretch", "letterbox"):
        for channels in (1, 3):
            path = str(d / f"{resize}-{channels}.onnx")
            make_tiny_gap_onnx(path, channels=channels, resize=resize, k=32)
            out[resize, channels] = path
    return out


def _frames(shape, n=3, seed=0):
    """Frames with a bright blob moving over noise, so the tiny net's CAM has structure."""
    rng = np.random.default_rng(seed)
    h, w = shape[:2]
    out = []
    for i in range(n):
        img = rng.integers(0, 60, shape, dtype=np.uint8)
        cv2.circle(img, (w // 4 + i * w // 8, h // 2), max(4, h // 8), (230, 230, 230) if len(shape) == 3 else 230, -1)
        out.append(img)
    return out


def _pf(img):
    return "BGR8" if img.ndim == 3 else "GRAY8"


def _json(dets):
    return [d.to_json() for d in dets]


# --- the window the kernel reads ----------------------------------------------------------------


@pytest.mark.parametrize("resize,channels,shape", FRAME_CASES + [("letterbox", 3, (48, 640, 3)), ("letterbox", 1, (640, 48))])
@pytest.mark.parametrize("fh,fw", [(12, 16), (7, 7), (3, 5)])
def test_feature_window_is_crop_to_frame(models, resize, channels, shape, fh, fw):
    from streamcam.processor.model_meta import read_metadata

    meta = read_metadata(models[resize, channels])
    _, geom = preprocess(np.zeros(shape, np.uint8), "BGR8" if len(shape) == 3 else "GRAY8", meta)
    cells = np.arange(fh * fw, dtype=np.float32).reshape(fh, fw)
    x0, y0, x1, y1 = feature_window(geom, meta, fh, fw)
    np.testing.assert_array_equal(cells[y0:y1, x0:x1], crop_to_frame(cells, geom, meta))
    if resize == "letterbox" and shape[:2] in ((240, 480), (300, 200)) and fh == 12:
        assert (x1 - x0, y1 - y0) != (fw, fh)  # the padding really is cut off


def test_reference_window_and_raw_maps():
    rng = np.random.default_rng(3)
    features = np.maximum(rng.normal(size=(2, 16, 9, 12)), 0).astype(np.float32)
    weights = rng.normal(size=(3, 16)).astype(np.float32)
    frames = rng.integers(0, 256, (2, 60, 50, 3), dtype=np.uint8)
    window = (3, 0, 9, 9)
    got, low, raw = fused_cam_reference(features, weights, [[1], [2]], frames, ALPHA, window=window, raw=True)
    want, want_low = fused_cam_reference(np.ascontiguousarray(features[..., 0:9, 3:9]), weights, [[1], [2]], frames, ALPHA)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(low, want_low)
    np.testing.assert_array_equal(raw, raw_maps(features[..., 0:9, 3:9], weights, [[1], [2]]))
    with pytest.raises(ValueError, match="window"):
        fused_cam_reference(features, weights, [1], frames, ALPHA, window=(0, 0, 13, 9))


# --- the reference frame path equals the cpu path -----------------------------------------------


@pytest.mark.parametrize("resize,channels,shape", FRAME_CASES)
def test_reference_path_equals_cpu_path(models, resize, channels, shape):
    from streamcam.gpu.pipeline import OverlayDetector, OverlayResult
    from streamcam.processor.engines import create_engine

    engine = create_engine(models[resize, channels])
    cpu = Detector(engine, min_score=0.0)
    ref = OverlayDetector(engine, "reference", ALPHA, min_score=0.0)
    for img in _frames(shape):
        want, got = cpu.detect(img, _pf(img)), ref.detect(img, _pf(img))
        assert isinstance(got, OverlayResult)
        assert _json(got.detections) == _json(want.detections)
        np.testing.assert_array_equal(got.cam, want.cam)
        np.testing.assert_array_equal(got.probs, want.probs)
        assert got.blended.shape == shape[:2] + (3,) and got.blended.dtype == np.uint8
        # What the publisher would have blended from the cam part, within a grey level.
        assert_blend_close(got.blended, heatmap_overlay(img, want.cam, alpha=ALPHA), want.cam, shape[:2])
        assert {"preprocess", "engine", "overlay", "cam", "total"} <= set(got.timings_ms)
    ref.close()
    with pytest.raises(Exception):
        engine.infer(np.zeros((1, channels, 48, 64), np.float32))  # closed with the detector


@pytest.mark.parametrize("tracker_input", ["boxes", "peaks"])
def test_stabilizer_sees_the_same_candidates(models, tracker_input):
    from streamcam.config import StabilizerConfig
    from streamcam.gpu.pipeline import OverlayDetector
    from streamcam.processor.engines import create_engine
    from streamcam.processor.stabilized import StabilizedDetector

    engine = create_engine(models["stretch", 3])
    cfg = dataclasses.replace(StabilizerConfig(), input=tracker_input)
    cpu = StabilizedDetector(Detector(engine, min_score=0.0), cfg)
    ref = StabilizedDetector(OverlayDetector(engine, "reference", ALPHA, min_score=0.0), cfg)
    for i, img in enumerate(_frames((240, 320, 3), n=6)):
        (a, ta), (b, tb) = cpu.process("s", img, "BGR8", i * 50_000_000), ref.process("s", img, "BGR8", i * 50_000_000)
        assert _json(b.detections) == _json(a.detections) and tb == ta
        assert b.blended is not None and b.blended.shape == (240, 320, 3)  # survives the stabilizer's replace()


def test_overlay_result_validates_blended():
    from streamcam.gpu.pipeline import OverlayResult

    with pytest.raises(ValueError, match=r"blended: expected uint8 \[H, W, 3\], got float32"):
        OverlayResult([], None, np.zeros(2, np.float32), blended=np.zeros((4, 4, 3), np.float32))


# --- the wire: heatmap_blended -------------------------------------------------------------------


def _frame_msg(img, seq=1):
    return protocol.decode(protocol.encode("frame", "cam0", seq, time.time_ns(), [protocol.raw_part("image", img, _pf(img))]))


def _result(models, img, plain):
    from streamcam.gpu.pipeline import OverlayDetector
    from streamcam.processor.engines import create_engine
    from streamcam.processor.stage import result_message

    det = OverlayDetector(create_engine(models["stretch", 1]), "reference", ALPHA, min_score=0.0)
    res = det.detect(img, _pf(img))
    det.close()
    return res, protocol.decode(result_message(_frame_msg(img), res, {"t_processed_ns": 1}, plain=plain))


@pytest.mark.parametrize("plain", [False, True])
def test_result_message_carries_the_blended_frame(models, plain):
    img = _frames((240, 320))[0]
    res, msg = _result(models, img, plain)
    assert msg.header["heatmap_blended"] is True and not msg.has_part("cam")
    np.testing.assert_array_equal(msg.part("image"), res.blended)
    assert msg.header["width"] == 320 and msg.header["height"] == 240
    assert msg.has_part("image_plain") == plain
    if plain:
        np.testing.assert_array_equal(msg.part("image_plain"), img)
    assert _json(msg.detections()) == _json(res.detections)


def _reencode(msg, mutate):
    header = json.loads(json.dumps(msg.header))
    parts = list(msg.payloads)
    mutate(header, parts)
    return [msg.topic.encode(), json.dumps(header).encode(), *parts]


@pytest.mark.parametrize("mutate,detail", [
    (lambda h, p: h.update(heatmap_blended="yes"), "expected true or false"),
    (lambda h, p: (h["parts"].append({"name": "cam", "encoding": "raw", "shape": [2, 2], "dtype": "float32",
                                      "pixel_format": "CAM32"}), p.append(np.zeros((2, 2), np.float32))), "without a 'cam'"),
    (lambda h, p: (h["parts"][0].update(shape=[240, 320], pixel_format="GRAY8"), p.__setitem__(0, p[0][..., 0].copy())),
     "raw BGR8 'image'"),
    (lambda h, p: (h["parts"][1].update(shape=[120, 160]), p.__setitem__(1, p[1][:120, :160].copy())), "'image_plain' of"),
])
def test_decoder_rejects_inconsistent_blended_results(models, mutate, detail):
    _, msg = _result(models, _frames((240, 320))[0], plain=True)
    with pytest.raises(ProtocolError, match=detail) as info:
        protocol.decode(_reencode(msg, mutate))
    assert info.value.reason in ("bad_field", "bad_part")


class _Capture:
    """A stand-in PUB socket that keeps what is sent."""

    def __init__(self):
        self.sent = []

    def send_multipart(self, parts, flags=0, copy=True):
        self.sent.append(protocol.decode([bytes(memoryview(p)) for p in parts]))


def _cfg(tmp, **publisher):
    return config_from_dict({"publisher": publisher, "run": {"run_dir": str(tmp)}})


@pytest.mark.parametrize("plain", [False, True])
def test_publisher_draws_on_the_blended_frame_without_blending_again(models, tmp_path, plain):
    from streamcam.publisher.stage import StreamState, publish_result

    img = _frames((240, 320))[0]
    res, msg = _result(models, img, plain)
    # No detections, so the only drawing is the banner in the top-left corner.
    msg.header["detections"] = []
    sock = _Capture()
    publish_result(sock, msg, _cfg(tmp_path, plain_frames=plain, jpeg_quality=95), StreamState())
    frames = next(m for m in sock.sent if m.kind == "frames")
    out = cv2.imdecode(np.frombuffer(frames.part("image"), np.uint8), cv2.IMREAD_COLOR)
    below_banner = (slice(40, None), slice(None))
    once = np.abs(out[below_banner].astype(int) - res.blended[below_banner]).mean()
    twice = heatmap_overlay(res.blended, res.cam, alpha=ALPHA)
    assert once < 2.0, f"published frame differs from the blended frame by {once:.2f} grey levels on average"
    assert np.abs(twice[below_banner].astype(int) - res.blended[below_banner]).mean() > 4 * once + 2
    assert frames.has_part("image_plain") == plain
    if plain:
        bare = cv2.imdecode(np.frombuffer(frames.part("image_plain"), np.uint8), cv2.IMREAD_COLOR)
        assert np.abs(bare[below_banner].astype(int) - img[below_banner][..., None]).mean() < 2.0


# --- the processor stage over real sockets --------------------------------------------------------


def _pipeline_cfg(tmp, model, **processor):
    return config_from_dict({
        "processor": {"model": model, "min_score": 0.0, **processor},
        "stabilizer": {"enabled": False},
        "serve": {"enabled": False},
        "endpoints": {"publish": "tcp://127.0.0.1:1"},
        "run": {"run_dir": str(tmp / "run")},
    })


def _run_processor(cfg, frames):
    """Frames → a processor thread (real ipc sockets) → the result messages, in order."""
    got = []
    with processor_thread(cfg) as (push, pull):
        for seq, img in enumerate(frames):
            deadline = time.monotonic() + 10
            msg = None
            while msg is None and time.monotonic() < deadline:
                push.send_multipart(protocol.encode("frame", "cam0", seq, time.time_ns(),
                                                    [protocol.raw_part("image", img, _pf(img))]))
                if pull.poll(500):
                    msg = protocol.decode(pull.recv_multipart())
            assert msg is not None, f"no result for frame {seq}"
            while msg.seq != seq and pull.poll(500):  # a resent frame may answer twice
                msg = protocol.decode(pull.recv_multipart())
            got.append(msg)
            while pull.poll(100):
                pull.recv_multipart()
    return got


@pytest.mark.parametrize("resize,channels,shape", [FRAME_CASES[0], FRAME_CASES[2]])
def test_processor_sends_blended_frames_over_sockets(models, short_tmp, resize, channels, shape):
    from streamcam.processor.engines import create_engine

    frames = _frames(shape, n=2)
    cfg = _pipeline_cfg(short_tmp, models[resize, channels], frame_path="reference")
    got = _run_processor(cfg, frames)
    cpu = Detector(create_engine(models[resize, channels]), min_score=0.0)
    for img, msg in zip(frames, got):
        want = cpu.detect(img, _pf(img))
        assert msg.header["heatmap_blended"] is True and not msg.has_part("cam")
        image = msg.part("image")
        assert image.dtype == np.uint8 and image.shape == shape[:2] + (3,)
        assert _json(msg.detections()) == _json(want.detections)
        assert_blend_close(image, heatmap_overlay(img, want.cam, alpha=ALPHA), want.cam, shape[:2])
    stats = json.loads((cfg.run_dir / "stats" / "processor.json").read_text())
    assert stats["frame_path"] == "reference" and stats["backend"] == "onnxruntime"


def test_processor_cpu_path_is_unchanged(models, short_tmp):
    img = _frames((240, 320))[0]
    (msg,) = _run_processor(_pipeline_cfg(short_tmp, models["stretch", 1]), [img])
    assert "heatmap_blended" not in msg.header and msg.part("cam").dtype == np.float32
    np.testing.assert_array_equal(msg.part("image"), img)


@pytest.mark.slow
def test_run_with_reference_frame_path_publishes(short_tmp, tiny_model):
    """`streamcam run` as a user runs it (processes, sockets), with processor.frame_path: reference."""
    from _pipeline_fixtures import pipeline_yaml, published, receive, start_run
    from _processor_fixtures import stats_when

    cfg = pipeline_yaml(short_tmp, tiny_model)
    text = cfg.read_text().replace("min_score: 0.0}", "min_score: 0.0, frame_path: reference}")
    cfg.write_text(text + "publisher: {plain_frames: true}\n")
    sup = start_run(cfg)
    try:
        pub = published(short_tmp / "run")
        frames = receive(pub, "frames/cam0", 3)
        dets = receive(pub, "detections/cam0", 3)
        assert len(frames) == 3 and len(dets) == 3
        for m in frames:
            img = cv2.imdecode(np.frombuffer(m.part("image"), np.uint8), cv2.IMREAD_COLOR)
            bare = cv2.imdecode(np.frombuffer(m.part("image_plain"), np.uint8), cv2.IMREAD_COLOR)
            assert img.shape == bare.shape == (240, 320, 3)
            # The heatmap is in `image` and not in `image_plain` (the grey frame stays grey there).
            spread = lambda a: np.abs(a[40:].astype(int) - a[40:].mean(axis=2, keepdims=True)).mean()  # noqa: E731
            assert spread(img) > 10 > spread(bare) + 3
        stats = stats_when(short_tmp / "run", lambda s: s["processed"] > 0)  # written once a second
        assert stats["frame_path"] == "reference" and stats["processed"] > 0
    finally:
        sup.send_signal(2)
        out, _ = sup.communicate(timeout=10)
    assert sup.returncode == 0, out


# --- selection errors, before anything starts ------------------------------------------------------


@pytest.mark.parametrize("processor,publisher,msg", [
    ({"frame_path": "gpu"}, {}, "frame_path: gpu runs on backend tensorrt"),
    ({"frame_path": "reference", "backend": "tensorrt"}, {}, "frame_path: reference runs on backend onnxruntime"),
    ({"frame_path": "reference", "mode": "faces"}, {}, "mode 'faces' needs frame_path cpu"),
    ({"frame_path": "gpu", "backend": "tensorrt"}, {"heatmap": False}, "publisher.heatmap is false"),
    ({"frame_path": "fused"}, {}, r"processor.frame_path: expected one of \['cpu', 'gpu', 'reference'\]"),
])
def test_config_rejects_frame_path_mismatches(processor, publisher, msg):
    with pytest.raises(ConfigError, match=msg):
        config_from_dict({"processor": processor, "publisher": publisher})


def _gpu_here() -> bool:
    from streamcam.processor.engines import backend_status

    return backend_status("tensorrt")[0]


def _tensorrt_config(tmp, models, extra: str = ""):
    path = tmp / "c.yaml"
    path.write_text(f"processor: {{model: {models['stretch', 1]}, backend: tensorrt{extra}}}\n"
                    f"run: {{run_dir: {tmp}/run}}\n")
    return path


def test_gpu_frame_path_without_a_gpu_fails_before_start(models, short_tmp):
    if _gpu_here():
        pytest.skip("TensorRT runs here")
    path = _tensorrt_config(short_tmp, models, ", frame_path: gpu")
    r = subprocess.run([sys.executable, "-m", "streamcam", "process", str(path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "backend 'tensorrt' cannot run here" in r.stderr
    assert "not installed" in r.stderr or "driver" in r.stderr
    assert not list((short_tmp / "run").glob("*.sock")), "sockets were opened before the engine was checked"


def test_run_with_a_backend_that_cannot_run_stops_before_any_stage(models, short_tmp):
    if _gpu_here():
        pytest.skip("TensorRT runs here")
    path = _tensorrt_config(short_tmp, models)
    r = subprocess.run([sys.executable, "-m", "streamcam", "run", str(path), "--duration", "5"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "processor.backend: 'tensorrt' cannot run here" in r.stderr and "fallback: true" in r.stderr
    assert not (short_tmp / "run" / "logs").exists(), "the supervisor started stages"


def test_check_backend_says_why_before_anything_starts(models, short_tmp):
    from streamcam.errors import BackendUnavailable
    from streamcam.processor.stage import check_backend

    check_backend(_pipeline_cfg(short_tmp, models["stretch", 1], frame_path="reference"))
    gpu = _pipeline_cfg(short_tmp, models["stretch", 1], backend="tensorrt", frame_path="gpu")
    if _gpu_here():
        check_backend(gpu)
        return
    with pytest.raises(BackendUnavailable, match=r"processor.backend: 'tensorrt' cannot run here: .*(not installed|driver)"):
        check_backend(gpu)
    check_backend(dataclasses.replace(gpu, processor=dataclasses.replace(gpu.processor, fallback=True)))


def test_gpu_frame_path_falls_back_to_the_cpu_path_only_when_asked(models, short_tmp, caplog):
    if _gpu_here():
        pytest.skip("TensorRT runs here")
    from streamcam.processor.stage import build_detector

    cfg = _pipeline_cfg(short_tmp, models["stretch", 1], backend="tensorrt", frame_path="gpu", fallback=True)
    with caplog.at_level("WARNING"):
        det = build_detector(cfg)
    try:
        assert type(det) is Detector and det.engine.name == "onnxruntime"
        assert "publisher blends the heatmap" in caplog.text
    finally:
        det.engine.close()


def test_pipeline_module_imports_no_gpu_runtime():
    code = ("import sys, streamcam.gpu.pipeline, streamcam.processor.stage\n"
            "bad = [m for m in ('tensorrt', 'pycuda', 'torch') if m in sys.modules]\n"
            "assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


# --- on a GPU ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trt_models(tmp_path_factory):
    pytest.importorskip("tensorrt")
    pytest.importorskip("pycuda")
    d = tmp_path_factory.mktemp("trt")
    return d, {key: str(d / f"{key[0]}-{key[1]}.onnx") for key in [("stretch", 1), ("stretch", 3), ("letterbox", 1), ("letterbox", 3)]}


def _gpu_detector(path, cache):
    from streamcam.gpu.pipeline import OverlayDetector
    from streamcam.gpu.engine import TensorRTEngine

    engine = TensorRTEngine(path, precision="fp32", max_batch=1, cache_dir=str(cache))
    return OverlayDetector(engine, "gpu", ALPHA, min_score=0.0)


@pytest.mark.gpu
@pytest.mark.parametrize("resize,channels,shape", FRAME_CASES + [("stretch", 3, (1080, 1920, 3)), ("letterbox", 3, (2160, 3840, 3))])
def test_gpu_path_matches_the_reference_end_to_end(trt_models, resize, channels, shape):
    """Kernel vs reference on the GPU path's own features: maps ≤ 1e-3, blended frame ≤ 1 grey level."""
    d, paths = trt_models
    make_tiny_gap_onnx(paths[resize, channels], channels=channels, resize=resize, k=32)
    det = _gpu_detector(paths[resize, channels], d / "cache")
    path = det.path
    try:
        for img in _frames(shape, n=2):
            r = path(img, _pf(img))
            # The same frame through the same device steps, features brought back for the reference.
            frame = path._upload(img)
            x, geom = path.pre(frame)
            _, features = det.engine.infer_gpu(x)
            with path.context:
                feats = features.get()
            assert geom == r.geometry
            window = feature_window(geom, det.meta, *feats.shape[-2:])
            want, want_low, want_raw = fused_cam_reference(feats, det.meta.cam_weights, [det.class_indices], img[None],
                                                           ALPHA, window=window, raw=True)
            scale = max(1.0, float(np.abs(want_raw).max()))
            assert np.abs(r.cams - want_raw[0]).max() <= 1e-3 * scale
            from streamcam.processor.cam import normalize_minmax

            low_err = float(np.abs(normalize_minmax(r.cams[:1]) - want_low[0, :1]).max())
            assert low_err <= 1e-3
            assert_blend_close(r.blended, want[0, 0], want_low[0, 0], shape[:2], lowres_err=max(low_err, 1e-6))
    finally:
        det.close()


@pytest.mark.gpu
@pytest.mark.parametrize("resize,channels,shape", FRAME_CASES)
def test_gpu_detector_agrees_with_the_cpu_path(trt_models, resize, channels, shape):
    """The whole GPU path vs the CPU path (CPU preprocessing rounds to uint8, so not bit-equal)."""
    from streamcam.gpu.pipeline import OverlayDetector
    from streamcam.processor.engines import create_engine

    d, paths = trt_models
    make_tiny_gap_onnx(paths[resize, channels], channels=channels, resize=resize, k=32)
    gpu = _gpu_detector(paths[resize, channels], d / "cache")
    ref = OverlayDetector(create_engine(paths[resize, channels]), "reference", ALPHA, min_score=0.0)
    try:
        for img in _frames(shape):
            a, b = ref.detect(img, _pf(img)), gpu.detect(img, _pf(img))
            np.testing.assert_allclose(b.probs, a.probs, atol=2e-2)
            assert np.abs(b.cam - a.cam).max() <= 0.05
            assert len(b.detections) == len(a.detections)
            for p, q in zip(b.detections, a.detections):
                assert p.label == q.label and np.abs(np.subtract(p.box, q.box)).max() <= 0.05 * max(shape[:2])
            assert np.abs(b.blended.astype(int) - a.blended).mean() < 2.0
    finally:
        gpu.close()
        ref.close()


@pytest.mark.gpu
def test_processor_runs_the_gpu_path_over_sockets(trt_models, short_tmp):
    d, paths = trt_models
    make_tiny_gap_onnx(paths["stretch", 3], channels=3, k=32)
    frames = _frames((480, 640, 3), n=2)
    cfg = _pipeline_cfg(short_tmp, paths["stretch", 3], backend="tensorrt", frame_path="gpu")
    got = _run_processor(cfg, frames)
    for img, msg in zip(frames, got):
        assert msg.header["heatmap_blended"] is True and msg.part("image").shape == (480, 640, 3)
    stats = json.loads((cfg.run_dir / "stats" / "processor.json").read_text())
    assert stats["frame_path"] == "gpu" and stats["backend"] == "tensorrt"
