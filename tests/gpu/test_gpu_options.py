"""The GPU path's options and limits, checked on the CPU: config → plan key, the INT8 batch, the map limit."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from streamcam.config import config_from_dict
from streamcam.errors import ConfigError, ModelError
from streamcam.gpu.plan import (build_command, calibration_batch, check_plan_file, plan_fields, plan_key, sha256_file)


def test_tensorrt_options_come_from_the_config(tmp_path):
    cfg = config_from_dict({"processor": {"backend": "tensorrt", "tensorrt": {
        "precision": "int8", "max_batch": 4, "opt_batch": 1, "calibration": "frames/", "plan": "p.plan"}}},
        base_dir=str(tmp_path))
    o = cfg.processor.engine_options(cfg.resolve)
    assert o == {"precision": "int8", "max_batch": 4, "opt_batch": 1, "calibration": str(tmp_path / "frames"),
                 "cache_dir": str(tmp_path / "engines/cache"), "plan": str(tmp_path / "p.plan"), "build": False}
    assert config_from_dict({}).processor.engine_options() == {}  # onnxruntime takes none


@pytest.mark.parametrize("trt, message", [
    ({"precision": "int8"}, "processor.tensorrt.calibration: the folder of calibration frames is required"),
    ({"calibration": "x"}, "processor.tensorrt.calibration: .* only there"),
    ({"opt_batch": 9}, r"processor.tensorrt.opt_batch: expected 1-8 \(max_batch\), got 9"),
    ({"max_batch": 0}, "processor.tensorrt.max_batch: expected 1-1024"),
    ({"precision": "fp8"}, "processor.tensorrt.precision: expected one of"),
])
def test_bad_tensorrt_options_are_rejected_naming_the_key(trt, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict({"processor": {"tensorrt": trt}})


def _meta():
    return SimpleNamespace(input_channels=1, input_height=48, input_width=64, input_name="input")


def _fields(model, precision="fp16", max_batch=8, opt_batch=None):
    return plan_fields(model, _meta(), precision, max_batch, opt_batch, [], "10.3.0", "NVIDIA H200", (9, 0))


def test_the_processor_looks_up_the_plan_build_engine_made(tiny_model):
    """build-engine's arguments and the processor's config options give one plan key."""
    from streamcam.gpu.plan import build_engine_parser

    cfg = config_from_dict({"processor": {"backend": "tensorrt", "tensorrt": {"max_batch": 4, "opt_batch": 1}}})
    o = cfg.processor.engine_options()
    # The command the processor's refusal suggests, read by build-engine's own parser.
    line = build_command(tiny_model, o["precision"], o["max_batch"], o["opt_batch"], o["calibration"], o["cache_dir"])
    a = build_engine_parser().parse_args(line.split()[2:])
    assert (a.precision, a.max_batch, a.opt_batch, a.cache_dir) == ("fp16", 4, 1, "engines/cache")
    cli = _fields(a.model, a.precision, a.max_batch, a.opt_batch)
    proc = _fields(tiny_model, o["precision"], o["max_batch"], o["opt_batch"])
    assert plan_key(cli) == plan_key(proc)
    # The old processor asked for opt = max: another plan, never the one built with --opt-batch 1.
    assert plan_key(_fields(tiny_model, "fp16", 4, None)) != plan_key(proc)


@pytest.mark.parametrize("opt, frames, want", [(8, 100, 8), (8, 3, 3), (1, 50, 1)])
def test_the_int8_calibrator_batch_is_the_calibration_profiles(opt, frames, want):
    assert calibration_batch(opt, frames) == want
    with pytest.raises(ModelError):
        calibration_batch(opt, 0)


def test_a_configured_plan_file_must_be_this_models(tmp_path, tiny_model):
    plan = tmp_path / "x.plan"
    with pytest.raises(ModelError, match="processor.tensorrt.plan: .*not found"):
        check_plan_file(plan, tiny_model)
    plan.write_bytes(b"plan")
    assert check_plan_file(plan, tiny_model) == plan  # no sidecar: taken as given
    plan.with_suffix(".json").write_text(json.dumps({"onnx_sha256": "0" * 64}))
    with pytest.raises(ModelError, match="built from another model"):
        check_plan_file(plan, tiny_model)
    plan.with_suffix(".json").write_text(json.dumps({"onnx_sha256": sha256_file(tiny_model)}))
    assert check_plan_file(plan, tiny_model) == plan


def test_a_map_larger_than_the_fused_kernel_is_refused_at_start_naming_its_size(tmp_path):
    from tiny_model import make_tiny_gap_onnx

    from streamcam.gpu.pipeline import check_map_size, frame_path_detector
    from streamcam.processor.engines import create_engine

    big = str(tmp_path / "big.onnx")
    make_tiny_gap_onnx(big, width=512, height=288)  # stride 4: a 72 x 128 = 9216-cell map
    with pytest.raises(ModelError, match=r"72 x 128 = 9216 cells, more than the fused kernel's 8192"):
        frame_path_detector(create_engine(big), "reference")
    shipped_like = str(tmp_path / "ok.onnx")
    make_tiny_gap_onnx(shipped_like, width=320, height=240)  # 60 x 80 = 4800, the shipped model's map
    assert check_map_size(create_engine(shipped_like), "reference") == (60, 80)


def test_the_fused_kernel_and_its_host_agree_on_the_limit():
    from streamcam.gpu import fused_cam

    src = (Path(fused_cam.__file__).parent / "kernels" / "cam_fused.cu").read_text()
    assert f"#define CAM_MAX_LOWRES {fused_cam.MAX_LOWRES}" in src
    assert "acc[CAM_PIX_PER_THREAD]" not in src  # the register-array version held only 1024 cells
