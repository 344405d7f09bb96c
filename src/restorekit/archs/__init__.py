"""Network architectures, registered in ``restorekit.registry.ARCHS`` on import.

Each family module is imported explicitly here (timm style) so registration never depends on
file names or folder scans. Importing this package pulls in torch and the architectures only —
never the trainer, the CLI or logging back-ends.
"""

from restorekit.archs import (
    discriminators,
    ecbsr,
    edsr,
    info,
    lightweight_gan,
    rcan,
    ridnet,
    rrdbnet,
    srresnet,
    srvgg,
    swinir,
    wdsr,
)
from restorekit.archs.discriminators import UNetDiscriminatorSN, VGGStyleDiscriminator
from restorekit.archs.ecbsr import ECBSR
from restorekit.archs.edsr import EDSR
from restorekit.archs.info import ArchInfo, arch_info
from restorekit.archs.lightweight_gan import LightweightGANDiscriminator, LightweightGANGenerator
from restorekit.archs.rcan import RCAN
from restorekit.archs.ridnet import RIDNet
from restorekit.archs.rrdbnet import RRDBNet
from restorekit.archs.srresnet import MSRResNet
from restorekit.archs.srvgg import SRVGGNetCompact
from restorekit.archs.swinir import SwinIR
from restorekit.archs.wdsr import WDSRA, WDSRB

__all__ = [
    "ECBSR",
    "EDSR",
    "RCAN",
    "WDSRA",
    "WDSRB",
    "ArchInfo",
    "LightweightGANDiscriminator",
    "LightweightGANGenerator",
    "MSRResNet",
    "RIDNet",
    "RRDBNet",
    "SRVGGNetCompact",
    "SwinIR",
    "UNetDiscriminatorSN",
    "VGGStyleDiscriminator",
    "arch_info",
    "discriminators",
    "ecbsr",
    "edsr",
    "info",
    "lightweight_gan",
    "rcan",
    "ridnet",
    "rrdbnet",
    "srresnet",
    "srvgg",
    "swinir",
    "wdsr",
]
