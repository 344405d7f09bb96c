"""Checkpoint and run-folder hardening: manifests, stale temp folders, strict stats.jsonl, the run
lock and resuming under a changed config. Each test reproduces a failure the code used to have."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from conftest import tiny_config, write_config
from restorekit.ckptdir import MANIFEST_FILE, file_sha256, latest_intact_checkpoint, verify_checkpoint
from restorekit.cli import main
from restorekit.engine.checkpoint import find_resume, resume_config_notes
from restorekit.engine.logging import Reporter, repair_jsonl
from restorekit.engine.runlock import RunLock
from restorekit.errors import ConfigError, RestorekitError, WeightsError

SRC = str(Path(__file__).resolve().parents[1] / "src")


def run_main(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return rc, out.getvalue(), err.getvalue()


def strict_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file as a strict reader sees them (NaN/Infinity tokens refused)."""

    def refuse(token: str) -> Any:
        raise ValueError(f"non-JSON token {token}")

    text = path.read_text()
    assert text.endswith("\n")
    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    """One tiny run (checkpoints at 10 and 20), trained once; tests work on copies of it."""
    root = tmp_path_factory.mktemp("ckpt")
    cfg = tiny_config(root)
    path = write_config(root / "tiny.yml", cfg)
    rc, _, err = run_main("train", "-c", str(path))
    assert rc == 0, err
    return cfg, Path(cfg["experiments_root"]) / "tiny"


@pytest.fixture
def copy(trained: tuple[dict[str, Any], Path], tmp_path: Path) -> tuple[Path, Path]:
    """(config file, run folder): a private copy of the trained run, for tests that damage it."""
    cfg, run = trained
    mine = {**cfg, "experiments_root": str(tmp_path / "experiments")}
    dest = tmp_path / "experiments" / "tiny"
    shutil.copytree(run, dest)
    # the copy's checkpoints say where they were saved; the same root keeps config diffs empty
    for ckpt in (dest / "checkpoints").iterdir():
        saved = yaml.safe_load((ckpt / "config.yaml").read_text())
        saved["experiments_root"] = mine["experiments_root"]
        (ckpt / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False))
        manifest = json.loads((ckpt / MANIFEST_FILE).read_text())
        entry = manifest["files"]["config.yaml"]
        entry["size"], entry["sha256"] = (
            (ckpt / "config.yaml").stat().st_size,
            file_sha256(ckpt / "config.yaml"),
        )
        (ckpt / MANIFEST_FILE).write_text(json.dumps(manifest))
    return write_config(tmp_path / "tiny.yml", mine), dest


