"""What an architecture is and what it accepts, declared once where it is registered.

Code that runs a network (inference, export, tasks) needs to know things the weights do not
say: is it a restoration network, a face restorer, a generator or a discriminator; how many
channels go in and out; the upscaling factor; which input sides work; the pixel range; whether
fp16, channels_last and tiling are safe. Reading those as scattered ``getattr(net, ...,
default)`` calls let every caller pick its own default (channels_last was True in training and
False in inference). Here they are one frozen ``ArchInfo``, declared with the registration::

    @ARCHS.register("EDSR", info=lambda kw: ArchInfo("restoration", kw["num_in_ch"], ...))

``info`` is either a fixed ``ArchInfo`` or a function of the complete constructor kwargs (the
given ones plus the signature's defaults), because most fields depend on them. ``arch_info``
answers for a built module (through ``registry.spec_of``) or for a spec ``{"type": ...}``.
Exports store ``ArchInfo.to_json()`` so a reader need not even know the architecture.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

from restorekit.errors import ConfigError, WeightsError
from restorekit.registry import ARCHS, signature_params, spec_of

Purpose = Literal["restoration", "face", "generator", "discriminator", "feature"]
PURPOSES: tuple[str, ...] = get_args(Purpose)
ValueRange = tuple[float, float]
VALUE_RANGES: tuple[ValueRange, ...] = ((0.0, 1.0), (-1.0, 1.0))


@dataclass(frozen=True)
class ArchInfo:
    """Facts about one built architecture.

    Attributes:
        purpose: what the network maps: a degraded image to a restored one (``restoration``),
            an aligned face crop to a restored crop (``face``), a latent to an image
            (``generator``), an image to realness logits (``discriminator``) or to features.
        in_channels / out_channels: image (or logit/feature) channels in and out.
        scale: output side / input side (1 for same-size networks and discriminators).
        size_multiple: input sides must be multiples of this (pixel-unshuffle, U-Net stages).
        input_size: the only accepted square input side, or ``None`` for any size.
        value_range: pixel range of inputs and outputs, ``(0, 1)`` or ``(-1, 1)``.
        latent_dim: length of a generator's input vector, else ``None``.
        supports_fp16 / supports_channels_last: safe speed options for this network.
        tileable: whether cutting the input into tiles gives (nearly) the whole-image result;
            False for networks that need the whole input (face restorers, fixed-size nets).
    """

    purpose: Purpose
    in_channels: int
    out_channels: int
    scale: int = 1
    size_multiple: int = 1
    input_size: int | None = None
    value_range: ValueRange = (0.0, 1.0)
    latent_dim: int | None = None
    supports_fp16: bool = True
    supports_channels_last: bool = True
    tileable: bool = True

    def __post_init__(self) -> None:
        # declarations are code, so a wrong one is a bug in restorekit, not a user error
        if self.purpose not in PURPOSES:
            raise ValueError(f"ArchInfo.purpose: expected one of {PURPOSES}, got {self.purpose!r}")
        if tuple(self.value_range) not in VALUE_RANGES:
            raise ValueError(f"ArchInfo.value_range: expected (0, 1) or (-1, 1), got {self.value_range!r}")
        object.__setattr__(self, "value_range", tuple(float(v) for v in self.value_range))
        for name in ("in_channels", "out_channels", "scale", "size_multiple"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"ArchInfo.{name}: expected a positive integer, got {getattr(self, name)}")

    def to_json(self) -> str:
        """A compact JSON object of every field (what exports store in their metadata)."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, where: str = "metadata") -> ArchInfo:
        """Read ``to_json``'s output back; unknown keys (from newer versions) are ignored."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            known = {k: v for k, v in data.items() if k in inspect.signature(cls).parameters}
            if "value_range" in known:
                known["value_range"] = tuple(known["value_range"])
            return cls(**known)
        except (ValueError, TypeError) as exc:
            raise WeightsError(f"{where}: the 'info' entry is not a valid ArchInfo ({exc})") from None


InfoSpec = ArchInfo | Callable[[dict[str, Any]], ArchInfo]
_INFO_ATTR = "_restorekit_info"


def record_info(module: Any, info: ArchInfo) -> None:
    """Attach the ``ArchInfo`` read from a file, so ``arch_info`` answers what the file declared."""
    setattr(module, _INFO_ATTR, info)


def full_kwargs(name: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``kwargs`` completed with the constructor's defaults: what an ``info`` function receives."""
    params = signature_params(ARCHS.get(name))
    out = {n: p.default for n, p in params.items() if p.default is not p.empty}
    out.update(kwargs)
    return out


def info_for(name: str, kwargs: Mapping[str, Any]) -> ArchInfo:
    """The ``ArchInfo`` of architecture ``name`` built with ``kwargs``."""
    declared = ARCHS.meta(name).get("info")
    if declared is None:
        ARCHS.get(name)  # an unknown name: the registry's error lists the known ones
        raise ConfigError(f"architecture {name!r} declares no ArchInfo (register it with info=...)")
    if isinstance(declared, ArchInfo):
        return declared
    return declared(full_kwargs(name, kwargs))


def arch_info(module_or_spec: Any) -> ArchInfo:
    """The ``ArchInfo`` of a module built by the registry, or of a spec ``{"type": NAME, **kwargs}``.

    A module loaded from an export answers with the ``ArchInfo`` stored in the file
    (``record_info``). A module built without the registry has no spec; see ``find_arch_info``
    for code that must also accept such modules.
    """
    if isinstance(module_or_spec, Mapping):
        # a hand-written spec (a config entry) is checked and coerced as a build would be
        name, kwargs = ARCHS.check(module_or_spec)
        return info_for(name, kwargs)
    recorded = getattr(module_or_spec, _INFO_ATTR, None)
    if isinstance(recorded, ArchInfo):
        return recorded
    found = spec_of(module_or_spec)
    if found is None:
        raise ConfigError(
            f"{type(module_or_spec).__name__} was not built from the registry, so its ArchInfo "
            "is unknown; build it with ARCHS.build({'type': ...})"
        )
    name = found.pop("type")
    return info_for(name, found)


def find_arch_info(module: Any) -> ArchInfo | None:
    """``arch_info(module)``, or ``None`` for a module with no registry spec nor recorded info."""
    if spec_of(module) is None and not isinstance(getattr(module, _INFO_ATTR, None), ArchInfo):
        return None
    return arch_info(module)
