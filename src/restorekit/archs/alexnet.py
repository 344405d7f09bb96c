"""AlexNet's convolutional trunk, the default LPIPS backbone, without torchvision.

Layers sit at torchvision's ``alexnet().features`` indices so ``alexnet-owt-7be5be79.pth``
loads by its ``features.N.*`` keys (classifier keys ignored). ``forward`` returns the five
ReLU outputs LPIPS compares (``relu1``..``relu5``); the final max-pool is never needed.
Not registered in ``ARCHS``: it is a frozen feature network used by ``metrics.lpips``.
"""

from __future__ import annotations

import os

from torch import Tensor, nn

from restorekit.weights import load_into, read_state_dict

ALEXNET_WEIGHTS_FILE = "alexnet-owt-7be5be79.pth"
ALEXNET_CHANNELS = (64, 192, 384, 256, 256)

# Index ranges of ``features`` that end at relu1..relu5 (LPIPS' slices).
_SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))


class AlexNetFeatures(nn.Module):
    """The five ReLU activations of torchvision's AlexNet trunk for an NCHW batch.

    No input normalisation: callers (LPIPS) apply their own. ``weights_path=None`` leaves the
    network randomly initialised. Parameters are frozen.
    """

    def __init__(self, weights_path: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
        )
        if weights_path is not None:
            state, _ = read_state_dict(weights_path)
            trunk = {k: v for k, v in state.items() if not k.startswith("classifier.")}
            load_into(self, trunk, "strict", weights_path)
        self.requires_grad_(False)
        self.eval()

    def forward(self, x: Tensor) -> list[Tensor]:
        outs = []
        for start, stop in _SLICES:
            for layer in self.features[start:stop]:
                x = layer(x)
            outs.append(x)
        return outs
