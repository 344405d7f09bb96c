"""Model types that have a slot in the dispatch table but cannot be converted yet.

Each says in one line what restorekit is missing, so someone with such a file learns whether
to wait for a task, an architecture or nothing at all — instead of the generic "unsupported
model type" that an unknown name gets. When the missing piece lands, the entry moves to a
converter module of its own.
"""

from __future__ import annotations

from typing import NoReturn

from restorekit.compat.basicsr.section import Section
from restorekit.errors import ConfigError

NOT_YET = {
    "StyleGAN2Model": "unconditional generation (task 'generation') cannot be imported yet",
}


def not_yet(top: Section) -> NoReturn:
    """The converter of every ``NOT_YET`` model type: one line naming what is missing."""
    kind = top.data["model_type"]
    raise ConfigError(f"{top.source}: model_type {kind!r}: {NOT_YET[kind]}")
