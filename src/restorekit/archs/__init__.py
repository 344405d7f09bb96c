"""Network architectures, registered in ``restorekit.registry.ARCHS`` on import.

Each family module is imported explicitly here (timm style) so registration never depends on
file names or folder scans. Importing this package pulls in torch and the architectures only —
never the trainer, the CLI or logging back-ends.
"""

from restorekit.archs import (
    arcface,
    discriminators,
    ecbsr,
    edsr,
    gfpgan_clean,
    gfpgan_v1,
    info,
    lightweight_gan,
    rcan,
    restoreformer,
    ridnet,
    rrdbnet,
    srresnet,
    srvgg,
    stylegan2,
    stylegan2_clean,
    swinir,
    wdsr,
)
from restorekit.archs.arcface import ResNetArcFace
from restorekit.archs.discriminators import UNetDiscriminatorSN, VGGStyleDiscriminator
from restorekit.archs.ecbsr import ECBSR
from restorekit.archs.edsr import EDSR
from restorekit.archs.gfpgan_clean import GFPGANv1Clean
from restorekit.archs.gfpgan_v1 import FacialComponentDiscriminator, GFPGANv1
from restorekit.archs.info import ArchInfo, arch_info
from restorekit.archs.lightweight_gan import LightweightGANDiscriminator, LightweightGANGenerator
from restorekit.archs.rcan import RCAN
from restorekit.archs.restoreformer import RestoreFormer
from restorekit.archs.ridnet import RIDNet
from restorekit.archs.rrdbnet import RRDBNet
from restorekit.archs.srresnet import MSRResNet
from restorekit.archs.srvgg import SRVGGNetCompact
from restorekit.archs.stylegan2 import StyleGAN2Discriminator, StyleGAN2Generator
from restorekit.archs.stylegan2_clean import StyleGAN2GeneratorClean
from restorekit.archs.swinir import SwinIR
from restorekit.archs.wdsr import WDSRA, WDSRB

__all__ = [
    "ECBSR",
    "EDSR",
    "RCAN",
    "WDSRA",
    "WDSRB",
    "ArchInfo",
    "FacialComponentDiscriminator",
    "GFPGANv1",
    "GFPGANv1Clean",
    "LightweightGANDiscriminator",
    "LightweightGANGenerator",
    "MSRResNet",
    "RIDNet",
    "RRDBNet",
    "ResNetArcFace",
    "RestoreFormer",
    "SRVGGNetCompact",
    "StyleGAN2Discriminator",
    "StyleGAN2Generator",
    "StyleGAN2GeneratorClean",
    "SwinIR",
    "UNetDiscriminatorSN",
    "VGGStyleDiscriminator",
    "arcface",
    "arch_info",
    "discriminators",
    "ecbsr",
    "edsr",
    "gfpgan_clean",
    "gfpgan_v1",
    "info",
    "lightweight_gan",
    "rcan",
    "restoreformer",
    "ridnet",
    "rrdbnet",
    "srresnet",
    "srvgg",
    "stylegan2",
    "stylegan2_clean",
    "swinir",
    "wdsr",
]
