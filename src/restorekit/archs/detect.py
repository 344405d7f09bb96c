"""Recognise an architecture from a bare state dict, so official ``.pth`` files need no config.

Each family module infers its constructor arguments from key names and tensor shapes
(``recognize``). ``detect_arch`` asks them in order and then *verifies* the answer: it builds the
proposed model on the ``meta`` device (no memory, no compute) and requires exactly the same keys
and shapes, so a returned ``(name, kwargs)`` is guaranteed to load with ``strict=True``.

Reading files and undoing wrappers/prefixes is ``restorekit.weights.read_state_dict`` (the one
reader); ``canonicalize`` and ``load_weights_file`` here are its state-dict-only forms.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from restorekit.archs import (
    arcface,
    ecbsr,
    edsr,
    gfpgan_clean,
    gfpgan_v1,
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
from restorekit.errors import RestorekitError, WeightsError
from restorekit.registry import ARCHS, record_spec
from restorekit.weights import (
    STRIP_PREFIXES,
    WEIGHT_SUFFIXES,
    WRAPPER_KEYS,
    load_into,
    read_state_dict,
    unwrap_state_dict,
)

__all__ = [
    "RECOGNIZERS",
    "STRIP_PREFIXES",
    "WEIGHT_SUFFIXES",
    "WRAPPER_KEYS",
    "build_from_state_dict",
    "canonicalize",
    "detect_arch",
    "load_weights_file",
]

Recognizer = Callable[[Mapping[str, Tensor]], dict[str, Any] | None]

# Tried in this order; the first whose arguments rebuild the exact key/shape set wins. The
# layouts are disjoint, so the order only decides which near miss is reported first.
RECOGNIZERS: list[tuple[str, Recognizer]] = [
    ("RRDBNet", rrdbnet.recognize),
    ("MSRResNet", srresnet.recognize),
    ("EDSR", edsr.recognize),
    ("WDSR_A", wdsr.recognize_a),
    ("WDSR_B", wdsr.recognize_b),
    ("SRVGGNetCompact", srvgg.recognize),
    ("RCAN", rcan.recognize),
    ("RIDNet", ridnet.recognize),
    ("SwinIR", swinir.recognize),
    ("ECBSR", ecbsr.recognize),
    ("GFPGANv1Clean", gfpgan_clean.recognize),
    ("StyleGAN2GeneratorClean", stylegan2_clean.recognize),
    ("GFPGANv1", gfpgan_v1.recognize),
    ("StyleGAN2Generator", stylegan2.recognize),
    ("StyleGAN2Discriminator", stylegan2.recognize_discriminator),
    ("FacialComponentDiscriminator", gfpgan_v1.recognize_component_discriminator),
    ("ResNetArcFace", arcface.recognize),
    ("RestoreFormer", restoreformer.recognize),
]


def canonicalize(obj: Any, where: str = "checkpoint") -> dict[str, Tensor]:
    """A plain ``{key: tensor}`` state dict from a loaded checkpoint object.

    ``weights.unwrap_state_dict`` without its note: ``params_ema`` > ``params`` > ``state_dict``
    > ``model``, ``module.``/``_orig_mod.`` prefixes stripped; ``where`` names the source.
    """
    return unwrap_state_dict(obj, where)[0]


def _verify(name: str, kwargs: dict[str, Any], sd: Mapping[str, Tensor]) -> str | None:
    """``None`` when ``name(**kwargs)`` has exactly ``sd``'s keys and shapes, else why not."""
    try:
        with torch.device("meta"):
            model = ARCHS.build({"type": name, **kwargs})
    except (RestorekitError, ValueError, TypeError, RuntimeError) as exc:
        return f"{name}: inferred arguments do not build ({exc})"
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    # BatchNorm's counters are absent from files saved before torch 0.4.1 (and load_into fills them)
    missing = [k for k in expected if k not in sd and not k.endswith("num_batches_tracked")]
    extra = [k for k in sd if k not in expected]
    if missing or extra:
        return f"{name}: missing {missing[:3]}, unexpected {extra[:3]}"
    for key, shape in expected.items():
        if tuple(sd[key].shape) != shape:
            return f"{name}: {key} has shape {list(sd[key].shape)}, expected {list(shape)}"
    return None


