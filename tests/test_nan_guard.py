"""The NaN guard: a diverging step never reaches a checkpoint or an export; the run rolls back and
retries with fresh draws, or stops with one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from conftest import tiny_config, write_config
from restorekit.cli import main
from restorekit.config import validate_config
from restorekit.engine.nanguard import NanGuard, non_finite_networks
from restorekit.engine.trainer import Trainer


def quiet(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    base = {"train.total_iter": 12, "val.freq": None, "data.val": {}, "logger.print_freq": 2}
    return tiny_config(tmp_path, **{**base, "logger.save_checkpoint_freq": 4, **changes})


def test_guard_counts_on_the_device() -> None:
    guard = NanGuard(torch.device("cpu"))
    guard.watch({"a": torch.tensor(1.0), "b": torch.tensor(float("nan")), "c": 2.0})
    guard.watch({"a": torch.tensor(float("inf"))})
    assert guard.pending(False) == 2
    guard.reset()
    assert guard.pending(False) == 0
    net = torch.nn.Linear(2, 2)
    assert non_finite_networks({"n": net}) == []
    with torch.no_grad():
        net.weight[0, 0] = float("nan")
    assert non_finite_networks({"n": net}) == ["n"]


def test_a_transient_nan_rolls_back_and_the_run_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = quiet(tmp_path)
    run = Path(cfg["experiments_root"]) / "tiny"
    run.mkdir(parents=True)
    trainer = Trainer(validate_config(cfg), run)
    real_step = trainer.task.train_step
    poisoned: list[int] = []

    def step(batches: Any, it: int) -> dict[str, torch.Tensor]:
        out = real_step(batches, it)
        if it == 7 and not poisoned:  # once: a NaN loss and NaN weights, as a blown-up step leaves them
            poisoned.append(it)
            with torch.no_grad():
                next(trainer.task.networks["net_g"].parameters()).fill_(float("nan"))
            out["l_pixel"] = torch.tensor(float("nan"))
        return out

    monkeypatch.setattr(trainer.task, "train_step", step)
    trainer.fit()
    log = (run / "log.txt").read_text()
    assert "non-finite loss by iteration 8; rolled back to iteration 4 (rollback 1 of 3)" in log
    assert trainer.rollbacks == 1 and trainer.it == 12
    for ckpt in (run / "checkpoints").iterdir():
        weights = load_file(str(ckpt / "net_g.safetensors"))
        assert all(torch.isfinite(t).all() for t in weights.values()), ckpt.name
    assert all(torch.isfinite(t).all() for t in load_file(str(run / "model.safetensors")).values())
    rows = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows if r["kind"] == "train"] == [
        2,
        4,
        6,
        6,
        8,
        10,
        12,
    ]  # 8 never logged at first
    state = torch.load(run / "checkpoints" / "iter_12" / "training_state.pt", weights_only=True)
    assert state["rollbacks"] == 1  # a resumed run keeps drawing what the rolled-back run drew


def test_a_diverging_run_stops_with_one_line_and_writes_no_nan(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg = quiet(tmp_path, **{"train.optim_g": {"type": "SGD", "lr": 1e30}, "train.nan_retries": 2})
    path = write_config(tmp_path / "diverge.yml", cfg)
    assert main(["train", "-c", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: training diverged: ")
    assert "2 rollback(s) with fresh draws did not help" in err[0]
    run = Path(cfg["experiments_root"]) / "tiny"
    assert not (run / "model.safetensors").exists()
    for ckpt in (run / "checkpoints").iterdir() if (run / "checkpoints").exists() else []:
        weights = load_file(str(ckpt / "net_g.safetensors"))
        assert all(torch.isfinite(t).all() for t in weights.values()), ckpt.name
