"""BasicSR ``SwinIRModel`` → ``task: restoration``: converted exactly like ``SRModel``.

``SwinIRModel`` is ``SRModel`` whose ``test`` pads the LQ (reflect, bottom/right) to a multiple
of ``network_g.window_size`` and crops the output back. restorekit's ``SwinIR.forward`` does the
same padding itself, at validation and at inference alike, so nothing of the model type is lost;
the conversion says so in a note. ``network_g`` keeps BasicSR's argument names, which our SwinIR
takes unchanged.

BasicSR reads ``network_g.window_size`` in ``test`` (a KeyError there without it) and would pad
any architecture; here ``network_g`` must be the SwinIR the model type is meant for, so a file
with another network under ``SwinIRModel`` is refused with a hint instead of converted silently.
"""

from __future__ import annotations

from typing import Any

from restorekit.compat.basicsr import sr
from restorekit.compat.basicsr.section import Section


def convert(top: Section) -> dict[str, Any]:
    """A SwinIRModel option file (``top``, its ``model_type`` already checked) → our config."""
    net = top.sub("network_g", "the network to train")
    if net.data.get("type") != "SwinIR":
        net.fail(
            "type",
            f"SwinIRModel pads by SwinIR's window, got {net.data.get('type')!r}; "
            "for another architecture use model_type: SRModel",
        )
    net.need("window_size", "SwinIRModel pads the validation input to a multiple of it")
    top.note(
        "model_type",
        "SwinIRModel converts as SRModel: restorekit's SwinIR pads its input to a multiple of "
        "window_size itself (what SwinIRModel.test does)",
    )
    return sr.convert(top)
