"""Config loading: YAML → overrides → ``${...}`` references → strict typed ``Config``.

Errors name the file, the key path and what was expected, in one line, e.g.
``configs/x.yml: train.optim_g: required key is missing`` or
``configs/x.yml: data.train.batch_sise: unknown key (did you mean 'batch_size'?)``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from restorekit.config import face, generation, sections  # noqa: F401  (register the built-in task sections)
from restorekit.config.loader import apply_overrides, read_yaml, resolve_references
from restorekit.config.schema import DEFAULT_TASK, TASK_CONFIGS, Config, RunConfig, register_task_config
from restorekit.errors import ConfigError, did_you_mean

__all__ = [
    "Config",
    "ConfigError",
    "RunConfig",
    "check_unknown_keys",
    "config_model",
    "config_schema",
    "dump_config",
    "load_config",
    "register_task_config",
    "validate_config",
]


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Read, override, resolve and validate a config file."""
    raw = read_yaml(path)
    raw = apply_overrides(raw, overrides)
    check_unknown_keys(raw, source=str(path))  # before references: a typo must not read as one
    raw = resolve_references(raw, source=str(path))
    return validate_config(raw, source=str(path))


def check_unknown_keys(raw: dict[str, Any], source: str = "config") -> None:
    """Report the first unknown key of ``raw`` with its references still unexpanded.

    A misspelled key is often why a ``${...}`` reference misses (``${trian.total_iter}``), so
    the unknown key is the error worth reading. Other problems wait for ``validate_config``.
    """
    task = raw.get("task", DEFAULT_TASK)
    if not isinstance(task, str) or task not in TASK_CONFIGS:
        return  # validate_config names the task
    model = TASK_CONFIGS[task]
    try:
        model.model_validate({**raw, "task": task})
    except ValidationError as exc:
        if any(e["type"] == "extra_forbidden" for e in exc.errors()):
            raise ConfigError(f"{source}: {format_validation_error(exc, model, 'extra_forbidden')}") from None


def config_model(task: object, source: str = "config") -> type[RunConfig]:
    """The config model of ``task`` (the value of the ``task:`` key); unknown names list the known."""
    if not isinstance(task, str) or task not in TASK_CONFIGS:
        known = ", ".join(sorted(TASK_CONFIGS))
        hint = did_you_mean(str(task), TASK_CONFIGS) if isinstance(task, str) else ""
        raise ConfigError(f"{source}: task: unknown task {task!r}{hint}; known: {known}")
    return TASK_CONFIGS[task]


def validate_config(raw: dict[str, Any], source: str = "config") -> RunConfig:
    """Validate against the schema of the task ``raw`` names (``restoration`` when it names none)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of config keys, got {type(raw).__name__}")
    task = raw.get("task", DEFAULT_TASK)
    model = config_model(task, source)
    try:
        return model.model_validate({**raw, "task": task})
    except ValidationError as exc:
        raise ConfigError(f"{source}: {format_validation_error(exc, model)}") from None


def format_validation_error(exc: ValidationError, model: type[BaseModel], prefer: str = "") -> str:
    """The first pydantic error (of type ``prefer`` if any) as ``key.path: what was expected (got value)``.

    An unknown key that another task's schema has is reported as belonging to that task, so
    ``network_d`` under ``task: restoration`` says which task reads it.
    """
    errors = exc.errors()
    err = next((e for e in errors if e["type"] == prefer), errors[0])
    loc = [str(p) for p in err["loc"]]
    path = ".".join(loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        owners = [
            name
            for name, other in sorted(TASK_CONFIGS.items())
            if other is not model and loc[-1] in _fields_at(other, loc[:-1])
        ]
        this = model.model_fields["task"].default
        if owners:
            used_by = " or ".join(repr(o) for o in owners)
            return f"{path}: only used by task {used_by} (this config's task is {this!r})"
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


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as YAML (saved beside every run, printed by ``--dry-run``)."""
    data = json.loads(cfg.model_dump_json())
    return yaml.safe_dump(data, sort_keys=False)


def config_schema() -> dict[str, Any]:
    """JSON schema of the config, for editors (``restorekit config schema``): a union tagged by ``task``."""
    models = tuple(TASK_CONFIGS[name] for name in sorted(TASK_CONFIGS))
    union = Annotated[Union[models], Field(discriminator="task")]  # noqa: UP007  (built at run time)
    schema = TypeAdapter(union).json_schema()
    schema["title"] = "restorekit config"
    schema["description"] = "A run: the common core plus the section of the task named by `task`."
    return schema