# ------------------------------------------------------------------ 1. integrity
def test_every_checkpoint_has_a_manifest_of_all_its_files(trained: tuple[dict[str, Any], Path]) -> None:
    _, run = trained
    ckpt = run / "checkpoints" / "iter_20"
    manifest = json.loads((ckpt / MANIFEST_FILE).read_text())
    files = {p.name for p in ckpt.iterdir()} - {MANIFEST_FILE}
    assert (
        set(manifest["files"])
        == files
        == {
            "net_g.safetensors",
            "net_g_ema.safetensors",
            "training_state.pt",
            "config.yaml",
        }
    )
    for name, entry in manifest["files"].items():
        assert entry == {"size": (ckpt / name).stat().st_size, "sha256": file_sha256(ckpt / name)}
    assert verify_checkpoint(ckpt) == []
    assert not list((run / "checkpoints").glob(".tmp_*"))


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _flip_tensor_byte(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[-5] ^= 0x40  # inside the last tensor's data: the header still parses, sizes still match
    p.write_bytes(bytes(data))


DAMAGE = {
    "truncated state": ("training_state.pt", _truncate, "training_state.pt: "),
    "zero-byte weights": ("net_g.safetensors", lambda p: p.write_bytes(b""), "net_g.safetensors: 0 bytes"),
    "flipped bytes": ("net_g.safetensors", _flip_tensor_byte, "net_g.safetensors: sha256 differs"),
    "missing EMA": ("net_g_ema.safetensors", Path.unlink, "net_g_ema.safetensors: missing"),
}


@pytest.mark.parametrize("case", [*DAMAGE, "swapped in from iter_10"])
def test_resume_auto_skips_a_damaged_newest_checkpoint(copy: tuple[Path, Path], case: str) -> None:
    _, run = copy
    newest, older = run / "checkpoints" / "iter_20", run / "checkpoints" / "iter_10"
    if case == "swapped in from iter_10":  # same size, valid file, wrong iteration
        shutil.copy(older / "net_g.safetensors", newest / "net_g.safetensors")
        expected = "net_g.safetensors: sha256 differs"
    else:
        name, damage, expected = DAMAGE[case]
        damage(newest / name)
    notes: list[str] = []
    assert find_resume(run, "auto", notes) == older
    assert len(notes) == 1 and str(newest) in notes[0] and expected in notes[0], notes
    with pytest.raises(WeightsError, match="damaged checkpoint: " + expected.split(":")[0]):
        find_resume(run, str(newest))  # a named checkpoint is verified too, never replaced


def test_damaged_newest_falls_back_through_the_cli(copy: tuple[Path, Path]) -> None:
    """Today's symptom was a traceback (a truncated training_state.pt) instead of a resume."""
    cfg_path, run = copy
    _truncate(run / "checkpoints" / "iter_20" / "training_state.pt")
    rc, out, err = run_main("train", "-c", str(cfg_path), "--resume", "auto", "train.total_iter=12")
    assert rc == 0, err
    skipped = [line for line in out.splitlines() if "skipping damaged checkpoint" in line]
    assert len(skipped) == 1 and "training_state.pt" in skipped[0] and "bytes" in skipped[0]
    assert f"resumed from {run / 'checkpoints' / 'iter_10'} at iteration 10" in out
    assert verify_checkpoint(run / "checkpoints" / "iter_12") == []


def test_all_checkpoints_damaged_is_one_line_not_a_fresh_start(copy: tuple[Path, Path]) -> None:
    cfg_path, run = copy
    for it in (10, 20):
        (run / "checkpoints" / f"iter_{it}" / "net_g.safetensors").write_bytes(b"")
    before = (run / "config.yaml").read_bytes()
    rc, _, err = run_main("train", "-c", str(cfg_path), "--resume", "auto")
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "all checkpoints" in err and "iter_20" in err and "net_g.safetensors: 0 bytes" in err
    assert (run / "config.yaml").read_bytes() == before


def test_export_and_infer_verify_the_manifest(copy: tuple[Path, Path], tmp_path: Path) -> None:
    _, run = copy
    ckpt = run / "checkpoints" / "iter_20"
    _flip_tensor_byte(ckpt / "net_g_ema.safetensors")
    rc, _, err = run_main("export", str(ckpt), "-o", str(tmp_path / "m.safetensors"))
    assert rc == 2 and "damaged checkpoint: net_g_ema.safetensors: sha256 differs" in err
    src = tmp_path / "in.png"
    shutil.copy(_any_png(run), src)
    rc, _, err = run_main("infer", "--weights", str(run), "-i", str(src), "-o", str(tmp_path / "out"))
    assert rc == 2 and "net_g_ema.safetensors: sha256 differs" in err
    # the raw weights are intact: a folder is checked for the files that are read
    rc, _, err = run_main("export", str(ckpt), "--raw", "-o", str(tmp_path / "raw.safetensors"))
    assert rc == 0, err


def _any_png(run: Path) -> Path:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    return next(Path(cfg["data"]["val"]["tinyval"]["dataset"]["dataroot_lq"]).glob("*.png"))


def test_checkpoints_from_before_manifests_are_accepted_with_a_note(
    copy: tuple[Path, Path], tmp_path: Path
) -> None:
    _, run = copy
    ckpt = run / "checkpoints" / "iter_20"
    (ckpt / MANIFEST_FILE).unlink()
    notes: list[str] = []
    assert find_resume(run, "auto", notes) == ckpt
    assert len(notes) == 1 and "no manifest.json" in notes[0]
    rc, out, err = run_main("export", str(ckpt), "-o", str(tmp_path / "m.safetensors"))
    assert rc == 0, err
    assert len([line for line in out.splitlines() if "no manifest.json" in line]) == 1
    assert latest_intact_checkpoint(run)[0] == ckpt


# ------------------------------------------------------------------ 2. stale temp folders
def test_stale_temp_folders_of_dead_saves_are_removed(copy: tuple[Path, Path]) -> None:
    cfg_path, run = copy
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(gone.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        dead = run / "checkpoints" / f".tmp_iter_30_{dead_pid}"
        alive = run / "checkpoints" / f".tmp_iter_30_{live.pid}"
        for d in (dead, alive):
            d.mkdir()
            (d / "net_g.safetensors").write_bytes(b"half")
        rc, out, err = run_main("train", "-c", str(cfg_path), "--resume", "auto")
        assert rc == 0, err
        assert not dead.exists() and alive.is_dir()
        assert len([line for line in out.splitlines() if f"removed {dead}" in line]) == 1
    finally:
        live.kill()
        live.wait()


# ------------------------------------------------------------------ 3. stats.jsonl
def test_torn_stats_line_is_repaired_on_resume(copy: tuple[Path, Path]) -> None:
    cfg_path, run = copy
    stats = run / "stats.jsonl"
    rows = len(stats.read_text().splitlines())
    with open(stats, "a") as f:
        f.write('{"iter": 25, "time": 17000, "kind": "tr')  # the run died mid-write
    rc, out, err = run_main("train", "-c", str(cfg_path), "--resume", "auto")
    assert rc == 0, err
    assert len([line for line in out.splitlines() if "torn last line" in line]) == 1
    repaired = strict_rows(stats)
    assert len(repaired) > rows and all(r["iter"] != 25 for r in repaired)


def test_repair_keeps_whole_lines_only(tmp_path: Path) -> None:
    p = tmp_path / "s.jsonl"
    p.write_text('{"a": 1}\n{"b": 2}\n')
    assert repair_jsonl(p) is None and p.read_text() == '{"a": 1}\n{"b": 2}\n'
    p.write_text('{"a"')
    assert repair_jsonl(p) is not None and p.read_bytes() == b""
    assert repair_jsonl(tmp_path / "none.jsonl") is None


def test_non_finite_scalars_are_written_as_null(tmp_path: Path) -> None:
    rep = Reporter(tmp_path, stream=io.StringIO())
    rep.report({"l_pixel": torch.tensor(float("nan")), "l_gan": torch.tensor(float("inf"))})
    means = rep.flush(4, {"lr": 1e-3})
    rep.close()
    assert math.isnan(means["l_pixel"])  # the caller still sees the real value
    (row,) = strict_rows(tmp_path / "stats.jsonl")
    assert row["l_pixel"] is None and row["l_gan"] is None and row["lr"] == 1e-3


# ------------------------------------------------------------------ 4. the run lock
def test_a_locked_run_folder_is_refused_naming_the_holder(copy: tuple[Path, Path]) -> None:
    cfg_path, run = copy
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from restorekit.engine.runlock import RunLock; "
            "RunLock(Path(sys.argv[1])).acquire(); print('locked', flush=True); time.sleep(120)",
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
        rc, _, err = run_main("train", "-c", str(cfg_path), "--resume", "auto")
        assert rc == 2 and len(err.strip().splitlines()) == 1
        assert f"in use by process {holder.pid}" in err
        assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the dead holder's lock: nothing to clean up
    with RunLock(run):
        pass


def test_two_fresh_runs_started_together_never_share_a_folder(tmp_path: Path) -> None:
    cfg = tiny_config(tmp_path, **{"train.total_iter": 10, "val.freq": None})
    path = write_config(tmp_path / "race.yml", {**cfg, "name": "race"})
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "restorekit", "train", "-c", str(path)]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    results = [(p.communicate(timeout=300)[1], p.returncode) for p in procs]
    results = [(rc, err) for err, rc in results]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    refusal = next(err for rc, err in results if rc == 2)
    assert "in use by process" in refusal or "already exists" in refusal, refusal
    rows = strict_rows(Path(cfg["experiments_root"]) / "race" / "stats.jsonl")
    assert [r["iter"] for r in rows if r["kind"] == "train"] == [5, 10]  # one run's rows, once


# ------------------------------------------------------------------ 5. resuming under another config
def test_architecture_change_is_refused_before_anything_is_written(copy: tuple[Path, Path]) -> None:
    cfg_path, run = copy
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    rc, _, err = run_main(
        "train", "-c", str(cfg_path), "--resume", "auto", "network_g.num_feat=16", "scale=4"
    )
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "architecture changed" in err and "network_g.num_feat 8 -> 16" in err and "scale 2 -> 4" in err
    after = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file() and p.name != ".lock"}
    assert after == before  # config.yaml, log.txt, stats.jsonl untouched


