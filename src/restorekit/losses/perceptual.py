"""VGG perceptual (content) and Gram-matrix style loss with BasicSR's ``PerceptualLoss`` arguments.

``layer_weights`` names VGG layers the way BasicSR does: ``conv5_4`` is the fourth convolution of
the fifth stage *before* its ReLU (ESRGAN's choice: pre-activation features are denser and keep
brightness information), ``relu5_4`` the same map after the ReLU (SRGAN's φ5,4). The loss is

    perceptual_weight · Σ_l w_l · criterion(φ_l(x), φ_l(gt))
  + style_weight      · Σ_l w_l · criterion(G(φ_l(x)), G(φ_l(gt)))

with ``criterion`` ``l1`` (mean absolute error), ``l2`` (mean squared error) or ``fro`` (the
Frobenius norm of the difference, not averaged), and G the Gram matrix normalised by C·H·W —
BasicSR's numbers, so ported configs need no re-weighting. ``gt`` gets no gradient.

The VGG is defined in-project (``restorekit.archs.vgg.VGGFeatures``) and loads torchvision's
ImageNet file (``vgg19-dcbb9e9d.pth`` for VGG19) from ``weights_path`` or the weights cache
folder (``$RESTOREKIT_CACHE``, default ``~/.cache/restorekit``). It is never downloaded: without
the file, building the loss fails with a message naming the file and the folder.

``forward`` returns the weighted sum as one tensor, so the loss plugs into any task that adds
up ``crit(output, target)`` terms; ``components`` returns the two parts separately.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from restorekit.archs.vgg import VGG_WEIGHTS_FILES, VGGArch, VGGFeatures, vgg_layer_names
from restorekit.errors import ConfigError, WeightsError, did_you_mean
from restorekit.registry import LOSSES
from restorekit.weights import CACHE_ENV, cache_dir, resolve_weights

Criterion = Literal["l1", "l2", "fro"]


def vgg_weights_file(weights_path: str | None, vgg_type: str) -> str:
    """The torchvision VGG file to load, or a WeightsError saying where to put it."""
    filename = VGG_WEIGHTS_FILES[vgg_type]
    if weights_path is None and not (cache_dir() / filename).is_file():
        raise WeightsError(
            f"PerceptualLoss needs torchvision's ImageNet {vgg_type} weights: put {filename} in "
            f"{cache_dir()} (or set ${CACHE_ENV}), or set weights_path in the loss config; "
            "restorekit never downloads weights"
        )
    return str(resolve_weights(weights_path, filename, "PerceptualLoss weights_path"))


def gram_matrix(feat: Tensor) -> Tensor:
    """(N, C, C) Gram matrices normalised by C·H·W (BasicSR's ``_gram_mat``)."""
    n, c, h, w = feat.shape
    f = feat.reshape(n, c, h * w)
    return torch.bmm(f, f.transpose(1, 2)) / (c * h * w)


@LOSSES.register("PerceptualLoss")
class PerceptualLoss(nn.Module):
    """VGG feature (and optional style) loss; arguments as BasicSR's, plus ``weights_path``."""

    def __init__(
        self,
        layer_weights: dict[str, float],
        vgg_type: VGGArch = "vgg19",
        use_input_norm: bool = True,
        range_norm: bool = False,
        perceptual_weight: float = 1.0,
        style_weight: float = 0.0,
        criterion: Criterion = "l1",
        weights_path: str | None = None,
    ) -> None:
        super().__init__()
        if not layer_weights:
            raise ConfigError("layer_weights: name at least one VGG layer, e.g. {conv5_4: 1.0}")
        names = vgg_layer_names(vgg_type)
        for layer in layer_weights:
            if layer not in names:
                raise ConfigError(
                    f"layer_weights.{layer}: {vgg_type} has no such layer{did_you_mean(layer, names)}; "
                    "use convX_Y (before ReLU), reluX_Y (after) or poolX"
                )
        if criterion not in ("l1", "l2", "fro"):
            raise ConfigError(f"criterion: expected one of 'l1', 'l2', 'fro', got {criterion!r}")
        self.layer_weights = {k: float(v) for k, v in layer_weights.items()}
        self.perceptual_weight = float(perceptual_weight)
        self.style_weight = float(style_weight)
        self.criterion = criterion
        self.vgg = VGGFeatures(
            arch=vgg_type,
            layers=list(self.layer_weights),
            use_input_norm=use_input_norm,
            range_norm=range_norm,
            weights_path=vgg_weights_file(weights_path, vgg_type),
        )

    def _distance(self, a: Tensor, b: Tensor) -> Tensor:
        a, b = a.float(), b.float()
        if self.criterion == "l1":
            return (a - b).abs().mean()
        if self.criterion == "l2":
            return (a - b).pow(2).mean()
        return torch.linalg.vector_norm(a - b)  # 'fro' over the whole batch, as torch.norm(p='fro')

    def components(self, x: Tensor, gt: Tensor) -> tuple[Tensor | None, Tensor | None]:
        """(perceptual loss or None when its weight is 0, style loss or None when its weight is 0)."""
        fx = self.vgg(x)
        with torch.no_grad():
            fg = self.vgg(gt.detach())
        percep = style = None
        if self.perceptual_weight > 0:
            percep = sum(self._distance(fx[k], fg[k]) * w for k, w in self.layer_weights.items())
            percep = percep * self.perceptual_weight
        if self.style_weight > 0:
            style = sum(
                self._distance(gram_matrix(fx[k].float()), gram_matrix(fg[k].float())) * w
                for k, w in self.layer_weights.items()
            )
            style = style * self.style_weight
        return percep, style  # type: ignore[return-value]

    def forward(self, x: Tensor, gt: Tensor) -> Tensor:
        percep, style = self.components(x, gt)
        total = x.new_zeros((), dtype=torch.float32)
        for part in (percep, style):
            if part is not None:
                total = total + part
        return total
