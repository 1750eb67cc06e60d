"""build_backbone: one GapNet interface for torchvision nets and tiny_gap; weights files with clear errors."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from streamcam.errors import ModelError  # noqa: E402
from streamcam.training.backbones import BACKBONES, SPECS, build_backbone  # noqa: E402

from _tolerance import assert_close_f32, cam_logit_bound  # noqa: E402

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
                              "mobilenet_v2_s8"}
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
