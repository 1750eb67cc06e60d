import numpy as np
import pytest

from _tolerance import assert_close_f32

pytestmark = pytest.mark.torch


def test_tiny_training_exports_a_model_onnxruntime_agrees_with(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import onnxruntime as ort

    from streamcam.processor.model_meta import ModelMetadata, read_metadata
    from streamcam.training.export import export_onnx
    from streamcam.training.nets import TinyGapNet
    from streamcam.training.synthetic_data import CropSampler, render_pool

    torch.manual_seed(0)
    pool = render_pool([11, 12], frames_per_scene=4, negative_frames_per_scene=2, input_size=(96, 72),
                       scene_kwargs={"width": 192, "height": 144}, seed=0)
    assert pool.images.shape == (12, 72, 96) and pool.has_person.any() and (~pool.has_person).any()
    sampler = CropSampler(pool, (48, 36), seed=0)
    net = TinyGapNet(width=8, feature_channels=16)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    for _ in range(3):  # one tiny epoch
        imgs, y = sampler.sample(8)
        assert set(np.unique(y)) <= {0, 1}
        x = torch.from_numpy(imgs[:, None].astype(np.float32) / 255.0)
        logits, feats = net(x)
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(y))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert feats.shape == (8, 16, 9, 12)
    meta = ModelMetadata(classes=("no_person", "person"), input_width=96, input_height=72, input_channels=1,
                         color_order="GRAY", mean=(0.5,), std=(0.25,), cam_weights=np.zeros((2, 16), np.float32),
                         cam_bias=np.zeros(2, np.float32), positive_classes=("person",), cam_threshold=0.4)
    path = export_onnx(net, tmp_path / "tiny.onnx", meta)
    back = read_metadata(str(path))
    assert back.classes == ("no_person", "person") and back.cam_threshold == 0.4
    np.testing.assert_array_equal(back.cam_weights, net.classifier.weight.detach().numpy())
    x = torch.from_numpy(pool.images[:5, None].astype(np.float32) / 255.0)
    net.eval()
    with torch.no_grad():
        t_logits, t_feats = net(x)
    o_logits, o_feats = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        ["logits", "features"], {"input": x.numpy()})
    # Two runtimes' float32 kernels for the same net: a forward pass's rounding (NET_ULPS of the scale).
    assert_close_f32(o_logits, t_logits.numpy(), err_msg="logits")
    assert_close_f32(o_feats, t_feats.numpy(), err_msg="features")


def test_crop_labels_follow_person_boxes():
    from streamcam.training.synthetic_data import FramePool, CropSampler, _inside_frac

    boxes = np.array([[10, 10, 20, 30]], np.float32)
    assert _inside_frac(boxes, 0, 0, 40, 40)[0] == 1.0
    assert _inside_frac(boxes, 15, 0, 40, 40)[0] == pytest.approx(0.5)
    pool = FramePool(np.zeros((2, 40, 60), np.uint8), [boxes, np.zeros((0, 4), np.float32)])
    imgs, y = CropSampler(pool, (30, 30), seed=1).sample(16)
    assert imgs.shape == (16, 30, 30) and 0 < y.sum() < 16


def test_context_crops_label_only_the_inner_region():
    from streamcam.training.synthetic_data import CropSampler, FramePool

    boxes = np.array([[30, 30, 40, 50]], np.float32)
    img = np.zeros((100, 120), np.uint8)
    img[30:50, 30:40] = 255  # the person
    pool = FramePool(np.stack([img, np.zeros_like(img)]), [boxes, np.zeros((0, 4), np.float32)])
    imgs, y = CropSampler(pool, (40, 32), seed=1, context=16).sample(64)
    assert imgs.shape == (64, 64, 72)
    inner = imgs[:, 16:-16, 16:-16]
    # Positives hold most of the person inside; negatives may show it only in the margin.
    assert all((inner[y == 1] == 255).reshape(int(y.sum()), -1).sum(1) >= 0.6 * 200)
    neg = imgs[y == 0]
    assert (inner[y == 0] == 255).reshape(len(neg), -1).sum(1).max() <= 0.05 * 200
    assert (neg == 255).any()  # some negatives see the person in their context margin


def test_inner_logits_pool_only_the_inner_cells():
    torch = pytest.importorskip("torch")
    from streamcam.training.nets import MicroGapNet, inner_logits

    torch.manual_seed(0)
    net = MicroGapNet(channels=4).eval()
    x = torch.randn(2, 1, 24, 32)
    with torch.no_grad():
        assert torch.allclose(inner_logits(net, x, 0), net(x)[0])  # no margin: the GAP head itself
        f = net.features(x)
        inner = net.classifier(f[:, :, 3:-3, 3:-3].mean(dim=(2, 3)))
        assert torch.allclose(inner_logits(net, x, 3), inner)
        assert not torch.allclose(inner, net(x)[0])
