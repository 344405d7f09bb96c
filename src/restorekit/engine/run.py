"""Whole runs, as the CLI and Python callers start them: ``train_run`` and ``validate_run``.

Both used to live in the CLI, so a ``Trainer`` built from Python skipped the run-folder rules:
never reuse an occupied folder unless resuming, create it only once every rank has looked, and
remove a folder that failed to start (missing weights, bad data...) so fixing the cause and
running the same command again just works. Here they are shared by every entry point.
"""

from __future__ import annotations

import gc
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from restorekit.ckptdir import EMA_FILE, RAW_FILE, find_checkpoint, manifest_problem
from restorekit.config import RunConfig, dump_config
from restorekit.device import pick_device
from restorekit.engine.distributed import DistInfo, all_gather_objects, barrier, cleanup, init_distributed
from restorekit.engine.validation import check_config, eval_context
from restorekit.errors import ConfigError, RestorekitError, WeightsError, write_error
from restorekit.registry import TASKS
from restorekit.tasks.evaluation import SetResult
from restorekit.weights import load_into, read_state_dict


def wants_cuda(device: str) -> bool:
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def train_run(
    cfg: RunConfig,
    resume: str | None = None,
    source: str = "config",
    allow_config_change: bool = False,
) -> Path | None:
    """Train ``cfg`` in ``experiments_root/name`` (``resume``: ``auto`` or a checkpoint folder).

    Joins torchrun's process group when there is one. Returns the exported model's path (rank 0).
    Rank 0 claims the folder first: it creates it and takes its lock (``engine.runlock``, held
    until the run ends), and only then checks occupancy, picks and verifies the checkpoint to
    resume and compares the config with that checkpoint's (``allow_config_change`` lets changes
    that break exact resume through). Checking under the lock is what keeps two runs started
    together out of one folder; nothing is written there before the checks pass, and every rank
    follows rank 0's verdict.
    """
    from restorekit.engine.checkpoint import (
        find_resume,
        prune_before_resume,
        remove_stale_temps,
        resume_config_notes,
    )
    from restorekit.engine.runlock import RunLock, folder_in_use
    from restorekit.engine.trainer import Trainer

    check_config(cfg, source)
    if cfg.train is None or cfg.data.train is None:
        raise RestorekitError(f"{source}: train and data.train: both sections are needed to train")
    run_dir = Path(cfg.experiments_root) / cfg.name
    occupied_error = (
        f"{run_dir}: experiment folder already exists; continue it with --resume auto, "
        f"or start a new run with another name (name=NEW)"
    )
    info = init_distributed("cuda" if wants_cuda(cfg.device) else "cpu", timeout=cfg.train.dist_timeout)
    lock = RunLock(run_dir)
    created = started = False
    notes: list[str] = []
    try:
        verdict: tuple[str | None, str | None] = (None, None)  # (error, checkpoint to resume)
        failure: BaseException | None = None
        if info.is_main:
            try:
                if resume is None and folder_in_use(run_dir):  # before a lock file lands in it
                    raise RestorekitError(occupied_error)
                if run_dir.exists() and not run_dir.is_dir():
                    raise RestorekitError(f"{run_dir}: is a file; the run folder cannot be created")
                try:
                    run_dir.mkdir(parents=True)
                    created = True
                except FileExistsError:
                    pass
                lock.acquire()
                if resume is None and folder_in_use(run_dir):  # another run got in between
                    raise RestorekitError(occupied_error)
                resume_path = find_resume(run_dir, resume, notes)
                if resume_path is not None:
                    notes += resume_config_notes(
                        resume_path, dump_config(cfg), info.world_size, allow_config_change
                    )
                notes += remove_stale_temps(run_dir)
                if resume_path is not None:
                    prune_before_resume(run_dir, resume_path, dump_config(cfg))
                (run_dir / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
                verdict = (None, None if resume_path is None else str(resume_path))
            except OSError as exc:  # a read-only or full experiments_root: one line, not a traceback
                failure = write_error(exc, exc.filename or run_dir, 4096)
                verdict = (str(failure), None)
            except BaseException as exc:
                failure = exc
                verdict = (str(exc) or type(exc).__name__, None)
        verdict = all_gather_objects(verdict, info)[0]  # also: no rank starts before rank 0 decided
        if failure is not None:
            raise failure
        if verdict[0] is not None:
            raise RestorekitError(verdict[0])
        resume_path = None if verdict[1] is None else Path(verdict[1])
        try:
            trainer = Trainer(cfg, run_dir, resume=resume_path, info=info)
        except BaseException:
            for note in notes if info.is_main else []:
                print(note, file=sys.stderr)
            raise
        started = True
        for note in notes:
            trainer.reporter.log(note)
        exported = trainer.fit()
        barrier(info)
        # Free DDP's state while the process group still exists: tearing the group down first
        # can hang gloo at exit (pytorch/pytorch#75097).
        del trainer
        gc.collect()
    except BaseException:
        if created and lock.held and not started:  # a folder this run made and never got going in
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        lock.release()
        cleanup(info)
    return exported


def checkpoint_weights(path: Path) -> Path:
    """The weights file of a checkpoint folder, or of a run folder's newest checkpoint: the EMA
    copy when there is one. The file is checked against the folder's manifest first."""
    folder = find_checkpoint(path)
    candidates = [folder / EMA_FILE, folder / RAW_FILE]
    found = [c for c in candidates if c.is_file()]
    if not found:
        raise WeightsError(f"{folder}: folder has neither {EMA_FILE} nor {RAW_FILE}")
    problem = manifest_problem(folder, only=[found[0].name])
    if problem is not None:
        raise WeightsError(f"{folder}: damaged checkpoint: {problem}")
    return found[0]


def dist_timeout(cfg: RunConfig) -> float:
    """``train.dist_timeout`` for the process group of any command; a config without a ``train``
    section (validation only) gets the option's default, so ``validate`` under torchrun is bounded
    the same way ``train`` is instead of waiting gloo's 30 minutes for a stuck rank."""
    if cfg.train is not None:
        return float(cfg.train.dist_timeout)
    from restorekit.config.schema import TrainCore

    return float(TrainCore.model_fields["dist_timeout"].default)


def validate_run(
    cfg: RunConfig,
    weights: str,
    baseline: str | None = None,
    report: Any = None,
    source: str = "config",
    info: DistInfo | None = None,
) -> dict[str, SetResult]:
    """Evaluate ``weights`` (a file or a checkpoint folder) as the task of ``cfg`` evaluates.

    The task is built for evaluation only (no optimizers, no pretrained start); ``report``
    (a ``ValidationReport``) collects crops per image when given. Runs sharded under torchrun.
    """
    check_config(cfg, source)
    if not cfg.data.val:
        raise ConfigError(f"{source}: data.val: no validation sets to evaluate")
    own_group = info is None
    info = info or init_distributed("cuda" if wants_cuda(cfg.device) else "cpu", timeout=dist_timeout(cfg))
    try:
        device = pick_device(cfg.device, info.local_rank)
        task_cls = TASKS.get(cfg.task, "task")
        task = task_cls(cfg, device, training=False)
        path = Path(weights)
        if path.is_dir():
            path = checkpoint_weights(path)
        state, _ = read_state_dict(path)
        load_into(task.networks["net_g"], state, "strict", f"{path} (network_g)")
        task.train(False)
        ctx = eval_context(device, info, baseline=baseline)
        if report is not None:
            ctx.collect = report.collector()
        with torch.inference_mode():
            results = task.evaluate(ctx)
    finally:
        if own_group:
            cleanup(info)
    if report is not None:
        for name, res in results.items():
            if res.baseline_of is None:
                base = results.get(f"{name}/{baseline}") if baseline else None
                report.add(name, res, base)
    return results
