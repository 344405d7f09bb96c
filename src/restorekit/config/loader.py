"""Read a YAML config, apply ``key.path=value`` overrides and resolve ``${...}`` references.

Overrides are parsed as YAML scalars (``train.total_iter=500``, ``name=run2``,
``train.optim_g.betas=[0.9,0.99]``), never evaluated as code (BasicSR's ``--force_yml`` used
``exec``). ``${a.b}`` refers to another key of the same file; ``${env:NAME}`` to an environment
variable. A reference that is the whole value keeps the referenced value's type (``scale:
${scale}`` stays an int); inside a longer string it is formatted in.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from restorekit.errors import ConfigError, did_you_mean

_REF = re.compile(r"\$\{([^}]+)\}")
#: Nodes that aliases may add to a document once expanded. A config has hundreds of nodes; an
#: alias of a dataset block repeated a few times adds tens each.
MAX_ALIAS_NODES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Load a YAML mapping, with errors that name the file (and line, for syntax errors)."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{p}: config file does not exist")
    if not p.is_file():
        raise ConfigError(f"{p}: is not a file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: is not a text (UTF-8) YAML file") from None
    try:
        data = yaml.load(text, Loader=_Loader)
    except _BoundError as exc:
        raise ConfigError(f"{p}: line {exc.line}: {exc.message}") from None
    except RecursionError:
        raise ConfigError(f"{p}: not valid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{p}:{where}: not valid YAML: {problem}") from None
    if data is None:
        raise ConfigError(f"{p}: is empty; expected a YAML mapping of config keys")
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a YAML mapping of config keys, got a {type(data).__name__}")
    return data


class _BoundError(Exception):
    """A document the loader refuses (duplicate key, alias bomb); ``read_yaml`` adds the file."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}")
        self.line, self.message = line, message


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-4`` as a float (PyYAML needs ``1.0e-4``; BasicSR's
    configs work around it with ``!!float``), so scientific notation just works.

    It also refuses duplicate keys and bounds alias expansion, both while composing: before
    construction, so a merge key (``<<: *base``) flattening a mapping cannot look like a
    duplicate, and before an alias bomb has cost anything.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._open_anchors: set[str] = set()  # anchors of the nodes being composed (ancestors)
        self._sizes: dict[int, int] = {}  # id(node) -> nodes in its expansion (complete nodes)
        self._alias_nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                raise _BoundError(line, f"alias *{event.anchor} refers to a node that contains it")
            node = super().compose_node(parent, index)
            self._alias_nodes += self._expanded_size(node)
            if self._alias_nodes > MAX_ALIAS_NODES:
                raise _BoundError(
                    line, f"aliases expand to more than {MAX_ALIAS_NODES} values; refusing the file"
                )
            return node
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._open_anchors.discard(anchor)  # type: ignore[arg-type]

    def compose_mapping_node(self, anchor: Any) -> Any:
        node = super().compose_mapping_node(anchor)
        first: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue  # merged keys may be overridden; collection keys fail construction anyway
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            try:
                seen = first.get(key)
            except TypeError:  # unhashable: construction reports it
                continue
            if seen is not None:
                raise _BoundError(line, f"duplicate key {key!r} (first at line {seen})")
            first[key] = line
        return node

    def _expanded_size(self, node: Any) -> int:
        """Nodes in ``node`` with every alias inside expanded (memoised: shared nodes count once
        per use, as resolving references will copy them)."""
        known = self._sizes.get(id(node))
        if known is not None:
            return known
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._expanded_size(child) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._expanded_size(k) + self._expanded_size(v) for k, v in node.value)
        self._sizes[id(node)] = size
        return size


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.optim_g.lr=1e-3"`` → (["train", "optim_g", "lr"], 0.001)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key.path=value")
    key, _, raw = text.partition("=")
    parts = key.strip().split(".")
    if not all(parts):
        raise ConfigError(f"override {text!r}: expected key.path=value with a non-empty key path")
    try:
        value = yaml.load(raw, Loader=_Loader) if raw.strip() else ""
    except (_BoundError, RecursionError) as exc:
        why = exc.message if isinstance(exc, _BoundError) else "nested too deeply"
        raise ConfigError(f"override {text!r}: {why}") from None
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key.path=value`` set (creating mappings as needed)."""
    out = copy.deepcopy(data)
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if child is None:
                child = {}
                node[part] = child
            elif not isinstance(child, dict):
                path = ".".join(parts[: i + 1])
                raise ConfigError(f"override {text!r}: {path} is a {type(child).__name__}, not a mapping")
            node = child
        node[parts[-1]] = value
    return out


def resolve_references(data: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """Replace every ``${key.path}`` / ``${env:NAME}`` in string values (references may chain)."""

    def lookup(ref: str, where: str, seen: tuple[str, ...]) -> Any:
        if ref.startswith("env:"):
            name = ref[4:]
            if name not in os.environ:
                raise ConfigError(f"{source}: {where}: environment variable {name!r} is not set")
            return os.environ[name]
        if ref in seen:
            raise ConfigError(f"{source}: {where}: circular reference ${{{ref}}}")
        node: Any = data
        for part in ref.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                keys = list(node) if isinstance(node, Mapping) else []
                raise ConfigError(
                    f"{source}: {where}: ${{{ref}}} refers to a missing key{did_you_mean(part, keys)}"
                )
        return resolve(node, ref, (*seen, ref))

    def resolve(value: Any, where: str, seen: tuple[str, ...]) -> Any:
        if isinstance(value, dict):
            return {k: resolve(v, f"{where}.{k}" if where else str(k), seen) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, f"{where}.{i}", seen) for i, v in enumerate(value)]
        if isinstance(value, str):
            whole = _REF.fullmatch(value)
            if whole:
                return lookup(whole.group(1), where, seen)
            return _REF.sub(lambda m: str(lookup(m.group(1), where, seen)), value)
        return value

    return resolve(data, "", ())
