"""streamcam's CAM equals independent implementations on real torchvision GAP nets (weights=None, seeded).

* raw map (no bias, no ReLU) == torchcam's ``CAM(..., normalized=False)``      (1e-5 of the map's range)
* ReLU + bilinear upsample + min-max == pytorch-grad-cam's ``GradCAM``           (1e-4; Grad-CAM = CAM / (h w)
  on a GAP + linear head)
* mean(M_c) + b_c == logit_c for every class                                      (1e-4 of the logits' scale)
* the ONNX path (export_onnx + create_engine + streamcam.processor.cam) gives the same maps.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from _tolerance import F32_EPS, assert_close_f32  # noqa: E402

pytestmark = pytest.mark.torch

SIZE = 224


def _model_and_input(name):
    from streamcam.training.backbones import build_backbone

    torch.manual_seed(0)
    torch.set_num_threads(1)
    net = build_backbone(name, num_classes=None if name != "mobilenet_v3_small" else 10, weights=None)
    g = torch.Generator().manual_seed(1)
    # Random-init BatchNorm statistics (mean 0, var 1) make MobileNetV2's features vanish (CAM range ~1e-9,
    # where grad-cam's 1e-7 epsilon dominates): calibrate them on random batches first, like a trained net.
    for m in net.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = None
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(4, 3, SIZE, SIZE, generator=g))
    net.eval()
    x = torch.randn(1, 3, SIZE, SIZE, generator=g)
    return net, x


def _tv_layers(name, net):
    """(torchvision-style model sharing the GapNet's weights, target layer name/module, fc name)."""
    from torch import nn

    class TV(nn.Module):  # features -> avgpool -> flatten -> fc, the torchvision layout peers expect
        def __init__(self, body, fc):
            super().__init__()
            self.body, self.fc = body, fc

        def forward(self, x):
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.body(x), 1), 1))

    return TV(net.body, net.classifier).eval()


@pytest.fixture(scope="module", params=["resnet18", "mobilenet_v2"])
def case(request):
    from streamcam.processor.cam import class_activation_map

    net, x = _model_and_input(request.param)
    with torch.no_grad():
        logits, feats = net(x)
    w = net.classifier.weight.detach().numpy()
    b = net.classifier.bias.detach().numpy()
    cams = class_activation_map(feats.numpy(), w)[0]  # [C, h, w]
    return {"name": request.param, "net": net, "x": x, "logits": logits.numpy()[0], "features": feats.numpy(),
            "w": w, "b": b, "cams": cams}


def _assert_close_scaled(a, b, tol):
    """``|a - b| <= tol · max|b|``. 1e-4 (839 float32 ULPs) where two runtimes run a whole 224² net
    (measured up to 180 ULPs: 20-50 layers, reductions of up to 4608 terms); 1e-5 for one layer's maps
    (measured 3)."""
    return assert_close_f32(a, b, ulps=tol / F32_EPS) * F32_EPS


def test_cam_logit_identity_every_class(case):
    recon = case["cams"].mean(axis=(1, 2)) + case["b"]
    _assert_close_scaled(recon, case["logits"], 1e-4)
    assert case["cams"].shape[0] == 1000 and case["cams"].shape[1:] == (7, 7)


@pytest.mark.parametrize("rank", [0, 1, 999])
def test_raw_cam_matches_torchcam(case, rank):
    methods = pytest.importorskip("torchcam.methods", reason="torchcam not installed (pip install torchcam)")
    tv = _tv_layers(case["name"], case["net"])
    c = int(np.argsort(-case["logits"])[rank])
    extractor = methods.CAM(tv, target_layer="body", fc_layer="fc", input_shape=(3, SIZE, SIZE))
    try:
        with torch.no_grad():
            out = tv(case["x"])
        ref = extractor(c, out, normalized=False)[0][0].numpy()  # raw: no ReLU (CAM._relu is False), no bias
    finally:
        extractor.remove_hooks()
    np.testing.assert_allclose(out.numpy()[0], case["logits"], rtol=0, atol=1e-4 * np.abs(case["logits"]).max())
    _assert_close_scaled(case["cams"][c], ref, 1e-5)


def _shown(cam, size=(SIZE, SIZE)):
    from streamcam.processor.cam import normalize_minmax, upsample

    return normalize_minmax(upsample(np.maximum(cam, 0), size))


def test_normalised_cam_matches_pytorch_grad_cam(case):
    gc = pytest.importorskip("pytorch_grad_cam", reason="grad-cam not installed (pip install grad-cam)")
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    tv = _tv_layers(case["name"], case["net"])
    c = int(np.argmax(case["logits"]))
    with gc.GradCAM(model=tv, target_layers=[tv.body]) as cam:
        ref = cam(input_tensor=case["x"].clone(), targets=[ClassifierOutputTarget(c)])[0]
    ours = _shown(case["cams"][c])
    assert ref.shape == ours.shape == (SIZE, SIZE)
    assert float(np.abs(ours - ref).max()) <= 1e-4


def test_streamcam_gradcam_is_cam_over_hw(case):
    from streamcam.processor.gradcam import grad_cam

    c = int(np.argmax(case["logits"]))
    g = grad_cam(case["net"], case["net"].body, case["x"].clone(), c)[0]
    h, w = case["cams"].shape[1:]
    _assert_close_scaled(g * (h * w), case["cams"][c], 1e-4)


def test_onnx_runtime_path_gives_the_same_maps(case, tmp_path):
    from streamcam.processor.cam import class_activation_map
    from streamcam.processor.engines import create_engine
    from streamcam.processor.model_meta import ModelMetadata
    from streamcam.training.export import export_onnx

    net = case["net"]
    c, k = case["w"].shape
    meta = ModelMetadata(classes=tuple(f"c{i}" for i in range(c)), input_width=SIZE, input_height=SIZE,
                         input_channels=3, color_order="RGB", mean=net.spec.mean, std=net.spec.std,
                         cam_weights=np.zeros((c, k), np.float32), cam_bias=np.zeros(c, np.float32))
    path = export_onnx(net, tmp_path / f"{case['name']}.onnx", meta)
    engine = create_engine(str(path), "onnxruntime", threads=1)
    try:
        out = engine.infer(case["x"].numpy())
        cams = class_activation_map(out.features, engine.metadata.cam_weights)[0]
        bias = engine.metadata.cam_bias
    finally:
        engine.close()
    _assert_close_scaled(out.logits[0], case["logits"], 1e-4)
    _assert_close_scaled(cams, case["cams"], 1e-4)
    _assert_close_scaled(cams.mean(axis=(1, 2)) + bias, out.logits[0], 1e-4)
    top = int(np.argmax(case["logits"]))
    assert float(np.abs(_shown(cams[top]) - _shown(case["cams"][top])).max()) <= 1e-3
