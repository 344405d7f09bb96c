"""Registry: building checks names, arguments and types before calling the constructor."""

from __future__ import annotations

from typing import Literal

import pytest

from restorekit.errors import ConfigError
from restorekit.registry import Registry, spec_of


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
