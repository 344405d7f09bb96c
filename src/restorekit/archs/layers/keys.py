"""Small helpers for reading a state dict's layout, used by the families' ``recognize``.

Recognisers infer constructor arguments from key names and tensor shapes; these helpers keep
that code declarative (``shape_of(sd, "conv_first.weight")``) and make every lookup tolerant:
a missing key or an unexpected rank gives ``None`` so the recogniser can say "not mine".
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from torch import Tensor

StateDict = Mapping[str, Tensor]


def shape_of(sd: StateDict, key: str, ndim: int | None = None) -> tuple[int, ...] | None:
    """The shape of ``sd[key]`` (optionally required to have ``ndim`` dims), else ``None``."""
    t = sd.get(key)
    if t is None or not hasattr(t, "shape"):
        return None
    shape = tuple(int(d) for d in t.shape)
    if ndim is not None and len(shape) != ndim:
        return None
    return shape


def child_indices(sd: StateDict, prefix: str) -> list[int]:
    """Sorted integer indices ``i`` of keys ``<prefix>.<i>.…`` (e.g. the blocks of ``body``)."""
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.")
    found = {int(m.group(1)) for key in sd if (m := pattern.match(key))}
    return sorted(found)


def only_prefixes(sd: StateDict, prefixes: Iterable[str]) -> bool:
    """True when every key starts with one of ``prefixes`` (each followed by a dot)."""
    heads = tuple(f"{p}." for p in prefixes)
    return len(sd) > 0 and all(key.startswith(heads) for key in sd)


def is_consecutive(indices: list[int], start: int = 0, step: int = 1) -> bool:
    """``indices`` is exactly ``start, start+step, …`` (no gaps, not empty)."""
    return bool(indices) and indices == list(range(start, start + step * len(indices), step))


def split_pixel_shuffle(out_channels: int, in_channels: int) -> tuple[int, int] | None:
    """Split a sub-pixel conv's ``out_channels = num_out_ch * upscale**2`` into its factors.

    The product alone is ambiguous (48 = 3·4² = 12·2²), so the official convention decides: the
    output has as many channels as the input when that gives a whole upscale; otherwise the
    first of the common scales 4, 2, 3, 8, 1 that divides evenly.
    """
    if in_channels > 0 and out_channels % in_channels == 0:
        up = math.isqrt(out_channels // in_channels)
        if up >= 1 and up * up * in_channels == out_channels:
            return in_channels, up
    for up in (4, 2, 3, 8, 1):
        if out_channels % (up * up) == 0:
            return out_channels // (up * up), up
    return None  # unreachable for positive counts (1 divides), kept for the type checker
