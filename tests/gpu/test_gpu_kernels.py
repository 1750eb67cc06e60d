"""The GPU path: kernels compile (CPU), the numpy reference is right (CPU), plan keys (CPU),
imports stay light (CPU), and on a GPU: kernels vs reference, TensorRT vs ONNX Runtime."""

from __future__ import annotations

import dataclasses
import glob
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from streamcam.errors import BackendUnavailable
from streamcam.gpu import kernel_sources
from streamcam.gpu.plan import PlanFields, cached_plan, plan_key, plan_path
from streamcam.gpu.reference import class_table, colormap_index, colormap_lut, fused_cam_reference, lowres_normalized
from streamcam.processor.cam import class_activation_map, normalize_minmax
from streamcam.publisher.annotate import heatmap_overlay_reference

ALPHA = 0.4


def _nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    cands = sorted(glob.glob("/usr/local/cuda*/bin/nvcc"))
    return cands[-1] if cands else None


def _case(n, k, h, w, height, width, classes=3, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    features = np.maximum(rng.normal(size=(n, k, h, w)), 0).astype(np.float32)  # post-ReLU like real nets
    weights = rng.normal(0, 1 / np.sqrt(k), size=(classes, k)).astype(np.float32)
    shape = (n, height, width, 3) if channels == 3 else (n, height, width)
    frames = rng.integers(0, 256, shape, dtype=np.uint8)
    return features, weights, frames


def assert_blend_close(got, want, lowres, size, lowres_err=1e-6):
    """≤ 1 grey level, except where 255 * v sits within the computation's error of a rounding tie
    (there the colour map index may differ by one, which moves a colour by at most one LUT step)."""
    v, _ = colormap_index(lowres, size)
    frac = v * 255.0 - np.floor(v * 255.0)
    tie = np.abs(frac - 0.5) < 255.0 * lowres_err + 1e-4
    diff = np.abs(got.astype(np.int16) - want.astype(np.int16)).max(axis=-1)
    assert diff[~tie].max(initial=0) <= 1, f"max difference {diff[~tie].max()} grey levels outside rounding ties"
    lut = colormap_lut().astype(np.int16)
    step = int(np.ceil(np.abs(np.diff(lut, axis=0)).max() * ALPHA)) + 1
    assert diff[tie].max(initial=0) <= step
    assert tie.mean() < 0.01, f"{tie.mean():.2%} of pixels are near rounding ties: the error window is too wide"


# --- (a) every kernel compiles ---------------------------------------------------------------


@pytest.mark.parametrize("source", kernel_sources(), ids=lambda p: p.name)
def test_kernel_compiles_to_ptx(source, tmp_path):
    nvcc = _nvcc()
    if nvcc is None:
        pytest.skip("nvcc (CUDA toolkit) not found")
    out = tmp_path / (source.stem + ".ptx")
    res = subprocess.run([nvcc, "-ptx", "-arch=sm_80", str(source), "-o", str(out)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    ptx = out.read_text()
    assert ".entry" in ptx
    assert "_Z" not in ptx.split(".entry", 1)[1].split("(", 1)[0], "kernels must be extern \"C\" (pycuda looks them up by name)"


def test_kernels_are_shipped():
    assert {p.name for p in kernel_sources()} >= {"cam_fused.cu", "preprocess.cu"}


# --- (b) the reference ------------------------------------------------------------------------


REFERENCE_CASES = [
    # n, k, h, w, height, width, classes table, channels
    (1, 16, 7, 7, 240, 320, [1], 3),
    (2, 64, 7, 9, 240, 320, [0, 2], 3),
    (2, 32, 14, 14, 480, 640, [[2], [0]], 1),
    (1, 8, 32, 32, 96, 128, 0, 3),
]


@pytest.mark.parametrize("n,k,h,w,height,width,classes,channels", REFERENCE_CASES)
def test_reference_matches_cam_and_annotate(n, k, h, w, height, width, classes, channels):
    features, weights, frames = _case(n, k, h, w, height, width, channels=channels)
    blended, lowres = fused_cam_reference(features, weights, classes, frames, alpha=ALPHA)
    table = class_table(classes, n, weights.shape[0])
    assert blended.shape == (n, table.shape[1], height, width, 3) and blended.dtype == np.uint8
    assert lowres.shape == (n, table.shape[1], h, w)
    cam = class_activation_map(features, weights)
    for i in range(n):
        for j, c in enumerate(table[i]):
            np.testing.assert_array_equal(lowres[i, j], normalize_minmax(cam[i, c]))
            want = heatmap_overlay_reference(frames[i], lowres[i, j], alpha=ALPHA)
            assert_blend_close(blended[i, j], want, lowres[i, j], (height, width))


def test_reference_alpha_extremes():
    features, weights, frames = _case(1, 8, 7, 7, 60, 80)
    same, _ = fused_cam_reference(features, weights, [0], frames, alpha=0.0)
    np.testing.assert_array_equal(same[0, 0], frames[0])
    heat, lowres = fused_cam_reference(features, weights, [0], frames, alpha=1.0)
    _, index = colormap_index(lowres[0, 0], (60, 80))
    np.testing.assert_array_equal(heat[0, 0], colormap_lut()[index])


def test_reference_constant_map_is_zero():
    features = np.ones((1, 4, 7, 7), np.float32)
    lowres = lowres_normalized(features, np.ones((2, 4), np.float32), [1])
    assert not lowres.any()


@pytest.mark.parametrize("classes,msg", [([[0, 1]] * 3, r"\[2, S\]"), ([5], r"\[0, 3\)"), ([0.5], "integer")])
def test_class_table_rejects(classes, msg):
    with pytest.raises(ValueError, match=msg):
        class_table(classes, 2, 3)


def test_band_rows_covers_frame():
    from streamcam.gpu.fused_cam import band_rows

    for height, width, pairs, sms, cells, k in [(2160, 3840, 1, 132, 49, 512), (240, 320, 8, 132, 1024, 2048),
                                                (1080, 1920, 1000, 108, 196, 2048), (1, 1, 1, 132, 1, 1)]:
        rows = band_rows(height, width, pairs, sms, cells, k)
        bands = -(-height // rows)
        assert rows >= 1 and bands * rows >= height and (bands - 1) * rows < height
    # Big feature maps: about one block per SM; small ones: up to BLOCKS_PER_SM per SM.
    assert -(-1080 // band_rows(1080, 1920, 1, 132, 196, 2048)) <= 140
    assert -(-1080 // band_rows(1080, 1920, 1, 132, 49, 64)) >= 300


def test_preprocess_params_match_cpu_geometry():
    from streamcam.gpu.preprocess import COLOR_SWAP, COLOR_TO_GRAY, preprocess_params
    from streamcam.processor.preprocess import preprocess
    from streamcam.processor.model_meta import ModelMetadata

    for resize in ("stretch", "letterbox"):
        for channels, order in ((1, "GRAY"), (3, "RGB")):
            meta = ModelMetadata(classes=("a", "b"), input_width=64, input_height=48, input_channels=channels,
                                 color_order=order, mean=(0.5,) * channels, std=(0.25,) * channels,
                                 cam_weights=np.zeros((2, 4), np.float32), cam_bias=np.zeros(2, np.float32),
                                 resize=resize)
            frame = np.zeros((120, 200, 3), np.uint8)
            _, geom = preprocess(frame, "BGR8", meta)
            p = preprocess_params(meta, 200, 120, 3)
            assert p.geometry == geom
            assert p.color_mode == (COLOR_TO_GRAY if channels == 1 else COLOR_SWAP)
            assert p.area
            assert p.inner_w + 2 * p.inner_x <= 64 + 1 and p.inner_h + 2 * p.inner_y <= 48 + 1


# --- plan cache keys ---------------------------------------------------------------------------


FIELDS = PlanFields(onnx_sha256="ab" * 32, tensorrt_version="10.3.0", gpu_name="NVIDIA H100 80GB HBM3",
                    compute_capability=(9, 0), precision="fp16", input_name="input",
                    min_shape=(1, 3, 224, 224), opt_shape=(8, 3, 224, 224), max_shape=(8, 3, 224, 224))

CHANGES = {
    "onnx_sha256": "cd" * 32, "tensorrt_version": "10.4.0", "gpu_name": "NVIDIA A100-SXM4-40GB",
    "compute_capability": (8, 0), "precision": "int8", "input_name": "images",
    "min_shape": (2, 3, 224, 224), "opt_shape": (4, 3, 224, 224), "max_shape": (16, 3, 224, 224),
    "calibration": "ef" * 32,
}


def test_plan_key_is_pure_and_stable():
    assert plan_key(FIELDS) == plan_key(dataclasses.replace(FIELDS))
    assert len(plan_key(FIELDS)) == 24 and int(plan_key(FIELDS), 16) >= 0


@pytest.mark.parametrize("field", sorted(CHANGES))
def test_plan_key_changes_with_each_component(field):
    assert set(CHANGES) == {f.name for f in dataclasses.fields(PlanFields)}
    assert plan_key(dataclasses.replace(FIELDS, **{field: CHANGES[field]})) != plan_key(FIELDS)


def test_plan_key_rejects_unknown_precision():
    with pytest.raises(ValueError, match="precision"):
        plan_key(dataclasses.replace(FIELDS, precision="fp8"))


def test_cached_plan_loads_only_a_matching_plan(tmp_path):
    model = tmp_path / "model.onnx"
    assert cached_plan(tmp_path, model, FIELDS) is None  # nothing cached
    path = plan_path(tmp_path, model, FIELDS)
    path.write_bytes(b"plan")
    assert cached_plan(tmp_path, model, FIELDS) is None  # no sidecar: unknown provenance
    side = path.with_suffix(".json")
    side.write_text(json.dumps(FIELDS.to_json()))
    assert cached_plan(tmp_path, model, FIELDS) == path
    foreign = dataclasses.replace(FIELDS, gpu_name="NVIDIA L4", compute_capability=(8, 9))
    side.write_text(json.dumps(foreign.to_json()))  # a plan copied from another machine under this name
    assert cached_plan(tmp_path, model, FIELDS) is None
    side.write_text("{not json")
    assert cached_plan(tmp_path, model, FIELDS) is None
    for field, value in CHANGES.items():  # any change of inputs → another file → a rebuild
        assert cached_plan(tmp_path, model, dataclasses.replace(FIELDS, **{field: value})) is None


# --- imports and backend selection --------------------------------------------------------------


def test_imports_stay_light():
    code = ("import sys, streamcam, streamcam.processor.engines, streamcam.gpu, streamcam.gpu.plan, "
            "streamcam.gpu.fused_cam, streamcam.gpu.preprocess, streamcam.gpu.reference, streamcam.gpu.pipeline, "
            "streamcam.gpu.engine\n"
            "bad = [m for m in ('tensorrt', 'pycuda', 'torch') if m in sys.modules]\n"
            "assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def _tensorrt_runs_here() -> bool:
    from streamcam.processor.engines import backend_status

    return backend_status("tensorrt")[0]


def test_tensorrt_unavailable_says_why_and_falls_back(tiny_model):
    from streamcam.processor.engines import create_engine

    if _tensorrt_runs_here():
        pytest.skip("TensorRT runs here")
    with pytest.raises(BackendUnavailable, match=r"tensorrt.*(not installed|driver|GPU)") as info:
        create_engine(tiny_model, "tensorrt")
    assert "streamcam[gpu]" in str(info.value) or "driver" in str(info.value)
    engine = create_engine(tiny_model, "tensorrt", fallback=True)
    try:
        assert engine.name == "onnxruntime"
    finally:
        engine.close()


def test_build_engine_reports_missing_tensorrt(tiny_model, capsys, tmp_path):
    from streamcam.gpu.plan import build_engine_main

    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed")
    except ImportError:
        pass
    assert build_engine_main([tiny_model, "--cache-dir", str(tmp_path)]) == 1
    assert "tensorrt is not installed" in capsys.readouterr().err
    assert build_engine_main([tiny_model, "--precision", "int8"]) == 1
    assert "calibration" in capsys.readouterr().err


# --- (c) on a GPU --------------------------------------------------------------------------------

GPU_CASES = [
    # n, k, h, w, height, width, classes, channels
    (1, 64, 7, 7, 240, 320, [1], 3),
    (2, 512, 7, 7, 480, 640, [0, 2], 3),
    (3, 2048, 7, 7, 1080, 1920, [[0], [1], [2]], 3),
    (1, 2048, 14, 14, 1080, 1920, [0, 1, 2], 1),
    (2, 256, 32, 32, 720, 1280, [2], 3),
    (1, 1024, 32, 32, 2160, 3840, [1], 3),
    (4, 64, 12, 20, 240, 320, [[0, 1], [1, 2], [2, 0], [0, 0]], 1),
    (1, 2000, 9, 13, 333, 517, [1], 3),  # K not a multiple of the chunk, odd sizes
]


@pytest.fixture(scope="module")
def fused():
    pytest.importorskip("pycuda")
    from streamcam.gpu.fused_cam import FusedCam

    with FusedCam(alpha=ALPHA) as f:
        yield f


@pytest.mark.gpu
@pytest.mark.parametrize("n,k,h,w,height,width,classes,channels", GPU_CASES)
def test_fused_kernel_matches_reference(fused, n, k, h, w, height, width, classes, channels):
    features, weights, frames = _case(n, k, h, w, height, width, channels=channels, seed=k + h)
    got, got_low = fused(features, weights, classes, frames)
    want, want_low = fused_cam_reference(features, weights, classes, frames, alpha=ALPHA)
    assert got.shape == want.shape and got_low.shape == want_low.shape
    err = float(np.abs(got_low - want_low).max())
    assert err <= 1e-3
    for i in range(want.shape[0]):
        for j in range(want.shape[1]):
            assert_blend_close(got[i, j], want[i, j], want_low[i, j], (height, width), lowres_err=max(err, 1e-6))


@pytest.mark.gpu
@pytest.mark.parametrize("fh,fw,window", [(12, 16, (0, 2, 16, 10)), (16, 12, (3, 0, 9, 16)), (40, 40, (4, 4, 36, 36)),
                                          (7, 7, (0, 0, 7, 7))])
def test_fused_kernel_window_and_raw_maps(fused, fh, fw, window):
    """A letterbox window (the map may exceed 1024 cells outside it) and the raw maps for the box rule."""
    features, weights, frames = _case(2, 300, fh, fw, 270, 480, seed=fh * fw)
    got, got_low, got_raw = fused(features, weights, [[1, 0], [2, 1]], frames, window=window, raw=True)
    want, want_low, want_raw = fused_cam_reference(features, weights, [[1, 0], [2, 1]], frames, ALPHA, window=window, raw=True)
    assert got_raw.shape == want_raw.shape == want_low.shape
    assert np.abs(got_raw - want_raw).max() <= 1e-3 * max(1.0, float(np.abs(want_raw).max()))
    err = float(np.abs(got_low - want_low).max())
    assert err <= 1e-3
    for i in range(2):
        for j in range(2):
            assert_blend_close(got[i, j], want[i, j], want_low[i, j], (270, 480), lowres_err=max(err, 1e-6))
    plain, plain_low = fused(features, weights, [[1, 0], [2, 1]], frames, window=window)  # raw=False: two outputs
    np.testing.assert_array_equal(plain, got)
    np.testing.assert_array_equal(plain_low, got_low)


def test_fused_window_is_checked():
    from streamcam.gpu.fused_cam import check_window

    assert check_window(None, 7, 9) == (0, 0, 9, 7)
    for bad in [(0, 0, 10, 7), (3, 0, 3, 7), (-1, 0, 9, 7), (0, 0, 9)]:
        with pytest.raises(ValueError, match="window"):
            check_window(bad, 7, 9)


@pytest.mark.gpu
def test_fused_kernel_takes_device_arrays(fused):
    import pycuda.gpuarray as gpuarray

    features, weights, frames = _case(2, 128, 7, 7, 240, 320)
    with fused.context:
        f_dev, w_dev, fr_dev = (gpuarray.to_gpu(a) for a in (features, weights, frames))
    got, low = fused(f_dev, w_dev, [1], fr_dev)
    host, host_low = fused(features, weights, [1], frames)
    np.testing.assert_array_equal(got, host)
    np.testing.assert_array_equal(low, host_low)


@pytest.mark.gpu
@pytest.mark.parametrize("resize", ["stretch", "letterbox"])
@pytest.mark.parametrize("channels,frame_shape", [(1, (480, 640, 3)), (3, (480, 640, 3)), (3, (30, 40)), (1, (24, 32))])
def test_gpu_preprocess_matches_cpu(tmp_path, resize, channels, frame_shape):
    pytest.importorskip("pycuda")
    from tiny_model import make_tiny_gap_onnx

    from streamcam.gpu.preprocess import GpuPreprocess
    from streamcam.processor.preprocess import preprocess

    meta = make_tiny_gap_onnx(str(tmp_path / "m.onnx"), channels=channels, resize=resize)
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (2,) + frame_shape, dtype=np.uint8)
    with GpuPreprocess(meta) as pre:
        out, geom = pre(frames)
        with pre.context:  # a GPUArray's get() needs its context current; the call popped it
            got = out.get()
    for i in range(2):
        want, want_geom = preprocess(frames[i], "GRAY8" if frames.ndim == 3 else "BGR8", meta)
        assert geom == want_geom
        tol = 1.01 / (255.0 * min(meta.std))  # the CPU path rounds to uint8 twice
        assert np.abs(got[i] - want[0]).max() <= tol


@pytest.mark.gpu
@pytest.mark.slow
def test_tensorrt_matches_onnxruntime(tmp_path):
    pytest.importorskip("tensorrt")
    pytest.importorskip("pycuda")
    from tiny_model import make_tiny_gap_onnx

    from streamcam.processor.engines.onnxrt import OnnxRuntimeEngine
    from streamcam.gpu.engine import TensorRTEngine

    model = str(tmp_path / "tiny.onnx")
    make_tiny_gap_onnx(model, width=64, height=48, channels=3, k=32)
    batch = np.random.default_rng(0).normal(size=(5, 3, 48, 64)).astype(np.float32)
    with OnnxRuntimeEngine(model) as ort_engine, \
            TensorRTEngine(model, precision="fp32", max_batch=4, cache_dir=str(tmp_path / "cache")) as trt_engine:
        want, got = ort_engine.infer(batch), trt_engine.infer(batch)  # 5 > max_batch: two chunks
        np.testing.assert_allclose(got.logits, want.logits, rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(got.features, want.features, rtol=1e-3, atol=1e-3)
        import pycuda.gpuarray as gpuarray

        with trt_engine.context:
            dev = gpuarray.to_gpu(batch[:4])
        logits, features = trt_engine.infer_gpu(dev)
        with trt_engine.context:  # the device buffer's context must be current for get()
            features_host = features.get()
        np.testing.assert_allclose(logits, want.logits[:4], rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(features_host, want.features[:4], rtol=1e-3, atol=1e-3)
    # The second engine finds the cached plan instead of rebuilding.
    plans = list((tmp_path / "cache").glob("*.plan"))
    assert len(plans) == 1
    with TensorRTEngine(model, precision="fp32", max_batch=4, cache_dir=str(tmp_path / "cache")) as again:
        assert again.plan_path == plans[0]
