"""Config loading: strict schema, overrides, references, and one-line errors naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from restorekit.config import dump_config, load_config
from restorekit.config.loader import apply_overrides, parse_override, resolve_references
from restorekit.errors import ConfigError

BASE = {
    "name": "run1",
    "scale": 2,
    "network_g": {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "upscale": "${scale}"},
    "data": {
        "train": {
            "dataset": {"type": "PairedImageDataset", "dataroot_gt": "gt", "dataroot_lq": "lq"},
            "batch_size": 4,
        }
    },
    "train": {
        "total_iter": 10,
        "optim_g": {"type": "Adam", "lr": 1e-3},
        "losses": {"pixel": {"type": "L1Loss"}},
    },
}


def write(tmp_path: Path, data: object, name: str = "cfg.yml") -> Path:
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data) if not isinstance(data, str) else data)
    return p


def test_loads_and_resolves(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE))
    assert cfg.network_g["upscale"] == 2 and isinstance(cfg.network_g["upscale"], int)
    assert cfg.data.train is not None and cfg.data.train.batch_size == 4
    assert cfg.train is not None and cfg.train.optim_g["lr"] == 1e-3
    again = load_config(write(tmp_path, dump_config(cfg), "dumped.yml"))
    assert again == cfg


def test_scientific_notation_without_dot_is_a_float(tmp_path: Path) -> None:
    text = yaml.safe_dump(BASE).replace("lr: 0.001", "lr: 2e-4")
    cfg = load_config(write(tmp_path, text))
    assert cfg.train is not None and cfg.train.optim_g["lr"] == pytest.approx(2e-4)


def test_overrides(tmp_path: Path) -> None:
    cfg = load_config(
        write(tmp_path, BASE),
        ["train.total_iter=500", "name=other", "train.optim_g.betas=[0.9,0.99]", "scale=4", "val.freq=7"],
    )
    assert cfg.train is not None and cfg.train.total_iter == 500
    assert cfg.name == "other" and cfg.val.freq == 7
    assert cfg.train.optim_g["betas"] == [0.9, 0.99]
    assert cfg.network_g["upscale"] == 4  # references are resolved after overrides


def test_override_parsing_errors() -> None:
    with pytest.raises(ConfigError, match=r"expected key\.path=value"):
        parse_override("novalue")
    with pytest.raises(ConfigError, match="name is a str, not a mapping"):
        apply_overrides({"name": "x"}, ["name.sub=1"])


def test_references() -> None:
    data = {"a": 3, "b": "${a}", "c": "x${a}y", "d": "${b}", "e": ["${a}"]}
    out = resolve_references(data)
    assert out == {"a": 3, "b": 3, "c": "x3y", "d": 3, "e": [3]}
    with pytest.raises(ConfigError, match=r"\$\{nope\} refers to a missing key"):
        resolve_references({"a": "${nope}"})
    with pytest.raises(ConfigError, match="circular"):
        resolve_references({"a": "${b}", "b": "${a}"})


def test_env_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RK_ROOT", "/data")
    assert resolve_references({"p": "${env:RK_ROOT}/x"}) == {"p": "/data/x"}
    monkeypatch.delenv("RK_ROOT")
    with pytest.raises(ConfigError, match="environment variable 'RK_ROOT' is not set"):
        resolve_references({"p": "${env:RK_ROOT}"})


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("trian.total_iter=3", "trian: unknown key (did you mean 'train'?)"),
        ("data.train.batch_sise=3", "data.train.batch_sise: unknown key (did you mean 'batch_size'?)"),
        ("scale=0", "scale: input should be greater than or equal to 1 (got 0)"),
        ("train.total_iter=abc", "train.total_iter: input should be a valid integer"),
        ("train.ema_decay=1.5", "train.ema_decay: input should be less than 1"),
        ("name=a/b", "name: string should match pattern"),
        ("train.amp=fp8", "train.amp: expected 'off', 'bf16' or 'fp16'"),
    ],
)
def test_schema_errors_name_file_and_key(tmp_path: Path, override: str, fragment: str) -> None:
    path = write(tmp_path, BASE)
    with pytest.raises(ConfigError) as info:
        load_config(path, [override])
    msg = str(info.value)
    assert msg.startswith(f"{path}: ")
    assert fragment in msg
    assert "\n" not in msg


def test_missing_required_key(tmp_path: Path) -> None:
    data = {k: v for k, v in BASE.items() if k != "network_g"}
    with pytest.raises(ConfigError, match="network_g: required key is missing"):
        load_config(write(tmp_path, data))


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name: [unclosed\n", "line 2"),
        ("", "is empty"),
        ("- a\n- b\n", "expected a YAML mapping"),
    ],
)
def test_not_yaml(tmp_path: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_config(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file does not exist"):
        load_config(tmp_path / "nope.yml")


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE))
    with pytest.raises(Exception):  # noqa: B017  pydantic raises ValidationError for frozen models
        cfg.scale = 3  # type: ignore[misc]
