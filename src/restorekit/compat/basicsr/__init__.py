"""Convert a BasicSR training option file into a restorekit config
(``restorekit config import-basicsr OPTION.yml -o OUT.yml``).

People arrive with years of BasicSR YAML, and converting it by hand is where settings get lost.
So every key of the BasicSR file ends up in exactly one of three places:

* **mapped** into the new config, with the same meaning (``manual_seed`` → ``seed``,
  ``batch_size_per_gpu`` → ``batch_size``, ``MultiStepLR`` → ``MultiStepRestartLR``, which is
  the class BasicSR builds for both names, ``warmup_iter: -1`` → ``0``, ``!!float 5e3`` → 5000,
  ``param_key_g`` → ``pretrained_param_key``);
* **dropped with a note** when BasicSR needs it but restorekit has no equivalent on purpose
  (``num_gpu``, ``dist_params``, ``dataset_enlarge_ratio``, ``resume_state``...). The notes are
  returned, printed by the CLI and written into the header of the converted file;
* **refused** with a one-line ``ConfigError`` naming the BasicSR file and the full dotted key
  whenever the value would mean something else here (``mean``/``std`` normalisation,
  ``use_shuffle: false``...), the key is unknown, or the architecture is not registered.

``model_type`` picks the converter from ``MODEL_TYPES``: one module per family (``sr``, ``gan``,
``realesrgan``, ``swinir``, ``gfpgan``) on the shared ``common`` parts, and ``pending`` for types
with a known gap.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

from restorekit.compat.basicsr import gan, gfpgan, pending, realesrgan, sr, swinir
from restorekit.compat.basicsr.output import check_output, write_config
from restorekit.compat.basicsr.section import Section
from restorekit.config import validate_config
from restorekit.config.loader import read_yaml

__all__ = ["CONVERTERS", "MODEL_TYPES", "convert_basicsr", "import_basicsr", "import_basicsr_file"]

Converter = Callable[[Section], dict[str, Any]]
# model_type → converter, for the types that convert (listed in this order in errors)
CONVERTERS: dict[str, Converter] = {
    "SRModel": sr.convert,
    "SRGANModel": gan.convert,
    "ESRGANModel": gan.convert,
    "RealESRNetModel": realesrgan.convert,
    "RealESRGANModel": realesrgan.convert,
    "SwinIRModel": swinir.convert,
    "GFPGANModel": gfpgan.convert,
}
# the dispatch table: every model type with a slot, convertible or not yet
MODEL_TYPES: dict[str, Converter] = {**CONVERTERS, **dict.fromkeys(pending.NOT_YET, pending.not_yet)}


def convert_basicsr(option: dict[str, Any], source: str) -> tuple[dict[str, Any], list[str]]:
    """Convert a parsed BasicSR option dict: (our config as a plain dict, notes on dropped keys).

    ``source`` names the BasicSR file in error messages; ``option`` is not modified.
    """
    notes: list[str] = []
    top = Section(notes, source, copy.deepcopy(option), "")
    supported = f"supported model types: {', '.join(CONVERTERS)}"
    top.need("model_type", supported)
    kind = top.get("model_type")
    if not isinstance(kind, str) or kind not in MODEL_TYPES:
        top.fail("model_type", f"{kind!r} cannot be converted; {supported}")
    return MODEL_TYPES[kind](top), notes


def import_basicsr(option: dict[str, Any], source: str) -> dict[str, Any]:
    """Convert a parsed BasicSR option dict into our config (a plain dict); see ``convert_basicsr``."""
    return convert_basicsr(option, source)[0]


def import_basicsr_file(option: str | Path, output: str | Path, overwrite: bool = False) -> list[str]:
    """Convert the BasicSR option file ``option`` into ``output``; return the notes.

    The output path is checked first and the result validated before anything is written, and
    an existing ``output`` is only replaced with ``overwrite=True``.
    """
    src, dst = Path(option), Path(output)
    check_output(src, dst, overwrite)
    cfg, notes = convert_basicsr(read_yaml(src), str(src))
    validate_config(cfg, source=f"{src} (converted)")
    write_config(cfg, notes, src, dst)
    return notes
