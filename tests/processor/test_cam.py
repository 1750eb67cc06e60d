import numpy as np
import pytest

from streamcam.processor.cam import class_activation_map, normalize_minmax, upsample, upsample_reference

from _tolerance import assert_close_f32, cam_bound, cam_logit_bound, sum_ulps


@pytest.mark.parametrize("n, k, c, h, w", [(1, 1, 1, 1, 1), (2, 8, 3, 5, 7), (1, 64, 2, 60, 80)])
def test_cam_matches_the_formula(n, k, c, h, w):
    rng = np.random.default_rng(n * 100 + k)
    f = rng.standard_normal((n, k, h, w)).astype(np.float32)
    wt = rng.standard_normal((c, k)).astype(np.float32)
    cam = class_activation_map(f, wt)
    ref = np.zeros((n, c, h, w), np.float64)
    for i in range(n):
        for j in range(c):
            for kk in range(k):
                ref[i, j] += wt[j, kk] * f[i, kk]
    bound = cam_bound(f, wt)  # float32 sums of k products vs float64
    assert_close_f32(cam, ref, **bound)
    sel = class_activation_map(f, wt, [c - 1])
    assert sel.shape == (n, 1, h, w)
    assert_close_f32(sel[:, 0], cam[:, c - 1], **bound)  # a matmul of another shape: its own order


def test_cam_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="weights"):
        class_activation_map(np.zeros((1, 4, 2, 2)), np.zeros((2, 5)))
    with pytest.raises(ValueError, match="features"):
        class_activation_map(np.zeros((4, 2, 2)), np.zeros((2, 4)))


def _bilinear_bound(cam: np.ndarray) -> dict:
    """Two bilinear resizes of ``cam``: cv2 and torch round each source coordinate to float32 (the
    reference: float64), which moves a weight by up to eps · max(h, w) / 2 on each axis, times a
    step between neighbours of up to 2 · max|cam|; then four products and their sums."""
    return {"ulps": 2 * max(cam.shape[-2:]) + sum_ulps(4), "scale": float(np.abs(cam).max())}


@pytest.mark.parametrize("shape, size", [((6, 8), (48, 64)), ((2, 3, 60, 80), (480, 640)), ((5, 5), (7, 13)),
                                         ((1, 1), (4, 4)), ((30, 40), (30, 40))])
def test_upsample_fast_path_matches_reference(shape, size):
    cam = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    fast, ref = upsample(cam, size), upsample_reference(cam, size)
    assert fast.shape == shape[:-2] + size
    assert_close_f32(fast, ref, **_bilinear_bound(cam))


def test_upsample_is_align_corners_false_like_torch():
    torch = pytest.importorskip("torch")
    cam = np.random.default_rng(1).standard_normal((1, 2, 6, 8)).astype(np.float32)
    t = torch.nn.functional.interpolate(torch.from_numpy(cam), size=(24, 40), mode="bilinear", align_corners=False)
    assert_close_f32(upsample_reference(cam, (24, 40)), t.numpy(), **_bilinear_bound(cam))


def test_normalize_minmax():
    cam = np.stack([np.arange(12, dtype=np.float32).reshape(3, 4) - 5, np.full((3, 4), 7.0, np.float32)])
    out = normalize_minmax(cam)
    assert out[0].min() == 0 and out[0].max() == 1
    np.testing.assert_allclose(out[0], (cam[0] + 5) / 11)  # elementwise: correctly rounded on any IEEE CPU
    assert np.all(out[1] == 0)  # a constant map has no hot region


def test_cam_explains_logits_in_onnxruntime(tmp_path):
    """mean(M_c) + b_c == logit_c, with features and logits from the exported ONNX graph."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnx")
    import onnxruntime as ort

    from streamcam.processor.model_meta import ModelMetadata, read_metadata
    from streamcam.training.export import export_onnx
    from streamcam.training.nets import MicroGapNet

    torch.manual_seed(0)
    net = MicroGapNet(in_channels=1, num_classes=3, channels=8)
    meta = ModelMetadata(classes=("a", "b", "c"), input_width=32, input_height=24, input_channels=1,
                         color_order="GRAY", mean=(0.5,), std=(0.25,), cam_weights=np.zeros((3, 8), np.float32),
                         cam_bias=np.zeros(3, np.float32))
    path = export_onnx(net, tmp_path / "micro.onnx", meta)
    meta = read_metadata(str(path))
    x = np.random.default_rng(0).standard_normal((3, 1, 24, 32)).astype(np.float32)  # dynamic batch
    logits, feats = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        ["logits", "features"], {"input": x})
    assert feats.shape == (3, 8, 12, 16)
    cam = class_activation_map(feats, meta.cam_weights)
    assert_close_f32(cam.mean(axis=(2, 3)) + meta.cam_bias, logits,
                     **cam_logit_bound(feats, meta.cam_weights, meta.cam_bias))