def test_exactness_breaking_change_needs_the_flag(copy: tuple[Path, Path]) -> None:
    cfg_path, run = copy
    before = (run / "config.yaml").read_bytes()
    rc, _, err = run_main(
        "train", "-c", str(cfg_path), "--resume", "auto", "seed=4", "data.train.batch_size=3"
    )
    assert rc == 2 and len(err.strip().splitlines()) == 1
    assert "seed 3 -> 4" in err and "data.train.batch_size 2 -> 3" in err and "--allow-config-change" in err
    assert (run / "config.yaml").read_bytes() == before
    rc, out, err = run_main(
        "train", "-c", str(cfg_path), "--resume", "auto", "seed=4", "--allow-config-change"
    )
    assert rc == 0, err
    assert (
        len([line for line in out.splitlines() if "break exact resume (allowed): seed 3 -> 4" in line]) == 1
    )
    assert yaml.safe_load((run / "config.yaml").read_text())["seed"] == 4


def test_process_count_change_needs_the_flag(trained: tuple[dict[str, Any], Path]) -> None:
    _, run = trained
    ckpt = run / "checkpoints" / "iter_20"
    saved = (ckpt / "config.yaml").read_text()
    assert resume_config_notes(ckpt, saved, 1, False) == []
    with pytest.raises(ConfigError, match=r"process count 1 -> 2.*--allow-config-change"):
        resume_config_notes(ckpt, saved, 2, False)
    assert "process count 1 -> 2" in resume_config_notes(ckpt, saved, 2, True)[0]


