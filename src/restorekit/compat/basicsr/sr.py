"""BasicSR ``SRModel`` → ``task: restoration``: one generator trained with one pixel loss.

Options that only a GAN model uses (``network_d``, ``optim_d``, ``gan_opt``...) are refused with
a hint to the GAN model types rather than dropped: under SRModel BasicSR ignores them, so their
presence usually means the wrong ``model_type`` was copied.
"""

from __future__ import annotations

from typing import Any

from restorekit.compat.basicsr.common import (
    GAN_HINT,
    begin,
    ema_decay,
    finish,
    network,
    paired_train_set,
    paths,
    pixel_loss,
    schedule,
    train_head,
)
from restorekit.compat.basicsr.section import Section

_NO_D = f"not used by SRModel{GAN_HINT}"
_NO_PATH = {"pretrained": None, "pretrained_strict": True}  # written even without a path section


def convert(top: Section) -> dict[str, Any]:
    """An SRModel option file (``top``, its ``model_type`` already checked) → our config."""
    top.refuse(("network_d",), f"a discriminator is not used by SRModel{GAN_HINT}")
    out = begin(top, "restoration")
    out["network_g"] = network(top.sub("network_g", "the network to train"), out["scale"])
    out.update(paths(top.child("path"), has_d=False, no_d=_NO_D) or _NO_PATH)
    train, tail = finish(top, out, paired_train_set)
    if train is not None:
        out["train"] = _train(train)
    return {**out, **tail}


def _train(train: Section) -> dict[str, Any]:
    gan_keys = ("optim_d", "gan_opt", "net_d_iters", "net_d_init_iters")
    train.refuse(gan_keys, f"a GAN training option is not used by SRModel{GAN_HINT}")
    out = train_head(train)
    schedule(train, out)
    if train.get("perceptual_opt") is not None:
        train.fail("perceptual_opt", "a perceptual loss in SRModel cannot be converted yet")
    out["losses"] = {
        "pixel": pixel_loss(train.sub("pixel_opt", "SRModel needs a pixel loss to be converted"))
    }
    out["ema_decay"] = ema_decay(train)
    train.done(GAN_HINT)
    return out
