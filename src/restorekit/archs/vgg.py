"""VGG feature extractor that loads torchvision's ImageNet weights without torchvision.

Perceptual losses and LPIPS read intermediate VGG activations by name (``relu1_2``,
``conv5_4``). The layers live in ``self.features`` at exactly torchvision's indices (conv at
``i``, its ReLU at ``i+1``, max-pools in between), so ``vgg19-dcbb9e9d.pth`` /
``vgg16-397923af.pth`` load by their ``features.N.weight`` keys; the classifier keys in those
files are ignored. Only the layers up to the deepest requested one are built, so a loss on
``relu2_2`` does not pay for the whole network.

ReLUs are not in-place: a requested ``convX_Y`` output must survive the ReLU after it.
Not registered in ``ARCHS``: it is a frozen feature network used by losses and metrics.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from restorekit.errors import ConfigError, did_you_mean
from restorekit.weights import load_into, read_state_dict

VGGArch = Literal["vgg11", "vgg13", "vgg16", "vgg19"]

# Convolutions per stage (torchvision's configurations A, B, D, E); every stage ends in a 2x2 max-pool.
_STAGES: dict[str, tuple[int, ...]] = {
    "vgg11": (1, 1, 2, 2, 2),
    "vgg13": (2, 2, 2, 2, 2),
    "vgg16": (2, 2, 3, 3, 3),
    "vgg19": (2, 2, 4, 4, 4),
}
_WIDTHS = (64, 128, 256, 512, 512)

# torchvision's ImageNet release file names, for ``resolve_weights``.
VGG_WEIGHTS_FILES: dict[str, str] = {
    "vgg11": "vgg11-8a719046.pth",
    "vgg13": "vgg13-19584684.pth",
    "vgg16": "vgg16-397923af.pth",
    "vgg19": "vgg19-dcbb9e9d.pth",
}

# ImageNet statistics of images in [0, 1], the normalisation torchvision's weights were trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def vgg_layer_names(arch: str) -> list[str]:
    """Names of ``features[i]`` in order: conv1_1, relu1_1, ..., pool1, conv2_1, ... (BasicSR's names)."""
    if arch not in _STAGES:
        raise ConfigError(
            f"unknown VGG arch {arch!r}{did_you_mean(arch, _STAGES)}; known: {', '.join(_STAGES)}"
        )
    names: list[str] = []
    for stage, count in enumerate(_STAGES[arch], start=1):
        for j in range(1, count + 1):
            names += [f"conv{stage}_{j}", f"relu{stage}_{j}"]
        names.append(f"pool{stage}")
    return names


def _build_features(arch: str, depth: int) -> nn.Sequential:
    """The first ``depth`` modules of torchvision's ``vgg.features`` for ``arch``."""
    layers: list[nn.Module] = []
    in_ch = 3
    for count, width in zip(_STAGES[arch], _WIDTHS):
        for _ in range(count):
            layers += [nn.Conv2d(in_ch, width, kernel_size=3, padding=1), nn.ReLU()]
            in_ch = width
        layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers[:depth])


class VGGFeatures(nn.Module):
    """Named VGG activations ``{name: tensor}`` of an NCHW RGB batch.

    ``use_input_norm`` applies the ImageNet mean/std (input in [0, 1]); ``range_norm`` first maps
    [-1, 1] to [0, 1]. ``weights_path`` is a torchvision ImageNet file (``features.N.*`` keys);
    ``None`` leaves the network randomly initialised. Parameters are frozen; gradients still
    flow to the input, which is what a perceptual loss needs.
    """

    def __init__(
        self,
        arch: VGGArch = "vgg19",
        layers: Sequence[str] = ("relu5_4",),
        use_input_norm: bool = True,
        range_norm: bool = False,
        weights_path: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        names = vgg_layer_names(arch)
        if not layers:
            raise ConfigError("VGGFeatures: layers must name at least one layer (e.g. 'relu1_2')")
        for name in layers:
            if name not in names:
                raise ConfigError(f"VGGFeatures: {arch} has no layer {name!r}{did_you_mean(name, names)}")
        self.arch = arch
        self.layers = list(layers)
        self.use_input_norm = use_input_norm
        self.range_norm = range_norm
        depth = max(names.index(n) for n in layers) + 1
        self._names = names[:depth]
        self.features = _build_features(arch, depth)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if weights_path is not None:
            self.load_torchvision(weights_path)
        self.requires_grad_(False)
        self.eval()

    def load_torchvision(self, path: str | os.PathLike[str]) -> None:
        """Load the ``features.N.*`` tensors of a torchvision VGG file (classifier keys ignored)."""
        state, _ = read_state_dict(path)
        own = self.state_dict()
        picked = {k: v for k, v in state.items() if k in own}
        extra = [k for k in state if k not in own and not self._is_ignorable(k)]
        load_into(self, {**picked, **{k: state[k] for k in extra}}, "strict", path)

    def _is_ignorable(self, key: str) -> bool:
        """Classifier weights and layers deeper than the ones built are expected in the file."""
        if key.startswith("classifier."):
            return True
        parts = key.split(".")
        return (
            parts[0] == "features"
            and len(parts) == 3
            and parts[1].isdigit()
            and int(parts[1]) >= len(self.features)
        )

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        if self.range_norm:
            x = (x + 1) / 2
        if self.use_input_norm:
            x = (x - self.mean) / self.std
        out: dict[str, Tensor] = {}
        for name, layer in zip(self._names, self.features):
            x = layer(x)
            if name in self.layers:
                out[name] = x
        return out
