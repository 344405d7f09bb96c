"""Registry: building checks names, arguments and types before calling the constructor."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest

from restorekit.errors import ConfigError
from restorekit.registry import Registry, spec_of

SRC = Path(__file__).resolve().parents[1] / "src"


def make_registry() -> Registry:
    reg: Registry = Registry("widget")

    @reg.register("Gear")
    class Gear:
        def __init__(self, teeth: int, radius: float = 1.0, mode: Literal["a", "b"] = "a") -> None:
            self.teeth, self.radius, self.mode = teeth, radius, mode

    @reg.register()
    def spring(stiffness: float, pair: tuple[float, float] = (0.0, 1.0)) -> dict:
        return {"stiffness": stiffness, "pair": pair}

    return reg


def test_build_records_spec_and_coerces_types() -> None:
    reg = make_registry()
    gear = reg.build({"type": "Gear", "teeth": "12", "radius": 2})
    assert gear.teeth == 12 and isinstance(gear.teeth, int)
    assert gear.radius == 2.0 and isinstance(gear.radius, float)
    assert spec_of(gear) == {"type": "Gear", "teeth": 12, "radius": 2.0}
    assert reg.build({"type": "spring", "stiffness": 3, "pair": [1, 2]})["pair"] == (1.0, 2.0)


def test_extra_fills_only_known_unset_parameters() -> None:
    reg = make_registry()
    gear = reg.build({"type": "Gear", "teeth": 3}, radius=5.0, unknown_extra=1)
    assert gear.radius == 5.0
    gear = reg.build({"type": "Gear", "teeth": 3, "radius": 1.5}, radius=5.0)
    assert gear.radius == 1.5


@pytest.mark.parametrize(
    ("cfg", "fragment"),
    [
        (
            {"type": "Gaer", "teeth": 1},
            "net.type: unknown widget 'Gaer' (did you mean 'Gear'?); known: Gear, spring",
        ),
        (
            {"type": "Gear", "teeht": 1},
            "net.teeht: unknown argument for widget 'Gear' (did you mean 'teeth'?)",
        ),
        ({"type": "Gear"}, "net.teeth: required argument of widget 'Gear' is missing"),
        ({"type": "Gear", "teeth": "many"}, "net.teeth: expected int for widget 'Gear', got 'many'"),
        ({"type": "Gear", "teeth": 1, "mode": "c"}, "net.mode: expected"),
        ({"teeth": 1}, "net: expected a mapping with a 'type' key"),
    ],
)
def test_build_errors_name_the_key(cfg: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        make_registry().build(cfg, where="net")
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_check_does_not_construct() -> None:
    reg: Registry = Registry("thing")
    calls = []

    @reg.register("T")
    def t(x: int) -> None:
        calls.append(x)

    assert reg.check({"type": "T", "x": "4"}) == ("T", {"x": 4})
    assert calls == []


def test_duplicate_registration_is_refused() -> None:
    reg = make_registry()
    with pytest.raises(ValueError, match="registered twice"):

        @reg.register("Gear")
        class Other:
            pass


def test_meta_is_stored_per_name() -> None:
    reg: Registry = Registry("widget")

    @reg.register("A", info="declared", size=3)
    class A:
        pass

    @reg.register("B")
    class B:
        pass

    assert reg.meta("A") == {"info": "declared", "size": 3}
    assert reg.meta("B") == {}
    reg.meta("A")["info"] = "changed"  # a copy: callers cannot edit the registry by accident
    assert reg.meta("A")["info"] == "declared"


def test_lookups_import_the_filling_package_once(monkeypatch: pytest.MonkeyPatch) -> None:
    imported: list[str] = []
    reg: Registry = Registry("widget", "some.package")

    def fake_import(name: str) -> None:
        imported.append(name)

        @reg.register("Filled")
        def filled() -> int:
            return 1

    monkeypatch.setattr("restorekit.registry.importlib.import_module", fake_import)
    assert imported == []  # nothing happens at construction
    assert "Filled" in reg and reg.names() == ["Filled"] and reg.build({"type": "Filled"}) == 1
    assert reg.meta("Filled") == {} and reg.check({"type": "Filled"}) == ("Filled", {})
    assert imported == ["some.package"]


# (registry, a name its package registers, a complete spec to build or None)
FRESH = [
    ("ARCHS", "EDSR", {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 4, "num_block": 1}),
    ("LOSSES", "L1Loss", {"type": "L1Loss"}),
    ("DATASETS", "PairedImageDataset", None),
    ("METRICS", "psnr", None),
    ("TASKS", "restoration", None),
]


@pytest.mark.parametrize(("registry", "name", "spec"), FRESH, ids=[r for r, _, _ in FRESH])
def test_registries_fill_themselves_fresh(registry: str, name: str, spec: dict | None) -> None:
    """Each in its own interpreter: nothing but the registry module is imported first."""
    code = [
        f"from restorekit.registry import {registry} as R",
        f"assert {name!r} in R.names(), R.names()",
        "import sys",
        "from restorekit.errors import ConfigError",
        "try:\n    R.get('NoSuchThing')\nexcept ConfigError as e:\n    msg = str(e)",
        "assert 'known: ' in msg and msg.split('known: ')[1].strip(), msg",
    ]
    if spec is not None:
        code.append(f"R.build({spec!r})")
    result = subprocess.run(
        [sys.executable, "-c", "\n".join(code)], env={"PYTHONPATH": str(SRC)}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_register_stores_metadata_per_name() -> None:
    reg: Registry = Registry("gadget")

    @reg.register("Fast", higher_is_better=True, tags=("a",))
    @reg.register("Plain")
    class Thing:
        pass

    assert reg.meta("Fast") == {"higher_is_better": True, "tags": ("a",)}
    assert reg.meta("Plain") == {}  # the same object under another name: its own (empty) metadata
    reg.meta("Fast")["higher_is_better"] = False  # a copy: the registry is not changed through it
    assert reg.meta("Fast")["higher_is_better"] is True
