"""restorekit: train, evaluate and run image-restoration and image-generation models.

Commands: train | validate | generate | infer | faces | export | new | checkpoints | data | config |
metrics.

Every user error (a config key, a file, a value) is a ``RestorekitError`` that is printed as one
line, ``error: ...``, with exit status 2; ``--debug`` shows the traceback instead. Each command
family is one module of this package (``train``, ``infer``, ``tools``, ``metrics``) that adds
its parsers; heavy modules are imported inside the commands so ``restorekit --help`` and
``config schema`` start instantly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from restorekit.cli import faces, infer, metrics, tools, train
from restorekit.errors import RestorekitError

FAMILIES = (train, infer, faces, tools, metrics)
#: Comma-separated modules imported before any command runs: custom architectures, datasets,
#: losses, metrics or whole tasks (with their config section) register themselves on import,
#: and child processes of ``--nproc`` inherit the variable.
PLUGINS_ENV = "RESTOREKIT_PLUGINS"


def load_plugins() -> list[str]:
    """Import every module named in ``$RESTOREKIT_PLUGINS``; a failing one is a one-line error."""
    names = [n.strip() for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()]
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the plugin's own failure, reported as the user's setting
            raise RestorekitError(
                f"${PLUGINS_ENV}: cannot import {name!r} ({type(exc).__name__}: {exc})"
            ) from None
    return names


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        load_plugins()
        return int(args.func(args) or 0)
    except RestorekitError as exc:
        if args.debug:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def one_line(exc: BaseException) -> str:
    """The user-facing line of an error, also when a DataLoader worker re-raised it.

    torch re-raises a worker's exception as the same type with the worker's whole traceback as
    its message; the original message is the last line, after ``module.ErrorType: ``.
    """
    text = str(exc)
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    prefix = f"{type(exc).__module__}.{type(exc).__qualname__}: "
    for candidate in (prefix, f"{type(exc).__qualname__}: "):
        if last.startswith(candidate):
            return last[len(candidate) :]
    return last.split(": ", 1)[-1]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="restorekit", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = p.add_subparsers(metavar="COMMAND")
    for family in FAMILIES:
        family.add_parsers(sub)
    return p
