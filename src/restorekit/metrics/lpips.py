"""LPIPS (Zhang et al. 2018) as the ``lpips`` package v0.1 computes it, without torchvision.

For each backbone stage: scale the [-1, 1] input with LPIPS' fixed shift/scale, take the
activations of both images, normalise each pixel's feature vector to unit length, square the
difference, weight channels with the learned 1x1 head ``linK``, average over space; the
distance is the sum over stages. Backbones are torchvision's ImageNet VGG16 / AlexNet trunks
(``archs.vgg`` / ``archs.alexnet``); the heads are the ``lpips`` package's ``weights/v0.1``
files, whose keys are ``linK.model.1.weight`` (index 1 because index 0 was a dropout).

Inputs here are NCHW RGB in [0, 1] like everywhere in restorekit (the package's
``normalize=True``); the map to [-1, 1] happens inside. Gradients flow to the inputs, so the
module also serves as a loss; its own parameters are frozen.
"""

from __future__ import annotations

import os
import re
from typing import Literal

import torch
from torch import Tensor, nn

from restorekit.archs.alexnet import ALEXNET_CHANNELS, ALEXNET_WEIGHTS_FILE, AlexNetFeatures
from restorekit.archs.vgg import VGG_WEIGHTS_FILES, VGGFeatures
from restorekit.errors import ConfigError, DataError, WeightsError
from restorekit.weights import load_into, read_state_dict, resolve_weights

LPIPSNet = Literal["vgg", "alex"]

# The lpips package's ScalingLayer constants: ImageNet statistics expressed for [-1, 1] inputs.
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)

VGG_LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
VGG_CHANNELS = (64, 128, 256, 512, 512)

LIN_WEIGHTS_FILES = {"vgg": "lpips_v0.1_vgg.pth", "alex": "lpips_v0.1_alex.pth"}
_BACKBONE_FILES = {"vgg": VGG_WEIGHTS_FILES["vgg16"], "alex": ALEXNET_WEIGHTS_FILE}
# "lin3.model.1.weight" → ModuleList key "3.model.1.weight" (the package's "lins.3…" aliases are skipped).
_LIN_KEY = re.compile(r"^lin(\d+)(?=\.)")


def normalize_channels(x: Tensor, eps: float = 1e-10) -> Tensor:
    """Unit-length feature vector per pixel (eps added to the norm, as the ``lpips`` package)."""
    return x / (torch.sqrt(torch.sum(x**2, dim=1, keepdim=True)) + eps)


class LinearHead(nn.Module):
    """One 1x1 conv (no bias) to a single channel; ``model.1`` keeps the package's key names."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        # Index 0 was nn.Dropout in the package (train-time only); Identity keeps the key index.
        self.model = nn.Sequential(nn.Identity(), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS distance, ``forward(img1, img2) -> (N,)`` for NCHW RGB in [0, 1]. Lower is closer.

    ``backbone_weights`` is torchvision's ``vgg16-397923af.pth`` or ``alexnet-owt-7be5be79.pth``;
    ``lin_weights`` the package's ``weights/v0.1/{vgg,alex}.pth``. ``None`` looks them up in
    the cache folder as ``vgg16-397923af.pth`` / ``alexnet-owt-7be5be79.pth`` and
    ``lpips_v0.1_vgg.pth`` / ``lpips_v0.1_alex.pth``; a missing file is an error (a metric with
    random weights would silently report meaningless numbers).
    """

    def __init__(
        self,
        net: LPIPSNet = "alex",
        backbone_weights: str | os.PathLike[str] | None = None,
        lin_weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        if net not in ("vgg", "alex"):
            raise ConfigError(f"LPIPS net must be 'vgg' or 'alex', got {net!r}")
        self.net_name = net
        backbone_path = resolve_weights(
            backbone_weights, _BACKBONE_FILES[net], f"LPIPS-{net} needs torchvision's ImageNet weights"
        )
        lin_path = resolve_weights(
            lin_weights,
            LIN_WEIGHTS_FILES[net],
            f"LPIPS-{net} needs the lpips package's linear heads (lpips/weights/v0.1/{net}.pth)",
        )
        self.net: nn.Module
        if net == "vgg":
            self.net = VGGFeatures(
                "vgg16", list(VGG_LPIPS_LAYERS), use_input_norm=False, weights_path=backbone_path
            )
            channels = VGG_CHANNELS
        else:
            self.net = AlexNetFeatures(weights_path=backbone_path)
            channels = ALEXNET_CHANNELS
        self.lins = nn.ModuleList(LinearHead(c) for c in channels)
        self._load_heads(lin_path)
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def _load_heads(self, path: str | os.PathLike[str]) -> None:
        """Load ``linK.model.1.weight``; a whole LPIPS state dict (with ``net.*``) is accepted too."""
        state, _ = read_state_dict(path)
        heads = {m.group(1) + k[m.end() :]: v for k, v in state.items() if (m := _LIN_KEY.match(k))}
        if not heads:
            raise WeightsError(
                f"{path}: no LPIPS linear heads (keys 'lin0.model.1.weight' ... 'lin4...') found"
            )
        load_into(self.lins, heads, "strict", path)

    def _features(self, x: Tensor) -> list[Tensor]:
        x = (2 * x - 1 - self.shift) / self.scale
        out = self.net(x)
        return [out[name] for name in VGG_LPIPS_LAYERS] if isinstance(out, dict) else out

    def forward(self, img1: Tensor, img2: Tensor) -> Tensor:
        if img1.shape != img2.shape or img1.ndim != 4 or img1.shape[1] != 3:
            raise DataError(
                "LPIPS needs two NCHW RGB batches of the same shape, "
                f"got {tuple(img1.shape)} and {tuple(img2.shape)}"
            )
        total = img1.new_zeros(img1.shape[0])
        for lin, f1, f2 in zip(self.lins, self._features(img1), self._features(img2)):
            diff = (normalize_channels(f1) - normalize_channels(f2)) ** 2
            total = total + lin(diff).mean(dim=(1, 2, 3))
        return total


def calculate_lpips(
    img1: Tensor,
    img2: Tensor,
    model: LPIPS | None = None,
    net: LPIPSNet = "alex",
    backbone_weights: str | os.PathLike[str] | None = None,
    lin_weights: str | os.PathLike[str] | None = None,
) -> Tensor:
    """LPIPS per image (N,) of NCHW RGB batches in [0, 1], without gradients.

    Pass a built ``model`` to avoid reloading the weights on every call; otherwise one is built
    from ``net`` and the weight paths (or the cache folder).
    """
    if model is None:
        model = LPIPS(net, backbone_weights, lin_weights).to(img1.device)
    with torch.inference_mode():
        return model(img1, img2)
