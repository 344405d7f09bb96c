"""Blocks shared by architecture families. Nothing here imports a family module."""

from restorekit.archs.layers.blocks import ResidualBlockNoBN, make_layer
from restorekit.archs.layers.init import default_init_weights
from restorekit.archs.layers.normalize import DIV2K_RGB_MEAN, default_mean, mean_tensor
from restorekit.archs.layers.upsample import Upsample, is_power_of_two, pixel_unshuffle
from restorekit.archs.layers.weight_norm import WeightNormConv2d

__all__ = [
    "DIV2K_RGB_MEAN",
    "ResidualBlockNoBN",
    "Upsample",
    "WeightNormConv2d",
    "default_init_weights",
    "default_mean",
    "is_power_of_two",
    "make_layer",
    "mean_tensor",
    "pixel_unshuffle",
]
