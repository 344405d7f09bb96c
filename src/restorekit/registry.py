"""Named registries of buildable parts: architectures, losses, datasets, metrics, tasks.

Registration is explicit (each package ``__init__`` imports its modules), so a part is found
no matter how its file is named — BasicSR's ``*_arch.py`` suffix rule is a known trap.
``build`` checks keyword arguments against the constructor's signature and type hints *before*
calling it, so a typo in a config is reported by name instead of failing deep inside a
constructor. The built object remembers how it was built (``spec_of``), which is what lets a
trained network export itself with its architecture name and arguments.

Each registry knows the package that fills it (``ARCHS`` → ``restorekit.archs``) and imports it
on the first lookup, so ``from restorekit.registry import ARCHS; ARCHS.build(...)`` works in a
fresh interpreter instead of reporting an unknown name with an empty list of known ones. The
import is by name (``importlib``) on purpose: this module sits at the bottom of the import flow
and must not import those packages statically; a lookup is the moment they are needed anyway.

``register(name, **meta)`` also stores free-form metadata per name (e.g. an architecture's
``info=`` declaration, see ``restorekit.archs.info``), read back with ``meta(name)``.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from restorekit.errors import ConfigError, did_you_mean

T = TypeVar("T")

_SPEC_ATTR = "_restorekit_spec"


class Registry(Generic[T]):
    """A mapping from names to constructors (classes or factories) of one kind of part."""

    def __init__(self, kind: str, package: str | None = None) -> None:
        self.kind = kind
        self.package = package
        self._items: dict[str, Callable[..., T]] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._filled = package is None

    def _fill(self) -> None:
        """Import the package that registers this kind of part, once (see the module docstring)."""
        if self._filled or self.package is None:
            return
        self._filled = True  # set first: the package's own lookups while importing must not recurse
        try:
            importlib.import_module(self.package)
        except BaseException:
            self._filled = False
            raise

    def register(
        self, name: str | None = None, **meta: Any
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: ``@ARCHS.register("EDSR", info=...)``; the default name is ``__name__``.

        ``meta`` is stored as given and returned by ``meta(name)``.
        """

        def decorator(obj: Callable[..., T]) -> Callable[..., T]:
            key = name or obj.__name__
            if key in self._items and self._items[key] is not obj:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = obj
            self._meta[key] = dict(meta)
            return obj

        return decorator

    def meta(self, name: str) -> dict[str, Any]:
        """The metadata registered with ``name`` (a copy); ``{}`` when there is none."""
        self._fill()
        return dict(self._meta.get(name, {}))

    def names(self) -> list[str]:
        self._fill()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._fill()
        return name in self._items

    def get(self, name: str, where: str = "type") -> Callable[..., T]:
        """The constructor registered as ``name``; an unknown name lists the known ones."""
        self._fill()
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"{where}: unknown {self.kind} {name!r}{did_you_mean(str(name), self._items)}; "
                f"known: {', '.join(self.names())}"
            ) from None

    def check(self, cfg: Mapping[str, Any], where: str = "", **extra: Any) -> tuple[str, dict[str, Any]]:
        """Validate ``{"type": NAME, **kwargs}`` without building: (name, checked kwargs).

        ``extra`` are keyword arguments supplied by the caller (e.g. ``scale`` from the top of the
        config); they only fill parameters the constructor has and the config did not set.
        ``where`` is the config key path used in error messages.
        """
        prefix = f"{where}." if where else ""
        if not isinstance(cfg, Mapping) or "type" not in cfg:
            raise ConfigError(f"{where or self.kind}: expected a mapping with a 'type' key, got {cfg!r}")
        name = cfg["type"]
        ctor = self.get(name, where=f"{prefix}type")
        kwargs = {k: v for k, v in cfg.items() if k != "type"}
        params = signature_params(ctor)
        for key, value in extra.items():
            if key in params and key not in kwargs:
                kwargs[key] = value
        return name, check_kwargs(ctor, params, kwargs, prefix, f"{self.kind} {name!r}")

    def build(self, cfg: Mapping[str, Any], where: str = "", **extra: Any) -> T:
        """Build from ``{"type": NAME, **kwargs}``, checking the kwargs first (see ``check``)."""
        name, kwargs = self.check(cfg, where, **extra)
        obj = self._items[name](**kwargs)
        # objects with __slots__ etc. simply do not record their spec
        with contextlib.suppress(AttributeError):
            setattr(obj, _SPEC_ATTR, {"type": name, **kwargs})
        return obj


def signature_params(ctor: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """Keyword-capable parameters of a class constructor or a factory (``self`` dropped)."""
    target = ctor.__init__ if inspect.isclass(ctor) else ctor
    sig = inspect.signature(target)
    return {
        n: p
        for n, p in sig.parameters.items()
        if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }


def check_kwargs(
    ctor: Callable[..., Any],
    params: Mapping[str, inspect.Parameter],
    kwargs: dict[str, Any],
    prefix: str,
    what: str,
) -> dict[str, Any]:
    """Reject unknown or missing arguments and coerce values to the annotated types.

    Values are validated with pydantic in its lax mode, so ``"2"`` becomes ``2`` for an ``int``
    and a YAML list becomes a tuple, but ``"abc"`` for an ``int`` is an error naming the key.
    """
    from pydantic import TypeAdapter, ValidationError

    for key in kwargs:
        if key not in params:
            raise ConfigError(
                f"{prefix}{key}: unknown argument for {what}{did_you_mean(key, params)}; "
                f"accepted: {', '.join(params)}"
            )
    missing = [n for n, p in params.items() if p.default is p.empty and n not in kwargs]
    if missing:
        raise ConfigError(f"{prefix}{missing[0]}: required argument of {what} is missing")
    try:
        hints = typing.get_type_hints(ctor.__init__ if inspect.isclass(ctor) else ctor)
    except Exception:  # unresolvable annotations: skip type checks rather than fail a build
        hints = {}
    out: dict[str, Any] = {}
    for key, value in kwargs.items():
        hint = hints.get(key)
        if hint is None or hint is Any:
            out[key] = value
            continue
        try:
            out[key] = TypeAdapter(hint).validate_python(value)
        except ValidationError as exc:
            expected = _describe(hint)
            raise ConfigError(
                f"{prefix}{key}: expected {expected} for {what}, got {value!r} ({exc.errors()[0]['msg']})"
            ) from None
    return out


def _describe(hint: Any) -> str:
    """A readable name for a type hint: ``int``, ``one of 'a', 'b'``, ``tuple[float, ...]``."""
    if typing.get_origin(hint) is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is None and isinstance(hint, type):
        return hint.__name__
    return str(hint).replace("typing.", "")


def spec_of(obj: Any) -> dict[str, Any] | None:
    """The ``{"type": ..., **kwargs}`` an object was built from, if it came from a registry."""
    spec = getattr(obj, _SPEC_ATTR, None)
    return dict(spec) if spec is not None else None


def record_spec(obj: Any, spec: Mapping[str, Any]) -> None:
    """Attach a build spec to an object made without ``Registry.build`` (e.g. by detection)."""
    setattr(obj, _SPEC_ATTR, dict(spec))


ARCHS: Registry[Any] = Registry("architecture", "restorekit.archs")
LOSSES: Registry[Any] = Registry("loss", "restorekit.losses")
DATASETS: Registry[Any] = Registry("dataset", "restorekit.data")
METRICS: Registry[Any] = Registry("metric", "restorekit.metrics")
TASKS: Registry[Any] = Registry("task", "restorekit.tasks")
