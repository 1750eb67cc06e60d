"""Fine-tuning from a few generated images: data sources, split, augmentation, recipe, export check."""

import json

import cv2
import numpy as np
import pytest

import conftest
from streamcam.errors import ConfigError
from streamcam.training.data import Augment, load_data, stratified_split

from _tolerance import assert_close_f32, cam_bound, cam_logit_bound


def make_square_folder(root, per_class=20, size=(128, 96), seed=0, colour=False):
    """Class ``square``: a bright square somewhere on noise; class ``empty``: noise only."""
    rng = np.random.default_rng(seed)
    w, h = size
    boxes = {}
    for c in ("empty", "square"):
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            im = rng.normal(80, 20, (h, w)).clip(0, 255).astype(np.uint8)
            if c == "square":
                s = int(rng.integers(18, 30))
                x, y = int(rng.integers(0, w - s)), int(rng.integers(0, h - s))
                im[y:y + s, x:x + s] = 220
                boxes[f"{i:02d}"] = (x, y, x + s, y + s)
            if colour:
                im = cv2.merge([im, (im * 0.8).astype(np.uint8), im])
            cv2.imwrite(str(root / c / f"{i:02d}.png"), im)
    return boxes


def test_folder_loading_and_stratified_split(tmp_path):
    make_square_folder(tmp_path, per_class=10)
    data = load_data(tmp_path)
    assert data.classes == ("empty", "square") and data.counts() == {"empty": 10, "square": 10} and data.is_grey
    tr, va = stratified_split(data.labels, 0.2, seed=3)
    assert len(va) == 4 and np.bincount(data.labels[va]).tolist() == [2, 2]
    assert set(tr).isdisjoint(va) and len(tr) + len(va) == 20
    tr2, va2 = stratified_split(data.labels, 0.2, seed=3)
    assert np.array_equal(va, va2)
    _, va_small = stratified_split([0, 0, 1, 1], 0.1, seed=0)  # at least one per class
    assert len(va_small) == 2


def test_folder_errors(tmp_path):
    with pytest.raises(ConfigError, match="expected a folder"):
        load_data(tmp_path / "missing")
    (tmp_path / "only").mkdir()
    with pytest.raises(ConfigError, match="at least two class"):
        load_data(tmp_path)


@pytest.mark.parametrize("shape", [(96, 128), (96, 128, 3)])
def test_augment_grey_and_colour(shape):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, shape, dtype=np.uint8)
    aug = Augment((64, 48))
    outs = [aug(img, rng) for _ in range(5)]
    assert all(o.shape == (48, 64) + shape[2:] and o.dtype == np.uint8 for o in outs)
    assert not all(np.array_equal(outs[0], o) for o in outs[1:])
    plain = Augment((128, 96), scale=(1, 1), ratio=(1, 1), flip=False, brightness=0, contrast=0)
    assert np.array_equal(plain(img, rng), img)


def test_labelled_video_yaml_and_csv(tmp_path):
    video = tmp_path / "clip.avi"
    vw = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    if not vw.isOpened():
        pytest.skip("no MJPG writer in this OpenCV build")
    for i in range(20):
        frame = np.full((48, 64, 3), 30 if i < 10 else 200, np.uint8)
        vw.write(frame)
    vw.release()
    (tmp_path / "labels.yaml").write_text(
        "video: clip.avi\nstep: 2\nsegments:\n  - {start: 0, end: 10, class: dark}\n"
        "  - {start: 10, end: 20, class: bright}\n")
    d = load_data(tmp_path / "labels.yaml")
    assert d.classes == ("bright", "dark") and d.counts() == {"bright": 5, "dark": 5}
    means = [float(im.mean()) for im in d.images]
    assert all((m > 120) == (lab == 0) for m, lab in zip(means, d.labels))
    (tmp_path / "labels.csv").write_text("video,start,end,class\nclip.avi,0,10,dark\nclip.avi,10,20,bright\n")
    assert len(load_data(tmp_path / "labels.csv")) == 20
    (tmp_path / "bad.yaml").write_text("video: clip.avi\nsegments:\n  - {start: 5, end: 40, class: x}\n")
    with pytest.raises(ConfigError, match="ended at frame|at least two"):
        load_data(tmp_path / "bad.yaml")


