"""The reader every BasicSR converter walks an option file with.

A ``Section`` is one mapping of the file. It records which keys were read, so ``done()`` can
refuse every other one — nothing in a BasicSR file is dropped silently — and it collects the
notes (keys dropped and why) that the CLI prints and the converted file's header keeps.
Errors name the BasicSR file and the full dotted key, in one line.
"""

from __future__ import annotations

from typing import Any, NoReturn

from restorekit.errors import ConfigError, did_you_mean


class Section:
    """One mapping of the BasicSR file. It records which keys were handled, so ``done()`` can
    refuse every other one (nothing is dropped silently), and collects the notes of the run."""

    def __init__(self, notes: list[str], source: str, data: Any, path: str) -> None:
        self.notes, self.source, self.data, self.path = notes, source, data, path
        self.used: set[Any] = set()  # keys whose value was read (mapped, checked or dropped)
        self.known: set[Any] = set()  # keys this section understands, for did-you-mean
        if not isinstance(data, dict):
            self.fail("", f"expected a mapping, got {data!r}")

    def key(self, k: str) -> str:
        return ".".join(p for p in (self.path, str(k)) if p) or "(top level)"

    def fail(self, k: str, what: str) -> NoReturn:
        raise ConfigError(f"{self.source}: {self.key(k)}: {what}")

    def note(self, k: str, why: str) -> None:
        self.notes.append(f"{self.key(k)}: {why}")

    def __contains__(self, k: str) -> bool:
        return k in self.data

    def get(self, k: str, default: Any = None) -> Any:
        """The value of ``k`` (``default`` when absent or null), marking the key as handled."""
        self.used.add(k)
        value = self.data.get(k)
        return default if value is None else value

    def child(self, k: str) -> Section | None:
        """The mapping under ``k``, or None when it is absent or null."""
        value = self.get(k)
        return None if value is None else Section(self.notes, self.source, value, self.key(k))

    def sub(self, k: str, what: str) -> Section:
        """The mapping under ``k``, which must be there."""
        self.need(k, what)
        return Section(self.notes, self.source, self.get(k), self.key(k))

    def need(self, k: str, what: str) -> None:
        self.known.add(k)
        if self.data.get(k) is None:
            self.fail(k, f"required key is missing ({what})")

    def choice(self, k: str, choices: Any, what: str, hint: str = "") -> Any:
        value = self.get(k)
        if not isinstance(value, str) or value not in choices:
            self.fail(k, f"{value!r} cannot be converted; supported {what}: {', '.join(choices)}{hint}")
        return value

    def refuse(self, keys: tuple[str, ...], why: str) -> None:
        for k in keys:
            self.known.add(k)
            if k in self:
                self.fail(k, why)

    def drop(self, table: dict[str, str]) -> None:
        for k, why in table.items():
            self.known.add(k)
            if k in self.data and k not in self.used:
                self.get(k)
                self.note(k, f"dropped — {why}")

    def done(self, hint: str = "") -> None:
        for k in self.data:
            if k not in self.used:
                near = did_you_mean(str(k), [str(a) for a in self.used | self.known])
                self.fail(k, f"unknown BasicSR option, cannot be converted{near}{hint}")

    # Typed reads. BasicSR files often write integers as ``!!float 5e3``; exact ones are taken.
    def as_int(self, k: str, default: Any = None, minimum: int = 0) -> Any:
        return self.check_int(k, self.get(k, default), minimum)

    def check_int(self, k: str, value: Any, minimum: int = 0) -> Any:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
            self.fail(k, f"expected an integer >= {minimum}, got {value!r}")
        return value

    def as_float(self, k: str, default: Any = None) -> Any:
        return self.check_float(k, self.get(k, default))

    def check_float(self, k: str, value: Any) -> Any:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            self.fail(k, f"expected a number, got {value!r}")
        return None if value is None else float(value)

    def as_bool(self, k: str, default: bool) -> bool:
        value = self.get(k, default)
        if not isinstance(value, bool):
            self.fail(k, f"expected true or false, got {value!r}")
        return value

    def as_str(self, k: str, default: Any = None) -> Any:
        value = self.get(k, default)
        if value is not None and not isinstance(value, str):
            self.fail(k, f"expected a string, got {value!r}")
        return value

    def read(self, k: str, how: str) -> Any:
        """``k`` read as one of "float", "floats", "ints" or "bool" (the tables above say which)."""
        if how == "bool":
            return None if self.get(k) is None else self.as_bool(k, False)
        return self.as_float(k) if how == "float" else self.as_list(k, how)

    def as_list(self, k: str, kind: str) -> list[Any] | None:
        """A list of "ints" or "floats", or None when absent."""
        value = self.get(k)
        if value is None:
            return None
        if not isinstance(value, list | tuple):
            self.fail(k, f"expected a list of {kind}, got {value!r}")
        check = self.check_int if kind == "ints" else self.check_float
        return [check(f"{k}.{i}", v) for i, v in enumerate(value)]

    def optional(self, table: dict[str, str]) -> dict[str, Any]:
        """The keys of ``table`` that are set (not null), each read as the table says."""
        out = {}
        for k, how in table.items():
            value = self.read(k, how) if k in self else None
            if value is not None:  # null means "BasicSR's default", which is torch's, as here
                out[k] = value
        return out
