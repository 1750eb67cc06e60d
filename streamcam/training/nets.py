"""Small, fast GAP classification networks whose CAM localizes (Zhou et al., CVPR 2016).

Shape: a conv trunk ending in ``features`` ``[N, K, h, w]`` -> global average pooling ->
one linear ``classifier`` (``K -> C``). Because the head is linear after GAP,
``logit_c = mean_{x,y}(sum_k w[c, k] f_k(x, y)) + b_c`` and the Class Activation Map
``M_c = sum_k w[c, k] f_k`` is the per-location contribution to the logit.

:class:`TinyGapNet` is the default CPU model: stride 4 (an 80x60 map for a 320x240
input, i.e. 8 px cells in a 640x480 frame, fine enough for tight boxes around
25 px people), and dilated depthwise-separable blocks for a ~60 px receptive field
(enough context to tell a person from a car or a lamp) at ~0.1 GMAC per frame.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1, groups: int = 1) -> nn.Sequential:
    pad = dilation * (k - 1) // 2
    return nn.Sequential(
        nn.Conv2d(cin, cout, k, stride=stride, padding=pad, dilation=dilation, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


def _sep(cin: int, cout: int, dilation: int) -> nn.Sequential:
    """Depthwise 3x3 (dilated) + pointwise 1x1: wide receptive field for few MACs."""
    return nn.Sequential(_conv_bn(cin, cin, 3, dilation=dilation, groups=cin), _conv_bn(cin, cout, 1))


class TinyGapNet(nn.Module):
    """conv trunk (stride 4) -> GAP -> linear. ``forward`` returns ``(logits, features)``."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, width: int = 32, feature_channels: int = 64,
                 dilations: tuple[int, ...] = (2, 4, 8)):
        super().__init__()
        w = width
        d = tuple(dilations)
        self.trunk = nn.Sequential(
            _conv_bn(in_channels, w // 2, 3, stride=2),
            _conv_bn(w // 2, w, 3, stride=2),
            _conv_bn(w, w, 3),
            _sep(w, feature_channels, dilation=d[0]),
            *[_sep(feature_channels, feature_channels, dilation=x) for x in d[1:]],
        )
        self.classifier = nn.Linear(feature_channels, num_classes)
        self.stride = 4

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last conv feature maps ``[N, K, h, w]`` (non-negative, after ReLU)."""
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        logits = self.classifier(f.mean(dim=(2, 3)))
        return logits, f


class MicroGapNet(nn.Module):
    """A 3-layer GAP net for tests: conv -> conv -> conv -> GAP -> linear."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, channels: int = 8):
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(),
        )
        self.classifier = nn.Linear(channels, num_classes)
        self.stride = 2

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.classifier(f.mean(dim=(2, 3))), f


def inner_logits(model: nn.Module, x: torch.Tensor, margin_cells: int) -> torch.Tensor:
    """Logits from the features of the inner cells only, ``margin_cells`` dropped on every side.

    Training on a crop with a context margin: the label speaks for the inner region, so only its
    cells are pooled, while the margin still feeds their receptive fields. ``margin_cells=0`` is the
    plain GAP head."""
    f = model.features(x)
    if margin_cells:
        f = f[:, :, margin_cells:-margin_cells, margin_cells:-margin_cells]
    return model.classifier(f.mean(dim=(2, 3)))


class GapEnsemble(nn.Module):
    """Several GAP networks as one: features concatenated, one linear head averaging theirs.

    ``logits = mean_i(logits_i)`` and, the head being linear on the concatenated GAP features,
    ``CAM_c = mean_i(CAM_c,i)`` exactly: the ensemble is itself a GAP network, so export, CAM, the
    box rule and ``mean(M_c) + b_c == logit_c`` work unchanged. Averaging nets fine-tuned from
    different seeds (a deep ensemble, Lakshminarayanan et al., NeurIPS 2017) steadies what a few
    pictures leave to chance; it costs one forward pass per member. Members must give feature maps
    of the same size and share the classes (same backbone and input size).
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ValueError("GapEnsemble: expected at least one member")
        k = {m.classifier.out_features for m in members}
        if len(k) != 1:
            raise ValueError(f"GapEnsemble: members have different class counts {sorted(k)}")
        self.members = nn.ModuleList(members)
        n = len(members)
        c = sum(m.classifier.in_features for m in members)
        self.classifier = nn.Linear(c, k.pop())
        with torch.no_grad():
            self.classifier.weight.copy_(torch.cat([m.classifier.weight for m in members], dim=1) / n)
            self.classifier.bias.copy_(torch.stack([m.classifier.bias for m in members]).mean(dim=0))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m.features(x) for m in self.members], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.classifier(f.mean(dim=(2, 3))), f


class FlipAverage(nn.Module):
    """A GAP network averaged with itself on the mirrored frame, as one GAP network.

    ``features(x)`` is the net's feature map of ``x`` beside the mirrored-back feature map of the
    mirrored ``x``; the head holds the net's head twice, halved. Logits are the mean of the two views'
    logits and every CAM the mean of the two views' CAMs (test-time flip augmentation, exact for the
    exported graph). A net fine-tuned from a few pictures can place its CAM off to one side of an
    object (measured: 5 px at 640x480 for one seed); the mirror undoes such a shift, so the mean is
    centred on it. Twice the forward cost.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        lin = net.classifier
        self.classifier = nn.Linear(2 * lin.in_features, lin.out_features)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.cat([lin.weight, lin.weight], dim=1) / 2)
            self.classifier.bias.copy_(lin.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.net.features(x), self.net.features(x.flip(-1)).flip(-1)], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.features(x)
        return self.classifier(f.mean(dim=(2, 3))), f


def optimizer_step(opt, sched, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """One optimisation step (gradients, update, learning-rate schedule); the batch's loss and accuracy."""
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    return float(loss.detach()), float((logits.detach().argmax(1) == y).float().mean())


NETS = {"tiny_gap": TinyGapNet, "micro_gap": MicroGapNet}


def build_net(name: str, **kwargs) -> nn.Module:
    try:
        cls = NETS[name]
    except KeyError:
        raise ValueError(f"unknown net {name!r}; expected one of {sorted(NETS)}") from None
    return cls(**kwargs)