def test_a_changed_learning_rate_takes_effect_on_resume(copy: tuple[Path, Path]) -> None:
    """The optimizer state used to bring back the saved LR while config.yaml showed the new one."""
    cfg_path, run = copy
    rc, out, err = run_main(
        "train", "-c", str(cfg_path), "--resume", "auto", "train.optim_g.lr=4e-4", "train.total_iter=25"
    )
    assert rc == 0, err
    changed = [line for line in out.splitlines() if "config changes" in line]
    assert len(changed) == 1 and "train.optim_g.lr 0.001 -> 0.0004" in changed[0]
    assert "train.total_iter 20 -> 25" in changed[0]
    rows = [r for r in strict_rows(run / "stats.jsonl") if r["kind"] == "train" and r["iter"] == 25]
    assert len(rows) == 1 and rows[0]["lr"] == pytest.approx(4e-4 * 0.5)  # past the milestone at 10
    state = torch.load(run / "checkpoints" / "iter_25" / "training_state.pt", weights_only=True)
    assert state["task"]["schedulers"]["g"]["base_lrs"] == [pytest.approx(4e-4)]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["optim_g"]["lr"] == pytest.approx(4e-4)


def test_lock_file_never_lands_in_a_foreign_folder(tmp_path: Path) -> None:
    """A refused fresh run leaves an occupied folder exactly as it was (no .lock added)."""
    cfg = tiny_config(tmp_path)
    path = write_config(tmp_path / "t.yml", cfg)
    run = Path(cfg["experiments_root"]) / "tiny"
    run.mkdir(parents=True)
    (run / "notes.txt").write_text("mine")
    rc, _, err = run_main("train", "-c", str(path))
    assert rc == 2 and "already exists" in err
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    with pytest.raises(RestorekitError):
        find_resume(tmp_path / "nowhere", str(tmp_path / "nowhere"))


def test_forked_children_do_not_keep_the_lock(tmp_path: Path) -> None:
    """DataLoader workers are forked while the lock is held; a killed trainer's workers must not
    keep refusing the resume until they notice their parent is gone."""
    lock = RunLock(tmp_path).acquire()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: outlives the parent's lock, as a lingering worker would
        os.close(read)
        os.write(write, b"x")
        import time

        time.sleep(30)
        os._exit(0)
    try:
        os.close(write)
        assert os.read(read, 1) == b"x"
        lock.release()  # the parent is done (or dead); the child still runs
        with RunLock(tmp_path):
            pass
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        os.close(read)
