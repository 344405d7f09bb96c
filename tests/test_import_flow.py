"""The import flow of DESIGN.md, checked on the source with ``ast``.

registry, config ← archs, data ← losses, metrics, optim ← tasks ← engine ← cli; inference uses
archs, data and metrics only. No module imports cli. A broken arrow fails here, naming the file.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "restorekit"

BASE = {"errors", "registry", "weights", "ckptdir", "device"}
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "registry": {"errors"},
    "weights": {"errors"},
    "ckptdir": {"errors"},
    "device": {"errors"},
    "config": {"errors", "registry"},
    "archs": BASE,
    "data": BASE,
    "optim": BASE,
    "losses": BASE | {"archs"},
    "metrics": BASE | {"archs", "data"},
    "tasks": BASE | {"config", "archs", "data", "losses", "metrics", "optim"},
    "engine": BASE | {"config", "archs", "data", "losses", "metrics", "optim", "tasks"},
    # offline face detection, alignment, restore and paste-back: on top of inference (the tiled
    # background upscale, precision rules, file writing); used by the face data tools and the cli
    "faces": BASE | {"archs", "data", "inference"},
    "inference": BASE | {"archs", "data", "metrics"},
    "compat": BASE | {"config", "archs", "data", "losses", "metrics", "optim"},  # importers (BasicSR)
    "cli": BASE
    | {
        "config",
        "archs",
        "data",
        "losses",
        "metrics",
        "optim",
        "tasks",
        "engine",
        "inference",
        "compat",
        "faces",
    },
    "__main__": {"cli"},
    "__init__": {"inference", "faces"},  # load_model, load_face_restorer: imported lazily inside
}


def top_package(path: Path) -> str:
    rel = path.relative_to(PKG)
    return rel.parts[0].removesuffix(".py")


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "restorekit" and len(parts) > 1:
                found.add(parts[1])
    return found


def test_every_import_follows_the_flow() -> None:
    problems = []
    files = sorted(PKG.rglob("*.py"))
    assert len(files) > 20
    for path in files:
        pkg = top_package(path)
        assert pkg in ALLOWED, f"{path}: package {pkg!r} is not in the import-flow table"
        for dep in imported_packages(path) - {pkg}:
            if dep not in ALLOWED[pkg]:
                problems.append(f"{path.relative_to(PKG)} imports restorekit.{dep}")
    assert not problems, "; ".join(problems)


def test_importing_archs_pulls_in_no_trainer_cli_or_loggers() -> None:
    code = (
        "import sys, restorekit.archs, restorekit.metrics, restorekit.data\n"
        "bad = [m for m in sys.modules if m.startswith(('restorekit.engine', 'restorekit.cli', "
        "'torch.utils.tensorboard', 'tensorboard', 'wandb'))]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
