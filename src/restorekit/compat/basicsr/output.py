"""Writing a converted config: the output path is checked first, the notes go into its header.

A converted file is often edited by hand afterwards, so an existing one is only replaced on
request, and every way the output cannot be written (a folder, a path under a regular file, a
read-only folder) is one line naming the path, never a traceback.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from restorekit.errors import RestorekitError


def check_output(src: Path, dst: Path, overwrite: bool) -> None:
    """Refuse, in one line, an output that exists (unless ``overwrite``), is a folder or is the
    BasicSR file itself — before any conversion work, so nothing half-done is left behind."""
    if dst.is_dir():
        raise RestorekitError(f"{dst}: is a directory; give the converted config a file name")
    if dst.exists() and not overwrite:
        raise RestorekitError(f"{dst}: already exists; refusing to overwrite it (use --overwrite)")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise RestorekitError(f"{dst}: is the BasicSR file being converted; choose another output")
    folder = dst.parent
    while not folder.exists() and folder != folder.parent:  # the folder that mkdir would start in
        folder = folder.parent
    if not folder.is_dir():
        raise RestorekitError(f"{dst}: cannot be created: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise RestorekitError(f"{dst}: cannot be created: {folder} is not writable")


def write_config(cfg: dict[str, Any], notes: list[str], src: Path, dst: Path) -> None:
    """The converted config with the notes in its header: a converted file is often edited by
    hand afterwards, and the notes say what BasicSR did that it no longer does."""
    header = [f"# Converted from {src} by `restorekit config import-basicsr`."]
    if notes:
        header.append("# Notes on the conversion (BasicSR keys dropped or renamed):")
        header += [f"#   - {n}" for n in notes]
    body = yaml.dump(cfg, Dumper=_Dumper, sort_keys=False, allow_unicode=True)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text("\n".join(header) + "\n" + body, encoding="utf-8")
    except OSError as exc:  # under a regular file, a read-only folder, a full disk...
        raise RestorekitError(f"{dst}: cannot write the converted config: {exc.strerror or exc}") from None


class _Dumper(yaml.SafeDumper):
    """Block mappings, but lists of scalars inline (``betas: [0.9, 0.99]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flat = all(isinstance(v, int | float | str | bool) or v is None for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flat)


_Dumper.add_representer(list, _represent_list)
