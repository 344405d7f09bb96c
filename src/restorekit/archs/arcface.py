"""ArcFace ResNet (Deng et al., 2019, "ArcFace: Additive Angular Margin Loss for Deep Face
Recognition") as GFPGAN uses it: the frozen identity network of its identity loss.

Arguments and keys follow ``gfpgan/archs/arcface_arch.py``; the release ``arcface_resnet18.pth``
is ``ResNetArcFace(block='IRBlock', layers=[2, 2, 2, 2], use_se=False)``
(``options/train_gfpgan_v1.yml``)::

    conv1.weight [64, 1, 3, 3], bn1.*, prelu.weight [1]             stem (no conv bias anywhere)
    layer<s>.<j>.{bn0, conv1, bn1, prelu, conv2, bn2}                 IRBlocks, widths 64/128/256/512
    layer<s>.0.downsample.{0.weight, 1.*}                             1×1 stride-2 projection (s >= 2)
    layer<s>.<j>.se.fc.{0, 1, 2}                                      squeeze-excitation (use_se)
    bn4.*, fc5.{weight [512, 512·8·8], bias}, bn5.*                   embedding head

The input is one gray channel of exactly 128×128 px (``fc5`` reads the 8×8 map left after the
stem's max-pool and three stride-2 stages). GFPGAN feeds it the luminance
``0.2989 R + 0.5870 G + 0.1140 B`` of its [-1, 1] images, bilinearly resized to 128
(``GFPGANModel.gray_resize_for_identity``), so the declared value range is (-1, 1). The output
is the 512-d embedding after ``bn5`` (not normalised; the identity loss is an L1 between two).
Only ``block='IRBlock'`` is accepted: GFPGAN maps no other name to a class, and its
``BasicBlock``/``Bottleneck`` cannot take the ``use_se`` argument its ``_make_layer`` passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.archs.layers.keys import StateDict, child_indices, is_consecutive, shape_of
from restorekit.errors import ConfigError
from restorekit.registry import ARCHS

INPUT_SIZE = 128  # fixed by fc5's 512·8·8 inputs
EMBED_DIM = 512
WIDTHS = (64, 128, 256, 512)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class SEBlock(nn.Module):
    """Squeeze-and-excitation: channel gates from the global average (reduction 16)."""

    def __init__(self, channel: int, reduction: int = 16) -> None:
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channel, channel // reduction),
            nn.PReLU(),
            nn.Linear(channel // reduction, channel),
            nn.Sigmoid(),
        )

    def forward(self, x: Tensor) -> Tensor:
        b, c = x.shape[:2]
        return x * self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)


class IRBlock(nn.Module):
    """Improved residual block: BN → conv → BN → PReLU → conv(stride) → BN (→ SE), plus the skip.

    One PReLU (one learned slope) serves both activations, after ``bn1`` and after the sum.
    """

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
        use_se: bool = True,
    ) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(inplanes)
        self.conv1 = _conv3x3(inplanes, inplanes)
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.prelu = nn.PReLU()
        self.conv2 = _conv3x3(inplanes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.use_se = use_se
        if use_se:
            self.se = SEBlock(planes)

    def forward(self, x: Tensor) -> Tensor:
        out = self.prelu(self.bn1(self.conv1(self.bn0(x))))
        out = self.bn2(self.conv2(out))
        if self.use_se:
            out = self.se(out)
        skip = x if self.downsample is None else self.downsample(x)
        return self.prelu(out + skip)


# a 128² gray face in [-1, 1] to a 512-d embedding; the whole face at once, never tiled
INFO = ArchInfo("feature", 1, EMBED_DIM, input_size=INPUT_SIZE, value_range=(-1, 1), tileable=False)


@ARCHS.register("ResNetArcFace", info=INFO)
class ResNetArcFace(nn.Module):
    """ResNet with IR blocks → 512-d identity embedding (GFPGAN's ``ResNetArcFace``).

    Args:
        block: the residual block; only ``'IRBlock'`` exists (see the module docstring).
        layers: IR blocks per stage (four stages, widths 64, 128, 256, 512); the release [2, 2, 2, 2].
        use_se: squeeze-excitation in every block (GFPGAN's default True; the release: False).
        width: channels of the stem and first stage (64, the release; stages double it). Not
            GFPGAN's: a narrower net only for CPU toys with random identity weights
            (configs/gfpgan_toy.yml), where the full 25 M-parameter ResNet dominates the step.
    """

    def __init__(
        self, block: Literal["IRBlock"], layers: Sequence[int], use_se: bool = True, width: int = 64
    ) -> None:
        super().__init__()
        if block != "IRBlock":
            raise ConfigError(f"block: expected 'IRBlock' (the only ResNetArcFace block), got {block!r}")
        layers = tuple(int(n) for n in layers)
        if len(layers) != 4 or min(layers) < 1:
            raise ConfigError(f"layers: expected four positive block counts, got {list(layers)}")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ConfigError(f"width: expected a positive channel count (64 in the release), got {width!r}")
        widths = tuple(width * m for m in (1, 2, 4, 8))
        self.use_se = use_se
        self.conv1 = nn.Conv2d(1, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.prelu = nn.PReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=2, stride=2)
        inplanes = width
        for s, (planes, count) in enumerate(zip(widths, layers), start=1):
            stride = 1 if s == 1 else 2
            down = None
            if stride != 1 or inplanes != planes:
                down = nn.Sequential(
                    nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
                )
            blocks = [IRBlock(inplanes, planes, stride, down, use_se=use_se)]
            blocks += [IRBlock(planes, planes, use_se=use_se) for _ in range(1, count)]
            setattr(self, f"layer{s}", nn.Sequential(*blocks))
            inplanes = planes
        self.bn4 = nn.BatchNorm2d(widths[3])
        self.dropout = nn.Dropout()
        self.fc5 = nn.Linear(widths[3] * 8 * 8, EMBED_DIM)
        self.bn5 = nn.BatchNorm1d(EMBED_DIM)
        self._init_weights()

    def _init_weights(self) -> None:
        """GFPGAN's initialisation: Xavier-normal convs and linears, unit BatchNorms, zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight)
            elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_normal_(m.weight)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, 1, 128, 128)`` gray faces in [-1, 1] → ``(B, 512)`` embeddings."""
        x = self.maxpool(self.prelu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(self.bn4(x))
        return self.bn5(self.fc5(x.flatten(1)))


def recognize(state_dict: StateDict) -> dict[str, Any] | None:
    """ResNetArcFace kwargs from GFPGAN's layout (``arcface_resnet18.pth``), else ``None``.

    Everything is read from the weights: ``layers`` (blocks per ``layer<s>``) and ``use_se``
    (``se`` keys); ``block`` is IRBlock (``bn0`` keys).
    """
    sd = state_dict
    if shape_of(sd, "conv1.weight", 4) != (64, 1, 3, 3) or shape_of(sd, "fc5.weight", 2) is None:
        return None
    if "layer1.0.bn0.weight" not in sd or "bn5.running_var" not in sd:
        return None
    layers = []
    for s in range(1, 5):
        blocks = child_indices(sd, f"layer{s}")
        if not is_consecutive(blocks):
            return None
        layers.append(len(blocks))
    return {"block": "IRBlock", "layers": tuple(layers), "use_se": "layer1.0.se.fc.0.weight" in sd}
