"""The one training loop every task shares.

Reads top to bottom: set up (device, seed, task, resume, wrapping, data) → loop (fetch
``accum_iter`` micro-batches → ``task.train_step`` → report → log / validate / checkpoint) →
final validation and export. The task decides *what* one step does; the trainer decides when
things happen and keeps the run exactly resumable: the iteration, the sampler position (derived
from the iteration), every RNG state, optimizer/scheduler/scaler/EMA state and best metrics are in
each checkpoint, and a resumed run continues bit for bit where the saved one was.
"""

from __future__ import annotations

import copy
import os
import signal
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from restorekit.archs.export import export_network
from restorekit.ckptdir import manifest_problem
from restorekit.config import RunConfig, dump_config
from restorekit.data.collate import collate
from restorekit.data.prefetch import CPUPrefetcher, CUDAPrefetcher
from restorekit.device import pick_device
from restorekit.engine.checkpoint import (
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from restorekit.engine.distributed import DistInfo, all_gather_objects, barrier, collectives, mean_over_ranks
from restorekit.engine.logging import Reporter
from restorekit.engine.nanguard import NanGuard, Snapshot, non_finite_networks
from restorekit.engine.sampler import ResumableSampler
from restorekit.engine.seeding import rng_state, seed_everything, set_rng_state
from restorekit.engine.validation import (
    BestTracker,
    append_set_metrics,
    check_config,
    eval_context,
    format_table,
    write_result,
)
from restorekit.errors import ConfigError, RestorekitError
from restorekit.registry import DATASETS, TASKS
from restorekit.tasks.base import Task

# Fault injection for the exact-resume test: kill this process (SIGKILL, no clean-up) right after
# the checkpoint of this iteration is on disk, as a crash or a pre-empted job would.
_KILL_AFTER_SAVE = "RESTOREKIT_TEST_KILL_AFTER_SAVE"


class Trainer:
    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path,
        resume: Path | None = None,
        info: DistInfo | None = None,
    ) -> None:
        if cfg.train is None or cfg.data.train is None:
            raise ConfigError("train and data.train: both sections are needed to train")
        check_config(cfg)  # the same checks as the CLI, so Python callers get the same one-line errors
        self.cfg = cfg
        self.tcfg = cfg.train
        self.run_dir = run_dir
        self.info = info or DistInfo()
        self.device = pick_device(cfg.device, self.info.local_rank)
        self.config_yaml = dump_config(cfg)
        self.reporter = Reporter(
            run_dir if self.info.is_main else None,
            tensorboard=cfg.logger.tensorboard,
            wandb_project=cfg.logger.wandb_project,
            run_name=cfg.name,
            config=cfg.model_dump(mode="json"),
            enabled=self.info.is_main,
        )
        self._set_backend_flags()

        # The task (networks, losses, optimizers). Seeded identically on every rank, so DDP's
        # initial broadcast is a no-op and a one-process run initialises the same weights.
        seed_everything(cfg.seed)
        task_cls = TASKS.get(cfg.task, "task")
        self.task: Task = task_cls(cfg, self.device)
        self.best = BestTracker()
        self.guard = NanGuard(self.device)
        self._last_good: Path | None = None  # set by a resume and by every save
        self.rollbacks = 0  # NaN-guard rollbacks so far; each one reseeds the draws that follow
        self.it = 0
        self.samples = 0  # global draws consumed so far: the sampler's position, any world size
        for notice in self.task.notices:
            self.reporter.log(f"notice: {notice}")
        if resume is not None:
            self._resume(resume)
        self._wrap_networks()
        self.train_set = DATASETS.build(
            cfg.data.train.dataset,
            "data.train.dataset",
            skip_corrupt=cfg.data.skip_corrupt,
            degrade_on=cfg.data.degrade_on,
            **task_cls.dataset_extras(cfg),
        )
        self.task.attach_train_data(self.train_set)
        cached = getattr(self.train_set, "cache_bytes", 0)
        if cached:
            mib = cached / 2**20
            self.reporter.log(f"data.train: {len(self.train_set)} decoded images cached, {mib:.1f} MiB")
        # Global samples per iteration; a resumed run may use another process count, which is
        # why the position is kept as a sample count rather than derived from the iteration.
        self.per_step = cfg.data.train.batch_size * self.tcfg.accum_iter * self.info.world_size

    # ----------------------------------------------------------------- set-up helpers
    def _set_backend_flags(self) -> None:
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = self.tcfg.cudnn_benchmark
            torch.backends.cuda.matmul.allow_tf32 = self.tcfg.tf32
            torch.backends.cudnn.allow_tf32 = self.tcfg.tf32

    def _resume(self, path: Path) -> None:
        from restorekit.engine.checkpoint import reapply_hyperparameters, snapshot_hyperparameters

        networks, state = load_checkpoint(path)
        # the config's optimizer settings and LRs win over the saved ones (a changed LR applies)
        fresh = snapshot_hyperparameters(self.task.optimizers, self.task.schedulers)
        self._restore(networks, state, str(path))
        for note in reapply_hyperparameters(fresh, self.task.optimizers, self.task.schedulers):
            self.reporter.log(note)
        self._last_good = path
        self.reporter.log(f"resumed from {path} at iteration {self.it}")

    def _restore(self, networks: dict[str, Any], state: dict[str, Any], path: str) -> None:
        """Put the run back at a saved state (a checkpoint's, or the guard's in-memory snapshot)."""
        for name, module in self.task.networks.items():
            if name not in networks:
                raise RestorekitError(f"{path}: checkpoint has no weights for {name}")
            module.load_state_dict(networks[name])
        self.task.load_state_dict(state["task"])
        self.best.load_state_dict(state["best"])
        self.it = int(state["iter"])
        self.samples = int(state["samples"])
        self.rollbacks = max(self.rollbacks, int(state.get("rollbacks", 0)))
        set_rng_state(state["rng"])
        ranks = state.get("ranks") or []
        saved_world = int(state.get("world_size", len(ranks) or 1))
        if len(ranks) == self.info.world_size:
            self.task.load_rank_state_dict(ranks[self.info.rank])
        else:  # another process count: per-rank draws restart from (seed, rank, iteration)
            self.task.reseed_rank_state(self.it)
        if saved_world != self.info.world_size:
            self.reporter.log(
                f"notice: resuming under {self.info.world_size} process(es), saved under {saved_world}: "
                "the global batch changed, so the run is no longer the uninterrupted one"
            )

    def _wrap_networks(self) -> None:
        compile_mode = self.tcfg.compile
        info, device = self.info, self.device

        def wrap(name: str, module: nn.Module) -> nn.Module:
            if info.distributed:
                module = nn.parallel.DistributedDataParallel(
                    module,
                    device_ids=[device.index] if device.type == "cuda" else None,
                    find_unused_parameters=self.tcfg.find_unused_parameters,
                )
            if compile_mode != "off":
                module = torch.compile(module, mode=None if compile_mode == "default" else compile_mode)
            return module

        self.task.wrap_trainable(wrap)

    def _train_loader(self) -> Any:
        lcfg = self.cfg.data.train
        assert lcfg is not None
        sampler = ResumableSampler(
            len(self.train_set),
            seed=self.cfg.seed + 1_000_003 * self.rollbacks,  # fresh draws after a rollback
            start=self.samples,
            rank=self.info.rank,
            world_size=self.info.world_size,
            chunk=lcfg.batch_size,  # rank r's batch = one process's micro-batch r (accum_iter)
        )
        loader = DataLoader(
            self.train_set,
            batch_size=lcfg.batch_size,
            sampler=sampler,
            num_workers=lcfg.num_workers,
            pin_memory=lcfg.pin_memory and self.device.type == "cuda",
            persistent_workers=lcfg.persistent_workers and lcfg.num_workers > 0,
            prefetch_factor=lcfg.prefetch_factor if lcfg.num_workers > 0 else None,
            generator=torch.Generator(),  # keeps the loader off the global RNG (exact resume)
            collate_fn=collate,  # a gray image in a colour set is converted, not a stack traceback
        )
        use_cuda = lcfg.prefetch == "cuda" or (lcfg.prefetch == "auto" and self.device.type == "cuda")
        return CUDAPrefetcher(loader, self.device) if use_cuda else CPUPrefetcher(loader)

    # ----------------------------------------------------------------- the loop
    def fit(self) -> Path | None:
        cfg, tcfg, log = self.cfg, self.tcfg, self.reporter.log
        total = tcfg.total_iter
        what = f"task {cfg.task}, {self.task.describe()}"
        log(f"training {cfg.name}: {what}, {total} iterations on {self.device}")
        trained = total - self.it
        if self.it >= total:
            log(f"already at iteration {self.it} of {total}; nothing to train")
        prefetcher = self._train_loader()
        # the NaN guard's rollback target until the first checkpoint exists
        # the rollback target: this run's last good state — the checkpoint it resumed from or
        # last saved, or (before either) a CPU snapshot of the starting state
        self._snapshot = None if self._last_good is not None else self._capture()
        bar = tqdm(
            total=total,
            initial=self.it,
            # None: tqdm shows the bar on a terminal only, so logs and CI output stay readable
            disable=True if not (self.info.is_main and cfg.logger.progress_bar) else None,
            dynamic_ncols=True,
            unit="it",
        )
        self.task.train(True)
        t_log = time.perf_counter()
        it_log = self.it
        while self.it < total:
            batches = [self._next(prefetcher) for _ in range(tcfg.accum_iter)]
            self.it += 1
            self.samples += self.per_step
            with collectives(self.info, f"the gradient all-reduce of iteration {self.it}"):
                scalars = self.task.train_step(batches, self.it)
            self.task.end_iteration(self.it)  # schedules and EMA copies, for every role
            self.reporter.report(scalars)
            self.guard.watch(scalars)
            bar.update(1)
            final = self.it == total  # validated before its save, so the checkpoint knows its best
            log_now = final or self.it % cfg.logger.print_freq == 0
            periodic = bool(cfg.val.freq) and self.it % cfg.val.freq == 0
            val_now = self.task.evaluates() and (final or periodic)
            save_now = final or self.it % cfg.logger.save_checkpoint_freq == 0
            if (log_now or val_now or save_now) and not self._healthy(save_now):
                prefetcher = self._rollback(prefetcher, bar)
                t_log, it_log = time.perf_counter(), self.it
                continue
            if log_now:
                now = time.perf_counter()
                self._log_train(now - t_log, self.it - it_log, bar)
                t_log, it_log = now, self.it
            if val_now:
                self.validate(baseline=cfg.val.baseline if final else None)
            if save_now:
                self.save()
        bar.close()
        if trained <= 0 and self.task.evaluates():  # a finished run, run again: re-validate it
            self.validate(baseline=cfg.val.baseline)
        path = self._export()
        self.reporter.close()
        return path

    # ----------------------------------------------------------------- the NaN guard
    def _healthy(self, check_weights: bool) -> bool:
        """No non-finite loss since the last check (all ranks), and, before a save, finite weights."""
        with collectives(self.info, f"the NaN guard's all_reduce at iteration {self.it}"):
            pending = self.guard.pending(self.info.distributed)
        if pending:
            self._why = "a non-finite loss"
            return False
        bad = non_finite_networks(self.task.networks) if check_weights else []
        if bad:
            self._why = f"non-finite weights in {', '.join(bad)}"
            return False
        return True

    def _capture(self) -> Snapshot:
        ranks = [self.task.rank_state_dict()] * self.info.world_size  # read back by this rank only
        return Snapshot.capture(self.task.networks, self._state(ranks))

    def _rollback(self, prefetcher: Any, bar: tqdm) -> Any:
        """Back to the newest checkpoint (or the starting snapshot) with fresh draws; or stop."""
        bad_it = self.it
        self.rollbacks += 1
        retries = self.tcfg.nan_retries
        if self.rollbacks > retries:
            raise RestorekitError(
                f"training diverged: {self._why} by iteration {bad_it}, and {retries} rollback(s) with "
                "fresh draws did not help; lower the learning rate or loss weights, or check the data "
                "(no checkpoint or export with non-finite weights was written)"
            )
        del prefetcher  # its workers read the old draw order
        barrier(self.info)
        path = self._last_good
        if path is not None and manifest_problem(path) is None:
            networks, state = load_checkpoint(path)
            self._restore(networks, state, str(path))
        elif self._snapshot is not None:
            snap = copy.deepcopy(self._snapshot)  # the snapshot may be needed again
            self._restore(snap.networks, snap.state, "the starting state")
        else:
            raise RestorekitError(f"training diverged: {self._why} by iteration {bad_it}; {path} is damaged")
        self.task.reseed_rank_state(self.it + 7_919 * self.rollbacks)
        self.reporter._sums.clear()  # the diverged window's losses are not reported
        self.reporter._counts.clear()
        self.guard.reset()
        bar.reset(total=self.tcfg.total_iter)
        bar.update(self.it)
        self.reporter.log(
            f"notice: {self._why} by iteration {bad_it}; rolled back to iteration {self.it} "
            f"(rollback {self.rollbacks} of {retries}) and retrying with fresh draws"
        )
        return self._train_loader()

    def _next(self, prefetcher: Any) -> Any:
        batch = prefetcher.next()
        if batch is None:  # the sampler is infinite; None means the loader died
            raise RestorekitError("the training data loader stopped unexpectedly")
        return batch

    def _log_train(self, seconds: float, iters: int, bar: tqdm) -> None:
        # the LR now (not a mean over the window), read from the optimizers at log time only
        extra: dict[str, float] = {**self.task.learning_rates(), "it_per_s": iters / max(seconds, 1e-9)}
        skipped = getattr(self.train_set, "num_skipped", 0)
        if skipped:
            extra["skipped_images"] = float(skipped)
        if self.info.distributed:  # losses as the mean over ranks
            for k, v in list(self.reporter._sums.items()):
                self.reporter._sums[k] = mean_over_ranks(v.to(self.device), self.info)
        means = self.reporter.flush(self.it, extra)
        if means:
            text = "  ".join(f"{k} {v:.4g}" for k, v in means.items())
            self.reporter.log(f"iter {self.it:>7d}  {text}")
            bar.set_postfix({k: f"{v:.4g}" for k, v in means.items() if k.startswith("l_")})

    # ----------------------------------------------------------------- validation & saving
    def validate(self, baseline: str | None = None) -> dict[str, dict[str, float]]:
        """Let the task evaluate (and, when asked, a non-learned baseline beside it); record it all."""
        self.task.train(False)
        ctx = eval_context(self.device, self.info, self.it, baseline)
        if self.info.is_main:
            ctx.image_dir = lambda name: self.run_dir / "visualization" / name / f"iter_{self.it}"
        results = self.task.evaluate(ctx)
        rows: dict[str, dict[str, float]] = {}
        for name, result in results.items():
            rows[name] = result.means
            for note in result.notes:
                self.reporter.log(f"note: {name}: {note}")
            if result.baseline_of is not None:
                continue
            if self.info.is_main:
                write_result(self.run_dir / "val" / name, f"iter_{self.it}", result)
                protocols = {"protocol": result.protocols} if result.protocols else None
                self.reporter.write_scalars(self.it, result.means, prefix=f"val/{name}", extra=protocols)
                append_set_metrics(self.run_dir, self.it, name, result)
            self.best.update(name, result.means, self.it)
        if self.info.is_main and (self.reporter.tb is not None or self.reporter.wandb is not None):
            with torch.no_grad():
                for tag, images in self.task.sample_images().items():
                    self.reporter.add_images(self.it, tag, images)
        self.reporter.log(f"validation at iteration {self.it}\n{format_table(rows)}")
        self.task.train(True)
        return rows

    def _state(self, ranks: list[Any]) -> dict[str, Any]:
        return {
            "iter": self.it,
            "samples": self.samples,
            "world_size": self.info.world_size,
            "task": self.task.state_dict(),
            "ranks": ranks,  # each rank's own draws (task generator, pools), in rank order
            "best": self.best.state_dict(),
            "rng": rng_state(),
            "rollbacks": self.rollbacks,
        }

    def save(self) -> None:
        ranks = all_gather_objects(self.task.rank_state_dict(), self.info)
        if self.info.is_main:
            state = self._state(ranks)
            save_checkpoint(self.run_dir, self.it, self.task.networks, state, self.config_yaml)
            keep = set()
            if self.cfg.val.save_best and self.best.best:
                first = next(iter(self.best.best.values()))
                keep.add(int(first["iter"]))
            prune_checkpoints(self.run_dir, self.cfg.logger.keep_last, keep)
        barrier(self.info)
        self._last_good = self.run_dir / "checkpoints" / f"iter_{self.it}"
        self._snapshot = None  # a checkpoint is the rollback target from now on
        if os.environ.get(_KILL_AFTER_SAVE) == str(self.it):
            os.kill(os.getpid(), signal.SIGKILL)

    def _export(self) -> Path | None:
        if not self.info.is_main:
            return None
        path = self.run_dir / "model.safetensors"
        network = self.task.export()
        if non_finite_networks({"export": network}):  # the guard checked at the last save; be sure
            raise RestorekitError(f"{path}: not written: the trained network has non-finite weights")
        export_network(network, path)
        self.reporter.log(f"exported {path}")
        return path
