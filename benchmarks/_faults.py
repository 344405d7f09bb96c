"""The fault matrices of ``reliability.py`` and the tiny run they share (issue 14).

Each case damages one thing — a checkpoint file, a writer that meets a full disk, a loss that
goes NaN — runs the ``restorekit`` command a user would run, in this process (``cli``), and
records whether the promise held: a fallback or a refusal in one line, nothing damaged written.
The disk-full cases replace the writer in this process because the code has no env-var fault
hook for them (only ``RESTOREKIT_TEST_KILL_AFTER_SAVE`` and ``RESTOREKIT_TEST_HANG_RANK`` exist).
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

Row = tuple[str, str, str, bool]  # group, fault, what happened, handled
ROWS: list[Row] = []
WORK = Path(".")  # the campaign's work folder (set by reliability.main)


def record(group: str, fault: str, handled: bool, what: str) -> None:
    what = what.replace(str(WORK) + "/", "").replace("|", "/")
    ROWS.append((group, fault, what if len(what) <= 150 else what[:147] + "...", handled))
    print(f"[{'ok' if handled else 'NOT HANDLED'}] {group}: {fault}: {what}", flush=True)


# ------------------------------------------------------------------ a tiny run (tests/conftest.py's)
def make_pairs(root: Path, n: int, size: int, seed: int) -> tuple[str, str]:
    """``n`` smooth RGB GT images and their area-downscaled x2 LQ images (learnable, unlike noise)."""
    import cv2
    import numpy as np

    rng = np.random.default_rng(seed)
    gt, lq = root / "GT", root / "LQ_x2"
    gt.mkdir(parents=True, exist_ok=True)
    lq.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        base = rng.random((size // 8 + 2, size // 8 + 2, 3)).astype(np.float32)
        img = cv2.resize(base, (size, size), interpolation=cv2.INTER_CUBIC)
        img = np.clip((img + 0.15 * rng.standard_normal(img.shape)) * 255, 0, 255).astype(np.uint8)
        cv2.imwrite(str(gt / f"img{i:03d}.png"), img)
        small = cv2.resize(img, (size // 2, size // 2), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(lq / f"img{i:03d}.png"), small)
    return str(gt), str(lq)


def config(root: Path, name: str, **changes: Any) -> Path:
    """A 2-second CPU run (EDSR, 8 features, 1 block); ``changes``: dotted keys → values."""
    if not (WORK / "data").is_dir():
        make_pairs(WORK / "data/train", 6, 48, 1)
        make_pairs(WORK / "data/val", 2, 32, 2)
    pair = {"type": "PairedImageDataset"}
    train = {**pair, "dataroot_gt": f"{WORK}/data/train/GT", "dataroot_lq": f"{WORK}/data/train/LQ_x2"}
    val = {**pair, "dataroot_gt": f"{WORK}/data/val/GT", "dataroot_lq": f"{WORK}/data/val/LQ_x2"}
    cfg: dict[str, Any] = {
        "name": name, "scale": 2, "seed": 3, "device": "cpu",
        "experiments_root": str(root / "experiments"),
        "network_g": {"type": "EDSR", "num_in_ch": 3, "num_out_ch": 3, "num_feat": 8, "num_block": 1},
        "data": {
            "train": {"dataset": {**train, "gt_size": 16, "use_hflip": True, "use_rot": True},
                      "batch_size": 2, "num_workers": 0},
            "val": {"tinyval": {"dataset": val, "metrics": {"psnr": {"crop_border": 2}}}},
        },
        "train": {"total_iter": 20, "optim_g": {"type": "Adam", "lr": 1e-3}, "ema_decay": 0.9,
                  "losses": {"pixel": {"type": "L1Loss"}}},
        "val": {"freq": 10},
        "logger": {"print_freq": 5, "save_checkpoint_freq": 10, "progress_bar": False,
                   "tensorboard": False},
    }  # fmt: skip
    for key, value in changes.items():
        node = cfg
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    root.mkdir(parents=True, exist_ok=True)
    path = root / f"{name}.yml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def run_dir(cfg: Path) -> Path:
    data = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    return Path(data["experiments_root"]) / data["name"]


def a_png() -> str:
    return str(sorted((WORK / "data/val/LQ_x2").glob("*.png"))[0])


def cli(*args: str) -> tuple[int, list[str], list[str]]:
    """``restorekit ARGS`` in this process: (rc, stdout lines, non-empty stderr lines)."""
    from restorekit.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(list(args))
        except Exception as exc:  # what a user would see as a traceback
            rc = 1
            print(f"Traceback (most recent call last): ... {type(exc).__name__}: {exc}", file=sys.stderr)
    return rc, out.getvalue().splitlines(), [x for x in err.getvalue().splitlines() if x.strip()]


@contextlib.contextmanager
def patched(obj: Any, name: str, value: Any) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def same_weights(a: Path, b: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


def one_error(rc: int, err: list[str], *needles: str) -> tuple[bool, str]:
    """(rc ≠ 0 and stderr is one ``error:`` line holding every needle, that line)."""
    line = err[-1] if err else f"(no error line, rc {rc})"
    ok = rc != 0 and len(err) == 1 and line.startswith("error: ") and all(n in line for n in needles)
    return ok, line


# ------------------------------------------------------------------ (b) corruption of the newest checkpoint
def flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[-5] ^= 0x40  # inside the last tensor: the header still parses and the size matches
    p.write_bytes(bytes(data))


DAMAGES: dict[str, tuple[str, Callable[[Path], Any], str]] = {
    "a truncated training_state.pt": ("training_state.pt", lambda p: p.write_bytes(p.read_bytes()[:999]),
                                      "bytes"),
    "a zero-byte net_g.safetensors": ("net_g.safetensors", lambda p: p.write_bytes(b""), "0 bytes"),
    "flipped bytes in net_g's tensor data": ("net_g.safetensors", flip, "sha256 differs"),
    "net_g.safetensors of iter_10 swapped in": (
        "net_g.safetensors", lambda p: shutil.copy(p.parents[1] / "iter_10" / p.name, p), "sha256 differs"),
    "no net_g_ema.safetensors": ("net_g_ema.safetensors", Path.unlink, "missing"),
    "an unreadable manifest.json": ("manifest.json", lambda p: p.write_text("{"), "unreadable"),
    "a .pt file added after the save": ("config.yaml", lambda p: (p.parent / "x.pt").write_bytes(b"x"),
                                        "x.pt: not listed"),
}  # fmt: skip


def corruption_matrix() -> None:
    for i, (fault, (name, damage, needle)) in enumerate(DAMAGES.items()):
        cfg = config(WORK / f"corrupt{i}", "c")
        if cli("train", "-c", str(cfg))[0] != 0:
            raise SystemExit("the corruption matrix's base run failed")
        run = run_dir(cfg)
        newest = run / "checkpoints" / "iter_20"
        damage(newest / name)
        if "flipped" in fault:  # the readers of a checkpoint folder verify it too
            for what in ("export", "infer"):
                argv = (
                    ["export", str(newest), "--raw", "-o", str(WORK / "m.safetensors")]
                    if what == "export"
                    else ["infer", "--weights", str(newest), "--raw", "-i", a_png(), "-o", str(WORK / "i")]
                )
                rc, _, err = cli(*argv)
                record("corruption", f"{what} --raw of a checkpoint with {fault}",
                       *one_error(rc, err, "sha256 differs"))  # fmt: skip
        rc, out, err = cli("train", "-c", str(cfg), "--resume", "auto", "train.total_iter=30")
        skipped = [x for x in out + err if "skipping damaged checkpoint" in x]
        resumed = any("resumed from" in x and "iter_10 at iteration 10" in x for x in out)
        ok = rc == 0 and resumed and len(skipped) == 1 and needle in skipped[0]
        line = (
            skipped[0].split("iter_20: ", 1)[-1] + "; resumed from iter_10"
            if skipped
            else f"rc {rc}: {err[-1:]}"
        )
        record("corruption", f"--resume auto; the newest checkpoint has {fault}", ok, line)
    for folder in run.glob("checkpoints/iter_*"):
        (folder / "net_g.safetensors").write_bytes(b"")
    rc, _, err = cli("train", "-c", str(cfg), "--resume", "auto")
    record("corruption", "--resume auto; every checkpoint damaged", *one_error(rc, err, "all checkpoints"))


# ------------------------------------------------------------------ (c) full and read-only disks
def fail(code: int) -> Callable[..., Any]:
    def raiser(*_: Any, **__: Any) -> Any:
        raise OSError(code, os.strerror(code))

    return raiser


def safetensors_full(*_: Any, **__: Any) -> None:
    """How safetensors reports a real full disk (its own error type, not an OSError)."""
    from safetensors import SafetensorError

    raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")


def after(n: int, real: Callable[..., Any], when: Callable[..., bool]) -> Callable[..., Any]:
    """``real``, except that the calls after the ``n``-th for which ``when`` holds fail with ENOSPC."""
    calls = [0]

    def fn(*a: Any, **k: Any) -> Any:
        if when(*a, **k):
            calls[0] += 1
            if calls[0] > n:
                fail(errno.ENOSPC)()
        return real(*a, **k)

    return fn


class FullFile:
    """A text file that fails with ENOSPC after ``n`` writes (log.txt on a disk that fills up)."""

    def __init__(self, f: Any, n: int) -> None:
        self.f, self.n = f, n

    def write(self, text: str) -> int:
        self.n -= 1
        if self.n < 0:
            fail(errno.ENOSPC)()
        return self.f.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.f, name)


def disk_matrix() -> None:
    import builtins

    from tensorboard.compat.tensorflow_stub.io import gfile

    from restorekit.archs import export
    from restorekit.ckptdir import verify_checkpoint
    from restorekit.engine import checkpoint
    from restorekit.inference import files

    real_save, real_manifest, real_open = checkpoint.save_file, checkpoint.write_manifest, builtins.open
    full = "no space left on device (needed ~"

    def log_full(f: Any, *a: Any, **k: Any) -> Any:
        return FullFile(real_open(f, *a, **k), 4) if str(f).endswith("log.txt") else real_open(f, *a, **k)

    def weights_full(state: Any, f: str) -> None:
        return safetensors_full() if ".tmp_iter_20" in f else real_save(state, f)

    def manifest_ro(folder: Path) -> Any:
        return fail(errno.EROFS)() if ".tmp_iter_20" in str(folder) else real_manifest(folder)

    def stats(f: Any, *_: Any, **__: Any) -> bool:
        return str(f).endswith("stats.jsonl")

    ckpt = "checkpoints/iter_20"
    sites = [
        ("ENOSPC: checkpoint weights (as safetensors raises it)", checkpoint, "save_file", weights_full,
         ckpt, full),
        ("EROFS: checkpoint manifest", checkpoint, "write_manifest", manifest_ro, ckpt,
         "read-only file system"),
        ("ENOSPC: stats.jsonl", builtins, "open", after(2, real_open, stats), "stats.jsonl", full),
        ("ENOSPC: log.txt", builtins, "open", log_full, "log.txt", full),
        ("ENOSPC: TensorBoard event file", gfile.GFile, "write",
         after(2, gfile.GFile.write, lambda *a, **k: True), "tb", full),
        ("ENOSPC: the final export model.safetensors", export, "save_file", fail(errno.ENOSPC),
         "model.safetensors", full),
    ]  # fmt: skip
    for i, (fault, obj, attr, value, where, needle) in enumerate(sites):
        cfg = config(WORK / f"disk{i}", "d", **{"logger.tensorboard": "TensorBoard" in fault})
        with patched(obj, attr, value):
            rc, _, err = cli("train", "-c", str(cfg))
        run = run_dir(cfg)
        ok, line = one_error(rc, err, f"{run / where}: {needle}")
        if "checkpoint" in fault:
            ok = ok and not list(run.glob("checkpoints/.tmp*"))
            ok = ok and verify_checkpoint(run / "checkpoints/iter_10") == []
            line += "; iter_10 intact, no temp folder left"
        record("disk-full", fault, ok, line)
    cfg, real_mkdir = config(WORK / "disk_ro", "d"), Path.mkdir

    def ro_mkdir(self: Path, *a: Any, **k: Any) -> None:
        if "disk_ro/experiments" in str(self):
            fail(errno.EROFS)()
        real_mkdir(self, *a, **k)

    with patched(Path, "mkdir", ro_mkdir):
        rc, _, err = cli("train", "-c", str(cfg))
    record("disk-full", "EROFS: experiments_root read-only at the start", *one_error(rc, err, "read-only"))
    model = run_dir(config(WORK / "disk0", "d")) / "checkpoints/iter_10"
    with patched(export, "save_file", safetensors_full):
        rc, _, err = cli("export", str(model), "-o", str(WORK / "full/m.safetensors"))
    record("disk-full", "ENOSPC: restorekit export -o", *one_error(rc, err, full))
    with patched(files, "_write_bytes", fail(errno.ENOSPC)):
        rc, _, err = cli("infer", "--weights", str(model), "-i", a_png(), "-o", str(WORK / "full/inf"))
    ok, line = one_error(rc, err, "no space left on device")
    sized = "needed ~" in line  # the wording states the size; a line without it is not enough
    record("disk-full", "ENOSPC: infer output", ok and sized, line + ("" if sized else " (no size stated)"))
    real_tmpfs()


def real_tmpfs() -> None:
    """A real full disk: a 512 KiB tmpfs fills with old checkpoints (mounting needs root); the
    recovery then needs room for keep_last + 1 checkpoints plus the logs, which pruning makes."""
    mnt = WORK / "tmpfs"
    mnt.mkdir()
    cmd = ["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)]
    if os.geteuid() != 0 or subprocess.run(cmd, capture_output=True).returncode != 0:
        print("note: a real tmpfs needs root (mount); only injected faults were tried")
        return
    try:
        where = {"experiments_root": str(mnt / "exp"), "train.total_iter": 60, "logger.keep_last": 100}
        cfg = config(WORK / "tmpfs_cfg", "t", **where, **{"logger.save_checkpoint_freq": 5})
        rc, _, err = cli("train", "-c", str(cfg))
        ok, line = one_error(rc, err, "no space left on device (needed ~")
        record("disk-full", "a real 512 KiB tmpfs fills up during training", ok, line)
        rc, _, err = cli("train", "-c", str(cfg), "--resume", "auto", "logger.keep_last=1")
        done = rc == 0 and (run_dir(cfg) / "model.safetensors").is_file()
        what = "finished, model exported" if done else (err[-1] if err else f"rc {rc}, no error line")
        record("disk-full", "that tmpfs: --resume auto logger.keep_last=1 (prunes before saving)", done, what)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)  # -l: a file may still be open


# ------------------------------------------------------------------ (d) NaN, Inf and numeric config
def finite_files(run: Path) -> bool:
    import torch
    from safetensors.torch import load_file

    found = [*run.glob("checkpoints/*/*.safetensors"), *run.glob("model.safetensors")]
    return all(bool(torch.isfinite(t).all()) for f in found for t in load_file(str(f)).values())


def numeric_matrix() -> None:
    import torch
    from safetensors.torch import load_file, save_file

    from restorekit.archs.export import read_metadata
    from restorekit.tasks.restoration import RestorationTask

    quiet = {
        "val.freq": None,
        "train.total_iter": 12,
        "logger.print_freq": 2,
        "logger.save_checkpoint_freq": 4,
    }
    for i, (fault, optim) in enumerate(
        (("Adam, lr 1e6", {"type": "Adam", "lr": 1e6}), ("SGD, lr 1e30", {"type": "SGD", "lr": 1e30}))
    ):
        cfg = config(WORK / f"nan{i}", "n", **quiet, **{"train.optim_g": optim})
        rc, out, err = cli("train", "-c", str(cfg))
        ok = finite_files(run_dir(cfg)) and (rc == 0 or one_error(rc, err, "training diverged")[0])
        backs = sum("rolled back" in x for x in out)
        line = err[-1] if rc else f"rc 0 after {backs} rollback(s)"
        record(
            "numeric", f"diverging run: {fault}", ok, f"{line}; no non-finite checkpoint or export written"
        )
    real_step, poisoned = RestorationTask.train_step, []

    def step(self: Any, batches: Any, it: int) -> Any:
        out = real_step(self, batches, it)
        if it == 7 and not poisoned:  # once: what a blown-up step reports
            poisoned.append(it)
            out["l_pixel"] = torch.tensor(float("nan"))
        return out

    cfg = config(WORK / "nan_once", "n", **quiet)
    with patched(RestorationTask, "train_step", step):
        rc, out, _ = cli("train", "-c", str(cfg))
    back = [x for x in out if "rolled back to iteration 4" in x]
    ok = rc == 0 and len(back) == 1 and finite_files(run_dir(cfg))
    what = "rolled back to iteration 4 and finished" if ok else f"rc {rc}"
    record("numeric", "a NaN loss at iteration 7, once", ok, what)
    for key, value in (("train.losses.pixel.loss_weight", ".inf"), ("train.losses.pixel.loss_weight", "-1"),
                       ("train.losses.pixel.loss_weight", ".nan"), ("network_g.num_feat", "0"),
                       ("network_g.num_feat", "-3"), ("seed", "-1"), ("seed", str(2**64))):  # fmt: skip
        rc, _, err = cli("train", "-c", str(cfg), "--dry-run", f"{key}={value}")
        record("numeric", f"{key}={value} at --dry-run", *one_error(rc, err, f"{key.split('.')[0]}"))
    good = run_dir(cfg) / "model.safetensors"
    state = {k: torch.full_like(v, float("nan")) for k, v in load_file(str(good)).items()}
    bad = WORK / "nan.safetensors"
    save_file(state, str(bad), metadata=read_metadata(good))
    for what in ("export", "infer"):
        argv = (["export", str(bad), "-o", str(WORK / "n2.safetensors")] if what == "export"
                else ["infer", "--weights", str(bad), "-i", a_png(), "-o", str(WORK / "n_inf")])  # fmt: skip
        rc, _, err = cli(*argv)
        ok, line = one_error(rc, err, "NaN")
        written = (WORK / "n2.safetensors").exists() or any((WORK / "n_inf").glob("*"))
        record("numeric", f"{what} of weights that are all NaN", ok and not written, line)