def test_config_validation_names_the_key():
    from streamcam.training.finetune import FinetuneConfig

    with pytest.raises(ConfigError, match="unknown keys \\['epoch'\\]"):
        FinetuneConfig.from_dict({"data": "x", "epoch": 3})
    with pytest.raises(ConfigError, match="backbone"):
        FinetuneConfig.from_dict({"data": "x", "backbone": "vgg"})
    with pytest.raises(ConfigError, match="missing key 'data'"):
        FinetuneConfig.from_dict({})
    assert FinetuneConfig.from_dict({"data": "x", "weights": "none"}).weights is None
    with pytest.raises(ConfigError, match="average_epochs"):
        FinetuneConfig.from_dict({"data": "x", "average_epochs": -1})
    with pytest.raises(ConfigError, match="window"):
        FinetuneConfig.from_dict({"data": "x", "window": [4, 4]})


@pytest.mark.torch
def test_tiny_finetune_reaches_80_percent_and_exports_a_reproducible_model(tmp_path):
    pytest.importorskip("torch")
    from streamcam.processor.cam import class_activation_map
    from streamcam.processor.engines import create_engine
    from streamcam.processor.model_meta import read_metadata
    from streamcam.training.finetune import main

    make_square_folder(tmp_path / "data", per_class=20)
    out = tmp_path / "m.onnx"
    summary = tmp_path / "summary.json"
    rc = main([str(tmp_path / "data"), "--backbone", "tiny_gap", "--weights", "none", "--epochs", "2",
               "--samples-per-epoch", "384", "--input-size", "64x48", "--out", str(out), "--quiet",
               "--positive-classes", "square", "--json", str(summary)])
    assert rc == 0
    r = json.loads(summary.read_text())
    assert r["metrics"]["val_accuracy"] > 0.8, r["metrics"]
    assert r["export_check"]["passed"] and r["export_check"]["cam_max_abs_diff"] < 1e-3
    meta = read_metadata(str(out))
    prov = meta.provenance
    assert prov["backbone"] == "tiny_gap" and prov["weights"].startswith("none") and prov["seed"] == 0
    assert prov["data"]["per_class"] == {"empty": 20, "square": 20} and "date" in prov and "metrics" in prov
    assert meta.classes == ("empty", "square") and meta.positive_classes == ("square",)
    assert (meta.input_width, meta.input_height, meta.input_channels) == (64, 48, 1)
    # The CAM of "square" peaks on the square for a square image.
    img = cv2.imread(str(tmp_path / "data" / "square" / "00.png"), cv2.IMREAD_GRAYSCALE)
    from streamcam.processor.preprocess import preprocess

    eng = create_engine(str(out), "onnxruntime", 1)
    try:
        o = eng.infer(preprocess(img, "GRAY8", meta)[0])
    finally:
        eng.close()
    cam = class_activation_map(o.features, meta.cam_weights, [1])[0, 0]
    assert_close_f32(cam.mean() + meta.cam_bias[1], o.logits[0, 1],
                     **cam_logit_bound(o.features, meta.cam_weights[[1]], meta.cam_bias[[1]]))


@pytest.mark.torch
def test_pretrained_path_freezes_the_backbone(tmp_path):
    torch = pytest.importorskip("torch")
    import torchvision

    from streamcam.training.finetune import finetune

    make_square_folder(tmp_path / "data", per_class=6, size=(64, 64), colour=True)
    torch.manual_seed(0)
    wfile = tmp_path / "mnv3.pth"
    torch.save(torchvision.models.mobilenet_v3_small(weights=None).state_dict(), wfile)
    common = {"data": str(tmp_path / "data"), "backbone": "mobilenet_v3_small", "weights": str(wfile), "epochs": 1,
              "samples_per_epoch": 8, "batch_size": 8, "input_size": (64, 64), "out": str(tmp_path / "m.onnx"),
              "progress": False, "patience": 5}
    r = finetune(common)
    ref = torchvision.models.mobilenet_v3_small(weights=None)
    ref.load_state_dict(torch.load(wfile))
    body = r["model"].body.state_dict()
    for k, v in ref.features.state_dict().items():  # frozen: weights and BatchNorm statistics untouched
        assert torch.equal(body[k], v), k
    assert r["export_check"]["passed"] and r["weights"] == str(wfile)
    r2 = finetune({**common, "unfreeze": True, "unfreeze_epochs": 1})
    assert [h["phase"] for h in r2["history"]] == ["head", "unfrozen"]
    # (the unfrozen epoch's weights are kept only if its validation loss improved: early stopping)


