"""Problem-P pretraining: crop labels by object kind, and the checkpoint that carries its trunk's setup."""

import numpy as np
import pytest

from streamcam.training.pretrain import KINDS, ObjectCropSampler, ObjectPool, render_object_pool


def _pool():
    """One 120x160 frame: a car at x 20..50, a lamp at x 100..110, nothing on the right edge."""
    img = np.zeros((1, 120, 160), np.uint8)
    boxes = [np.array([[20, 40, 50, 60], [100, 30, 110, 70]], np.float32)]
    kinds = [np.array([KINDS.index("car"), KINDS.index("lamp")])]
    return ObjectPool(img, boxes, kinds)


def test_crop_labels_follow_the_object_inside():
    s = ObjectCropSampler(_pool(), crop=(40, 40), context=0, seed=0)
    assert s._label_of(0, 15, 30) == KINDS.index("car")      # the whole car, no lamp
    assert s._label_of(0, 85, 30) == KINDS.index("lamp")     # 75 % of the lamp: >= pos_frac 0.6
    assert s._label_of(0, 115, 0) == 0                       # nothing inside: background
    assert s._label_of(0, 40, 30) is None                    # a third of the car: ambiguous, redrawn
    assert s._label_of(0, 45, 30) is None                    # a sixth of the car: neither inside nor out
    assert s._label_of(0, 60, 30) == 0                       # between the car and the lamp
    assert s._label_of(0, 0, 80) == 0


def test_sampler_balances_kinds_and_respects_labels():
    s = ObjectCropSampler(_pool(), crop=(40, 40), context=8, seed=1)
    imgs, labels = s.sample(64)
    assert imgs.shape == (64, 56, 56) and imgs.dtype == np.uint8
    assert set(labels.tolist()) == {0, KINDS.index("car"), KINDS.index("lamp")}  # no animal in the pool
    with pytest.raises(RuntimeError, match="no crop of kind '(car|lamp)'"):
        ObjectCropSampler(_pool(), crop=(20, 16), context=0, seed=0, pos_frac=1.01).sample(8)


def test_object_pool_has_no_people_and_boxes_at_input_scale():
    pool = render_object_pool([20000], 3, (320, 240), {"confusers": 6}, seed=0)
    assert pool.images.shape == (3, 240, 320)
    for b, k in zip(pool.boxes, pool.kinds):
        assert len(b) == len(k) and (k >= 1).all() and (k < len(KINDS)).all()
        assert (b[:, 2] <= 320).all() and (b[:, 3] <= 240).all() and (b[:, 0] < b[:, 2]).all()
    assert sum(len(k) for k in pool.kinds) > 0


def test_finetune_rebuilds_the_pretrained_trunk_with_its_normalisation(tmp_path):
    torch = pytest.importorskip("torch")
    from test_finetune import make_square_folder

    from streamcam.processor.model_meta import read_metadata
    from streamcam.training.backbones import pretrained_info
    from streamcam.training.finetune import finetune
    from streamcam.training.nets import TinyGapNet

    torch.manual_seed(0)
    trunk = TinyGapNet(num_classes=4, width=8, feature_channels=16, dilations=(1, 2))
    info = {"backbone": "tiny_gap", "net": {"width": 8, "feature_channels": 16, "dilations": [1, 2]},
            "input_size": [96, 64], "mean": [0.42], "std": [0.17], "problem": "test"}
    ckpt = tmp_path / "p.pt"
    torch.save({"state_dict": trunk.state_dict(), "streamcam": info}, ckpt)
    assert pretrained_info(str(ckpt))["mean"] == [0.42]
    assert pretrained_info(None) == {}
    make_square_folder(tmp_path / "data", per_class=6)
    r = finetune({"data": str(tmp_path / "data"), "backbone": "tiny_gap", "weights": str(ckpt), "epochs": 1,
                  "samples_per_epoch": 16, "batch_size": 8, "progress": False, "out": str(tmp_path / "m.onnx")})
    meta = read_metadata(r["out"])
    # the trunk's normalisation and input size, not statistics measured on the 12 new images
    assert meta.mean == (0.42,) and meta.std == (0.17,)
    assert (meta.input_width, meta.input_height) == (96, 64)
    frozen = r["model"].body.state_dict()
    for k, v in trunk.trunk.state_dict().items():  # head-only phase: the trunk is untouched
        assert torch.equal(frozen[k], v), k
    assert r["export_check"]["passed"]
    with pytest.raises(Exception, match="resnet18"):
        finetune({"data": str(tmp_path / "data"), "backbone": "resnet18", "weights": str(ckpt), "epochs": 1,
                  "progress": False, "out": str(tmp_path / "x.onnx")})


def test_shipped_ir_trunk_loads_with_its_recorded_setup():
    pytest.importorskip("torch")
    from conftest import ROOT

    from streamcam.training.backbones import build_backbone, pretrained_info

    path = ROOT / "engines" / "ir-objects-tiny_gap.pt"
    info = pretrained_info(str(path))
    assert info["backbone"] == "tiny_gap" and info["classes"] == list(KINDS) and "person" not in info["classes"]
    assert info["input_size"] == [320, 240] and 0 < info["std"][0] < 1 and info["val_crop_accuracy"] > 0.9
    net = {k: tuple(v) if isinstance(v, list) else v for k, v in info["net"].items()}
    model = build_backbone("tiny_gap", 2, str(path), **net)  # every trunk key loads; only the head is new
    assert model.classifier.out_features == 2 and model.spec.feature_channels == info["net"]["feature_channels"]
