"""Network architectures, registered in ``restorekit.registry.ARCHS`` on import.

Each family module is imported explicitly here (timm style) so registration never depends on
file names or folder scans. Importing this package pulls in torch and the architectures only —
never the trainer, the CLI or logging back-ends.
"""

from restorekit.archs import discriminators, edsr, rrdbnet, srresnet, srvgg, wdsr
from restorekit.archs.discriminators import UNetDiscriminatorSN, VGGStyleDiscriminator
from restorekit.archs.edsr import EDSR
from restorekit.archs.rrdbnet import RRDBNet
from restorekit.archs.srresnet import MSRResNet
from restorekit.archs.srvgg import SRVGGNetCompact
from restorekit.archs.wdsr import WDSRA, WDSRB

__all__ = [
    "EDSR",
    "WDSRA",
    "WDSRB",
    "MSRResNet",
    "RRDBNet",
    "SRVGGNetCompact",
    "UNetDiscriminatorSN",
    "VGGStyleDiscriminator",
    "discriminators",
    "edsr",
    "rrdbnet",
    "srresnet",
    "srvgg",
    "wdsr",
]