def test_window_sampler_centres_positives_and_roams_negatives():
    from streamcam.training.data import WindowSampler

    img = np.arange(100 * 120, dtype=np.uint32).reshape(100, 120).astype(np.uint8)
    ws = WindowSampler((20, 10), context=4, image_scale=1.0, jitter=0, flip=False, brightness=0, contrast=0)
    assert ws.size == (28, 18)
    rng = np.random.default_rng(0)
    centre = img[41:59, 46:74]
    assert np.array_equal(ws(img, True, rng), centre)  # (120 - 28) // 2 = 46, (100 - 18) // 2 = 41
    assert np.array_equal(ws(img, False, None), centre)  # validation: deterministic
    negs = [ws(img, False, rng) for _ in range(20)]
    assert all(n.shape == (18, 28) for n in negs)
    assert len({n.tobytes() for n in negs}) > 10  # a negative image yields many different windows
    half = WindowSampler((20, 10), context=4, image_scale=0.5, jitter=0, flip=False, brightness=0, contrast=0)
    assert half(img, True, rng).shape == (18, 28) and half.scaled(img).shape == (50, 60)
    small = np.full((5, 6), 7, np.uint8)  # smaller than a window: reflect-padded, never an error
    assert ws(small, False, rng).shape == (18, 28) and (ws(small, True, rng) == 7).all()


def _centred_square_folder(root, per_class=12, seed=0):
    """``square``: a 16 px bright square centred in a 48x48 noise picture; ``empty``: 160x120 noise frames."""
    rng = np.random.default_rng(seed)
    for c in ("empty", "square"):
        (root / c).mkdir(parents=True, exist_ok=True)
    for i in range(per_class):
        im = rng.normal(80, 20, (48, 48)).clip(0, 255).astype(np.uint8)
        im[16:32, 16:32] = 220
        cv2.imwrite(str(root / "square" / f"{i:02d}.png"), im)
        cv2.imwrite(str(root / "empty" / f"{i:02d}.png"), rng.normal(80, 20, (120, 160)).clip(0, 255).astype(np.uint8))


def test_window_training_localizes_from_centred_pictures_and_empty_frames(tmp_path):
    """Windows mode: positives are pictures with the object centred, negatives whole frames; the CAM of
    the exported model then finds a square placed anywhere in a new, larger frame."""
    pytest.importorskip("torch")
    from streamcam.processor.cam import class_activation_map
    from streamcam.processor.engines import create_engine
    from streamcam.processor.preprocess import preprocess
    from streamcam.training.finetune import finetune

    _centred_square_folder(tmp_path / "data")
    r = finetune({"data": str(tmp_path / "data"), "backbone": "tiny_gap", "weights": "none", "epochs": 6,
                  "samples_per_epoch": 96, "batch_size": 16, "progress": False, "out": str(tmp_path / "m.onnx"),
                  "window": (16, 16), "context": 8, "image_scale": 1.0, "window_jitter": 2, "input_size": (160, 120),
                  "positive_classes": ("square",), "net": {"width": 8, "feature_channels": 16, "dilations": (1, 1)},
                  "seed": 0, "val_fraction": 0.0})
    assert r["export_check"]["passed"]
    frame = np.random.default_rng(5).normal(80, 20, (120, 160)).clip(0, 255).astype(np.uint8)
    frame[70:86, 110:126] = 220
    engine = create_engine(r["out"])
    try:
        x, _ = preprocess(frame, "GRAY8", engine.metadata)
        out = engine.infer(x)
        cam = class_activation_map(out.features, engine.metadata.cam_weights, [1])[0, 0]
    finally:
        engine.close()
    y, x_ = np.unravel_index(cam.argmax(), cam.shape)
    assert 70 <= (y + 0.5) * 4 <= 86 and 110 <= (x_ + 0.5) * 4 <= 126, (y, x_)
    with pytest.raises(ConfigError, match="stride"):
        finetune({"data": str(tmp_path / "data"), "backbone": "tiny_gap", "weights": "none", "window": (16, 16),
                  "context": 6, "progress": False, "out": str(tmp_path / "x.onnx")})


def test_few_shot_tool_writes_a_users_folder_without_boxes(tmp_path):
    """tools/finetune_synthetic.py: person pictures are window-sized crops (a window, its context and room
    for the shift, at frame scale), negatives whole frames, and the folder holds nothing but images."""
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "tools"))
    import finetune_synthetic as ft

    counts = ft.write_folder(tmp_path, per_class=3)
    assert counts == {"person": 3, "no_person": 3}
    pw, ph = (int((v + 2 * ft.CONTEXT + 2 * ft.JITTER) / ft.SCALE) for v in ft.WINDOW)
    for f in sorted((tmp_path / "person").glob("*.png")):
        assert cv2.imread(str(f), cv2.IMREAD_UNCHANGED).shape == (ph, pw)
    for f in sorted((tmp_path / "no_person").glob("*.png")):
        assert cv2.imread(str(f), cv2.IMREAD_UNCHANGED).shape == (480, 640)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["no_person", "person"]  # nothing else: no boxes


