"""Config loading: YAML → overrides → ``${...}`` references → strict typed ``Config``.

Errors name the file, the key path and what was expected, in one line, e.g.
``configs/x.yml: train.optim_g: required key is missing`` or
``configs/x.yml: data.train.batch_sise: unknown key (did you mean 'batch_size'?)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from restorekit.config.loader import apply_overrides, read_yaml, resolve_references
from restorekit.config.schema import Config
from restorekit.errors import ConfigError, did_you_mean

__all__ = ["Config", "ConfigError", "config_schema", "dump_config", "load_config", "validate_config"]


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read, override, resolve and validate a config file."""
    raw = read_yaml(path)
    raw = apply_overrides(raw, overrides)
    raw = resolve_references(raw, source=str(path))
    return validate_config(raw, source=str(path))


def validate_config(raw: dict[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc, Config)}") from None


def format_validation_error(exc: ValidationError, model: type[BaseModel]) -> str:
    """The first pydantic error as ``key.path: what was expected (got value)``."""
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    path = ".".join(loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        return f"{path}: unknown key{did_you_mean(loc[-1], _fields_at(model, loc[:-1]))}"
    if kind == "missing":
        return f"{path}: required key is missing"
    msg = err["msg"]
    if "ctx" in err and "expected" in err["ctx"]:
        msg = f"expected {err['ctx']['expected']}"
    return f"{path}: {msg[0].lower()}{msg[1:]} (got {err.get('input')!r})"


def _fields_at(model: type[BaseModel], loc: list[str]) -> list[str]:
    """Field names of the sub-model reached by following ``loc`` (for did-you-mean)."""
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if fields is None:
            return []
        if part in fields:
            current = _model_in(fields[part].annotation)
        else:  # a dict key such as a validation-set name: look at the value type
            current = current
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _model_in(annotation: Any) -> Any:
    """The BaseModel class inside ``X | None`` or ``dict[str, X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def dump_config(cfg: Config) -> str:
    """The resolved config as YAML (saved beside every run, printed by ``--dry-run``)."""
    data = json.loads(cfg.model_dump_json())
    return yaml.safe_dump(data, sort_keys=False)


def config_schema() -> dict[str, Any]:
    """JSON schema of the config, for editors (``restorekit config schema``)."""
    return Config.model_json_schema()
