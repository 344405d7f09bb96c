"""Device and numeric precision for inference, chosen once per model.

``--precision auto`` means fp32 on the CPU (CPU half precision is slow or unsupported for
convolutions) and half precision on a GPU: fp16 when the architecture declares it safe
(``ArchInfo.supports_fp16``; fp16 keeps 10 mantissa bits, which matters for 16-bit outputs), else bf16 when
the GPU has it, else fp32. The weights are cast once (as Real-ESRGAN's ``--half`` does) rather than
autocast per op: inference has no gradients to protect, and casting halves weight traffic.
Tiles are cast on their way to the device and outputs come back as float32, so blending and the
canvas are always float32. The device rule (``auto``/``cpu``/``cuda``/``cuda:N``) is
``restorekit.device.pick_device``, shared with training.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from restorekit.archs.info import ArchInfo
from restorekit.device import pick_device
from restorekit.errors import RestorekitError

__all__ = ["PRECISIONS", "DeviceRunner", "pick_device", "resolve_precision"]

PRECISIONS = ("auto", "fp32", "fp16", "bf16")
_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_precision(precision: str, device: torch.device, info: ArchInfo | None = None) -> torch.dtype:
    """The dtype to run a network described by ``info`` in on ``device`` for ``precision``.

    ``info=None`` (a network from outside the registry) is assumed fp16-safe, as most are.
    """
    if precision not in PRECISIONS:
        raise RestorekitError(f"--precision {precision}: expected one of {', '.join(PRECISIONS)}")
    cuda = device.type == "cuda"
    if precision == "auto":
        if not cuda:
            return torch.float32
        if info is None or info.supports_fp16:
            return torch.float16
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    if precision == "fp16" and not cuda:
        raise RestorekitError(
            "--precision fp16: half precision needs a CUDA GPU and this run is on the CPU; "
            "use --precision fp32 (or auto, which picks fp32 here) or bf16"
        )
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise RestorekitError(
            f"--precision bf16: {torch.cuda.get_device_name(device)} has no bfloat16 support"
        )
    return _DTYPES[precision]


class DeviceRunner:
    """``fn(host float32 batch) → device output``: the network on its device, in its precision.

    ``channels_last`` (from ``ArchInfo.supports_channels_last``) is used on CUDA only, where
    cuDNN's NHWC kernels are faster; on the CPU it would only add layout conversions.
    """

    def __init__(
        self, net: nn.Module, device: torch.device, dtype: torch.dtype, channels_last: bool = False
    ) -> None:
        self.device = device
        self.dtype = dtype
        self.channels_last = device.type == "cuda" and channels_last
        net = net.eval().to(device=device, dtype=dtype)
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.net = net

    @torch.inference_mode()
    def __call__(self, x: Tensor) -> Tensor:
        x = x.to(self.device, non_blocking=True).to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)