def test_weight_averaging_is_the_mean_of_float_weights_and_keeps_the_latest_counters():
    torch = pytest.importorskip("torch")
    from streamcam.training.finetune import _accumulate, _average

    swa = {"sum": None, "n": 0}
    for w, n in ((1.0, 5), (2.0, 6), (6.0, 7)):
        _accumulate(swa, {"w": torch.full((2,), w), "bn.num_batches_tracked": torch.tensor(n)})
    avg = _average(swa)
    assert swa["n"] == 3 and torch.allclose(avg["w"], torch.full((2,), 3.0)) and avg["w"].dtype == torch.float32
    assert int(avg["bn.num_batches_tracked"]) == 7


def test_gap_ensemble_is_a_gap_net_whose_logits_and_cams_are_the_members_means():
    torch = pytest.importorskip("torch")
    from streamcam.processor.cam import class_activation_map
    from streamcam.training.nets import GapEnsemble, TinyGapNet

    torch.manual_seed(0)
    members = [TinyGapNet(in_channels=1, num_classes=3, width=8, feature_channels=c) for c in (16, 12)]
    ens = GapEnsemble(members).eval()
    x = torch.randn(2, 1, 48, 64)
    with torch.no_grad():
        outs = [m.eval()(x) for m in members]
        logits, f = ens(x)
    assert f.shape[1] == 28
    w, b = ens.classifier.weight.detach().numpy(), ens.classifier.bias.detach().numpy()
    # One classifier over the 28 channels vs two over 16 and 12, averaged: the same terms, other sums.
    assert_close_f32(logits.numpy(), ((outs[0][0] + outs[1][0]) / 2).numpy(), **cam_logit_bound(f.numpy(), w, b))
    cam = class_activation_map(f.numpy(), w)
    cams = [class_activation_map(o[1].numpy(), m.classifier.weight.detach().numpy()) for o, m in zip(outs, members)]
    assert_close_f32(cam, (cams[0] + cams[1]) / 2, **cam_bound(f.numpy(), w))
    # mean(M_c) + b_c == logit_c
    assert_close_f32(cam.mean(axis=(2, 3)) + b, logits.numpy(), **cam_logit_bound(f.numpy(), w, b))
    with pytest.raises(ValueError, match="class counts"):
        GapEnsemble([members[0], TinyGapNet(in_channels=1, num_classes=2, width=8, feature_channels=8)])


def test_ensemble_finetune_exports_one_verified_model_with_its_members_provenance(tmp_path):
    pytest.importorskip("torch")
    from streamcam.processor.model_meta import read_metadata
    from streamcam.training.finetune import finetune

    _centred_square_folder(tmp_path / "data", per_class=6)
    common = {"data": str(tmp_path / "data"), "backbone": "tiny_gap", "weights": "none", "epochs": 2,
              "samples_per_epoch": 32, "batch_size": 16, "progress": False, "window": (16, 16), "context": 8,
              "image_scale": 1.0, "window_jitter": 2, "input_size": (160, 120), "positive_classes": ("square",),
              "net": {"width": 8, "feature_channels": 16, "dilations": (1, 1)}, "seed": 3, "val_fraction": 0.0}
    r = finetune({**common, "ensemble": 2, "out": str(tmp_path / "e.onnx")})
    assert r["export_check"]["passed"] and r["metrics"]["seeds"] == [3, 4]
    meta = read_metadata(r["out"])
    assert meta.cam_weights.shape == (2, 32)  # two members' 16 channels each
    assert meta.provenance["ensemble"]["members"] == 2 and len(meta.provenance["history"]) == 2
    single = finetune({**common, "seed": 4, "out": str(tmp_path / "s.onnx")})  # member 2 alone, same recipe
    # The same training on the same machine, halved (exact): equal here; any real difference in the
    # member's training would be far above a few ULPs.
    assert_close_f32(meta.cam_weights[:, 16:], single["model"].classifier.weight.detach().numpy() / 2, ulps=4)
    with pytest.raises(ConfigError, match="ensemble"):
        finetune({**common, "ensemble": 0, "out": str(tmp_path / "x.onnx")})


