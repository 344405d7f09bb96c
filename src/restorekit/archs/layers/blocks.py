"""Residual building blocks shared by EDSR-like families (EDSR, MSRResNet)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor, nn

from restorekit.archs.layers.init import default_init_weights


def make_layer(block: Callable[..., nn.Module], num_blocks: int, **kwargs: Any) -> nn.Sequential:
    """Stack ``num_blocks`` fresh ``block(**kwargs)`` in an ``nn.Sequential``.

    The Sequential indexes children ``0..n-1``, which is exactly the ``body.<i>.`` key layout
    of the official checkpoints.
    """
    return nn.Sequential(*(block(**kwargs) for _ in range(num_blocks)))


class ResidualBlockNoBN(nn.Module):
    """conv3x3 → ReLU → conv3x3, scaled by ``res_scale`` and added to the input (no BN).

    Keys: ``conv1.weight/bias`` and ``conv2.weight/bias`` (BasicSR). ``pytorch_init=True``
    keeps PyTorch's default init (EDSR); otherwise the 0.1-scaled Kaiming init (MSRResNet).
    """

    def __init__(self, num_feat: int = 64, res_scale: float = 1.0, pytorch_init: bool = False) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        if not pytorch_init:
            default_init_weights([self.conv1, self.conv2], 0.1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.relu(self.conv1(x)))
        if self.res_scale != 1:
            out = out * self.res_scale
        return x + out