def detect_arch(state_dict: Mapping[str, Tensor], where: str = "state dict") -> tuple[str, dict[str, Any]]:
    """``(registered arch name, constructor kwargs)`` for a state dict (wrappers are unwrapped).

    Raises ``WeightsError`` naming every family tried (and any near miss) when none fits.
    """
    sd = canonicalize(state_dict, where)
    near_misses: list[str] = []
    for name, recognize in RECOGNIZERS:
        kwargs = recognize(sd)
        if kwargs is None:
            continue
        problem = _verify(name, kwargs, sd)
        if problem is None:
            return name, kwargs
        near_misses.append(problem)
    sample = ", ".join(repr(k) for k in list(sd)[:3])
    detail = f"; near misses: {'; '.join(near_misses)}" if near_misses else ""
    raise WeightsError(
        f"{where}: architecture not recognised from its {len(sd)} keys ({sample}, ...); "
        f"tried {', '.join(n for n, _ in RECOGNIZERS)}{detail}"
    )


def load_weights_file(path: str | Path) -> dict[str, Tensor]:
    """``weights.read_state_dict(path)[0]``: a canonical CPU state dict, never running pickled code."""
    return read_state_dict(path)[0]


#: Constructor arguments that change the output but are not stored in the weights: recognition
#: assumes the official value, which is silently wrong for a model trained otherwise (a BasicSR
#: EDSR at a custom size with res_scale 0.1 is 31/255 off) — so each use is reported. A function
#: of the recognised kwargs answers for families where it depends on them (ECBSR's act_type is
#: stored when it is PReLU).
UNSTORED: dict[str, tuple[str, ...] | Callable[[dict[str, Any]], tuple[str, ...]]] = {
    "EDSR": ("res_scale", "img_range", "rgb_mean"),
    "RCAN": ("res_scale", "img_range", "rgb_mean"),
    "ECBSR": ecbsr.unstored,
    "GFPGANv1": gfpgan_v1.UNSTORED,
    "GFPGANv1Clean": gfpgan_clean.UNSTORED,
    "RestoreFormer": restoreformer.UNSTORED,
    "StyleGAN2Generator": stylegan2.UNSTORED_GENERATOR,
    "StyleGAN2Discriminator": stylegan2.UNSTORED_DISCRIMINATOR,
}


def build_from_state_dict(state_dict: Mapping[str, Any], where: str = "state dict") -> nn.Module:
    """Recognise, build and strictly load a model from a state dict; returned in eval mode.

    The model records its spec (``registry.spec_of``), so it can be exported with its
    architecture name and arguments.
    """
    return build_recognised(state_dict, where)[0]


def build_recognised(
    state_dict: Mapping[str, Any], where: str = "state dict", overrides: Mapping[str, Any] | None = None
) -> tuple[nn.Module, list[str]]:
    """``build_from_state_dict`` with ``overrides`` of the recognised arguments (``--arch-opt``),
    and one note naming every argument that was assumed rather than read from the weights."""
    sd = canonicalize(state_dict, where)
    name, kwargs = detect_arch(sd, where)
    given = dict(overrides or {})
    _, checked = ARCHS.check({"type": name, **kwargs, **given}, "--arch-opt")
    unstored = UNSTORED.get(name, ())
    assumed = [k for k in (unstored(kwargs) if callable(unstored) else unstored) if k not in given]
    model = ARCHS.build({"type": name, **checked})
    load_into(model, sd, "strict", where)
    record_spec(model, {"type": name, **checked})
    notes = []
    if assumed:
        values = ", ".join(f"{k}={checked[k]!r}" for k in assumed)
        notes.append(
            f"{where}: {name} {values} assumed (not stored in the weights); if it was trained "
            f"otherwise, pass --arch-opt {assumed[0]}=VALUE"
        )
    return model.eval(), notes