def test_flip_average_is_a_gap_net_averaging_the_frame_and_its_mirror():
    torch = pytest.importorskip("torch")
    from streamcam.processor.cam import class_activation_map
    from streamcam.training.nets import FlipAverage, TinyGapNet

    torch.manual_seed(1)
    net = TinyGapNet(in_channels=1, num_classes=2, width=8, feature_channels=8).eval()
    fa = FlipAverage(net).eval()
    x = torch.randn(1, 1, 48, 64)
    with torch.no_grad():
        logits, f = fa(x)
        l0, f0 = net(x)
        l1, f1 = net(x.flip(-1))
    w = net.classifier.weight.detach().numpy()
    fa_w, fa_b = fa.classifier.weight.detach().numpy(), fa.classifier.bias.detach().numpy()
    # f holds both views' features: the terms both ways of computing sum, in other orders.
    assert_close_f32(logits.numpy(), ((l0 + l1) / 2).numpy(), **cam_logit_bound(f.numpy(), fa_w, fa_b))
    cam = class_activation_map(f.numpy(), fa_w)
    mirrored_back = class_activation_map(f1.numpy(), w)[..., ::-1]
    assert_close_f32(cam, (class_activation_map(f0.numpy(), w) + mirrored_back) / 2, **cam_bound(f.numpy(), fa_w))
    with torch.no_grad():  # a mirrored frame gives the mirrored map: the average is symmetric
        _, fm = fa(x.flip(-1))
    assert_close_f32(class_activation_map(fm.numpy(), fa_w), cam[..., ::-1], **cam_bound(f.numpy(), fa_w))


def test_flip_averaged_ensemble_exports_and_onnx_runtime_reproduces_it(tmp_path):
    pytest.importorskip("torch")
    from streamcam.processor.model_meta import read_metadata
    from streamcam.training.finetune import finetune

    _centred_square_folder(tmp_path / "data", per_class=6)
    r = finetune({"data": str(tmp_path / "data"), "backbone": "tiny_gap", "weights": "none", "epochs": 1,
                  "samples_per_epoch": 16, "batch_size": 16, "progress": False, "window": (16, 16), "context": 8,
                  "image_scale": 1.0, "input_size": (160, 120), "positive_classes": ("square",),
                  "net": {"width": 8, "feature_channels": 16, "dilations": (1, 1)}, "val_fraction": 0.0,
                  "flip_average": True, "out": str(tmp_path / "f.onnx")})
    assert r["export_check"]["passed"]  # ONNX Runtime vs PyTorch, flips inside the graph
    meta = read_metadata(r["out"])
    assert meta.cam_weights.shape == (2, 32) and meta.provenance["flip_average"] is True


def test_few_shot_tool_records_the_recipe_not_where_the_model_went():
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "tools"))
    import finetune_synthetic as ft

    argv = ["--ensemble", "2", "--out", "/somewhere/m.onnx", "--flip-average", "--out=/x.onnx", "--seed", "1"]
    assert ft._recipe_args(argv) == ["--ensemble", "2", "--flip-average", "--seed", "1"]


@pytest.mark.torch
def test_ensemble_from_random_init_with_a_split_normalises_members_alike(tmp_path):
    """Members train on other splits (seeds); their grey normalisation is the data's, not the split's."""
    pytest.importorskip("torch")
    from streamcam.processor.model_meta import read_metadata
    from streamcam.training.finetune import finetune

    _centred_square_folder(tmp_path / "data", per_class=8)
    r = finetune({"data": str(tmp_path / "data"), "backbone": "tiny_gap", "weights": "none", "epochs": 1,
                  "samples_per_epoch": 16, "batch_size": 8, "progress": False, "input_size": (64, 48),
                  "net": {"width": 8, "feature_channels": 8, "dilations": (1, 1)}, "val_fraction": 0.25,
                  "ensemble": 2, "out": str(tmp_path / "e.onnx")})
    assert r["export_check"]["passed"]
    assert read_metadata(r["out"]).cam_weights.shape == (2, 16)


@pytest.mark.torch
def test_the_grey_ir_trunk_takes_colour_frames(tmp_path):
    """The pretrained IR trunk is grey: colour pictures are converted for it, not a shape mismatch."""
    pytest.importorskip("torch")
    
    from streamcam.processor.model_meta import read_metadata
    from streamcam.training.finetune import finetune

    trunk = conftest.ROOT / "engines" / "ir-objects-tiny_gap.pt"
    make_square_folder(tmp_path / "data", per_class=6, colour=True)
    r = finetune({"data": str(tmp_path / "data"), "backbone": "tiny_gap", "weights": str(trunk), "epochs": 1,
                  "samples_per_epoch": 16, "batch_size": 8, "progress": False, "out": str(tmp_path / "m.onnx")})
    meta = read_metadata(r["out"])
    assert meta.input_channels == 1 and meta.color_order == "GRAY" and r["export_check"]["passed"]
