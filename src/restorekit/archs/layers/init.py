"""Weight initialisation shared by the architecture families.

BasicSR initialises residual branches with Kaiming-normal weights scaled down (by 0.1 in
MSRResNet and ESRGAN): a deep stack of residual blocks then starts close to the identity, which
is what lets these networks train without batch normalisation. Reproducing that scheme keeps
training from scratch comparable with the published recipes.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def default_init_weights(
    modules: nn.Module | Iterable[nn.Module], scale: float = 1.0, bias_fill: float = 0.0
) -> None:
    """Kaiming-normal init (fan-in, gain for ReLU) scaled by ``scale``; biases set to ``bias_fill``.

    Applies to every ``Conv2d``/``Linear`` inside the given modules; batch-norm weights become 1.
    Same scheme as BasicSR's ``default_init_weights``. Tensors on the ``meta`` device (used to
    check a state dict's layout without allocating) are skipped: they hold no values, and
    ``normal_`` on meta tensors pulls in slow Python decompositions on first use.
    """
    module_list = [modules] if isinstance(modules, nn.Module) else list(modules)
    for module in module_list:
        for m in module.modules():
            if any(p.is_meta for p in m.parameters(recurse=False)):
                continue
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
                m.weight.mul_(scale)
                if m.bias is not None:
                    m.bias.fill_(bias_fill)
            elif isinstance(m, _BatchNorm):
                nn.init.constant_(m.weight, 1.0)
                if m.bias is not None:
                    m.bias.fill_(bias_fill)
