"""DDP under torchrun on CPU (gloo): equivalence with one process, resume under another process
count, the ``--nproc`` shortcut and two "nodes" of one process each on loopback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from conftest import tiny_config, write_config

SRC = str(Path(__file__).resolve().parents[1] / "src")


def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK"}}
    return {**base, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1", **extra}


def torchrun(
    *args: str, nproc: int = 2, extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return subprocess.run(
        [*cmd, "-m", "restorekit", *args],
        capture_output=True,
        text=True,
        env=env(**(extra_env or {})),
        timeout=300,
    )


def single(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "restorekit", *args], capture_output=True, text=True, env=env(), timeout=300
    )


def weights(run: Path, it: int, name: str = "net_g") -> dict[str, torch.Tensor]:
    return load_file(str(run / "checkpoints" / f"iter_{it}" / f"{name}.safetensors"))


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def ddp_config(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    return tiny_config(
        tmp_path,
        **{
            "train.total_iter": 12,
            "logger.save_checkpoint_freq": 6,
            "logger.print_freq": 6,
            "val.freq": 6,
            **changes,
        },
    )


def test_two_processes_equal_one_process_with_double_batch(tmp_path: Path) -> None:
    cfg = ddp_config(tmp_path)
    two = write_config(tmp_path / "two.yml", {**cfg, "name": "two"})
    one_cfg = ddp_config(tmp_path, **{"data.train.batch_size": 4})
    one = write_config(tmp_path / "one.yml", {**one_cfg, "name": "one"})
    r2 = torchrun("train", "-c", str(two))
    assert r2.returncode == 0, r2.stderr[-3000:]
    r1 = single("train", "-c", str(one))
    assert r1.returncode == 0, r1.stderr[-3000:]
    root = Path(cfg["experiments_root"])
    for name in ["net_g", "net_g_ema"]:
        diff = max_diff(weights(root / "two", 12, name), weights(root / "one", 12, name))
        assert diff < 1e-6, f"{name}: {diff}"
    # training moved the weights (the comparison is not between two untouched initialisations)
    first = weights(root / "one", 6)
    assert max_diff(first, weights(root / "one", 12)) > 1e-4
    # rank 0 alone wrote the logs: one line per logged iteration, losses averaged over ranks
    rows = [json.loads(x) for x in (root / "two" / "stats.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in rows if r["kind"] == "train"] == [6, 12]
    one_rows = [json.loads(x) for x in (root / "one" / "stats.jsonl").read_text().splitlines()]
    loss2 = [r["l_pixel"] for r in rows if r["kind"] == "train"]
    loss1 = [r["l_pixel"] for r in one_rows if r["kind"] == "train"]
    assert all(abs(a - b) < 1e-6 for a, b in zip(loss1, loss2))


def test_killed_under_torchrun_resumes_with_one_process(tmp_path: Path) -> None:
    cfg = ddp_config(tmp_path)
    path = write_config(tmp_path / "k.yml", {**cfg, "name": "killed"})
    first = torchrun("train", "-c", str(path), extra_env={"RESTOREKIT_TEST_KILL_AFTER_SAVE": "6"})
    assert first.returncode != 0
    run = Path(cfg["experiments_root"]) / "killed"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter_6"]
    state = torch.load(run / "checkpoints" / "iter_6" / "training_state.pt", weights_only=True)
    assert state["world_size"] == 2 and state["samples"] == 6 * 2 * 2
    refused = single("train", "-c", str(path), "--resume", "auto")  # the global batch would change
    assert refused.returncode == 2 and "process count 2 -> 1" in refused.stderr
    second = single("train", "-c", str(path), "--resume", "auto", "--allow-config-change")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "resumed from" in second.stdout
    state = torch.load(run / "checkpoints" / "iter_12" / "training_state.pt", weights_only=True)
    assert state["world_size"] == 1 and state["samples"] == 6 * 2 * 2 + 6 * 2
    assert (run / "model.safetensors").is_file()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_nodes_on_loopback_match_the_nproc_shortcut(tmp_path: Path) -> None:
    cfg = ddp_config(tmp_path)
    nodes_cfg = write_config(tmp_path / "nodes.yml", {**cfg, "name": "nodes"})
    short_cfg = write_config(tmp_path / "short.yml", {**cfg, "name": "short"})
    port = free_port()
    procs = []
    for rank in range(2):
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nnodes=2", f"--node_rank={rank}",
            "--nproc_per_node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
            "--rdzv-id=restorekit-test", "-m", "restorekit", "train", "-c", str(nodes_cfg),
        ]  # fmt: skip
        procs.append(
            subprocess.Popen(cmd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-3000:]
    short = single("train", "-c", str(short_cfg), "--nproc", "2")
    assert short.returncode == 0, short.stderr[-3000:]
    root = Path(cfg["experiments_root"])
    assert max_diff(weights(root / "nodes", 12), weights(root / "short", 12)) < 1e-6
