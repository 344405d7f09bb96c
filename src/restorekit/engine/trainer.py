"""The one training loop every task shares.

Reads top to bottom: set up (device, seed, task, resume, wrapping, data) → loop (fetch
``accum_iter`` micro-batches → ``task.train_step`` → report → log / validate / checkpoint) →
final validation and export. The task decides *what* one step does; the trainer decides when
things happen and keeps the run exactly resumable: the iteration, the sampler position (derived
from the iteration), every RNG state, optimizer/scheduler/scaler/EMA state and best metrics are in
each checkpoint, and a resumed run continues bit for bit where the saved one was.
"""

from __future__ import annotations

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
from restorekit.config import Config, dump_config
from restorekit.data.prefetch import CPUPrefetcher, CUDAPrefetcher
from restorekit.engine.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
)
from restorekit.engine.distributed import DistInfo, barrier, mean_over_ranks
from restorekit.engine.logging import Reporter
from restorekit.engine.sampler import ResumableSampler
from restorekit.engine.seeding import rng_state, seed_everything, set_rng_state
from restorekit.engine.validation import (
    BestTracker,
    ValSetup,
    build_val_sets,
    evaluate,
    format_table,
    write_result,
)
from restorekit.errors import ConfigError, RestorekitError
from restorekit.registry import DATASETS, TASKS, signature_params
from restorekit.tasks.base import Task

# Fault injection for the exact-resume test: kill this process (SIGKILL, no clean-up) right after
# the checkpoint of this iteration is on disk, as a crash or a pre-empted job would.
_KILL_AFTER_SAVE = "RESTOREKIT_TEST_KILL_AFTER_SAVE"


def check_train_data(cfg: Config) -> None:
    """Checks of the training data section that need the dataset registry."""
    if cfg.data.train is None:
        return
    DATASETS.check(cfg.data.train.dataset, "data.train.dataset", scale=cfg.scale)
    if cfg.data.degrade_on == "device":
        ctor = DATASETS.get(cfg.data.train.dataset["type"], "data.train.dataset.type")
        if "degrade_on" not in signature_params(ctor):
            raise ConfigError(
                f"data.degrade_on: 'device' needs a dataset that makes its LQ on the fly "
                f"(BicubicDataset), not {cfg.data.train.dataset['type']}"
            )


def pick_device(requested: str, info: DistInfo) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but no CUDA device is available")
    if requested == "cpu" or (requested == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda", info.local_rank)


class Trainer:
    def __init__(
        self,
        cfg: Config,
        run_dir: Path,
        resume: Path | None = None,
        info: DistInfo | None = None,
    ) -> None:
        if cfg.train is None or cfg.data.train is None:
            raise ConfigError("train and data.train: both sections are needed to train")
        self.cfg = cfg
        self.tcfg = cfg.train
        self.run_dir = run_dir
        self.info = info or DistInfo()
        self.device = pick_device(cfg.device, self.info)
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
        check_train_data(cfg)

        # The task (networks, losses, optimizers). Seeded identically on every rank, so DDP's
        # initial broadcast is a no-op and a one-process run initialises the same weights.
        seed_everything(cfg.seed)
        self.task: Task = TASKS.get(cfg.task, "task")(cfg, self.device)
        self.best = BestTracker()
        self.it = 0
        self.samples = 0  # global draws consumed so far: the sampler's position, any world size
        for notice in getattr(self.task, "notices", []):
            self.reporter.log(f"notice: {notice}")
        if resume is not None:
            self._resume(resume)
        self._wrap_networks()
        self.val_sets: list[ValSetup] = build_val_sets(cfg)
        self.train_set = DATASETS.build(
            cfg.data.train.dataset,
            "data.train.dataset",
            scale=cfg.scale,
            skip_corrupt=cfg.data.skip_corrupt,
            degrade_on=cfg.data.degrade_on,
        )
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
        networks, state = load_checkpoint(path)
        for name, module in self.task.networks.items():
            if name not in networks:
                raise RestorekitError(f"{path}: checkpoint has no weights for {name}")
            module.load_state_dict(networks[name])
        self.task.load_state_dict(state["task"])
        self.best.load_state_dict(state["best"])
        self.it = int(state["iter"])
        self.samples = int(state["samples"])
        set_rng_state(state["rng"])
        self.reporter.log(f"resumed from {path} at iteration {self.it}")

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
            seed=self.cfg.seed,
            start=self.samples,
            rank=self.info.rank,
            world_size=self.info.world_size,
        )
        loader = DataLoader(
            self.train_set,
            batch_size=lcfg.batch_size,
            sampler=sampler,
            num_workers=lcfg.num_workers,
            pin_memory=lcfg.pin_memory and self.device.type == "cuda",
            persistent_workers=lcfg.num_workers > 0,
            prefetch_factor=4 if lcfg.num_workers > 0 else None,
            generator=torch.Generator(),  # keeps the loader off the global RNG (exact resume)
        )
        use_cuda = lcfg.prefetch == "cuda" or (lcfg.prefetch == "auto" and self.device.type == "cuda")
        return CUDAPrefetcher(loader, self.device) if use_cuda else CPUPrefetcher(loader)

    # ----------------------------------------------------------------- the loop
    def fit(self) -> Path | None:
        cfg, tcfg, log = self.cfg, self.tcfg, self.reporter.log
        total = tcfg.total_iter
        arch = cfg.network_g["type"]
        log(f"training {cfg.name}: task {cfg.task}, {arch}, {total} iterations on {self.device}")
        if self.it >= total:
            log(f"already at iteration {self.it} of {total}; nothing to train")
        prefetcher = self._train_loader()
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
            scalars = self.task.train_step(batches, self.it)
            self.reporter.report(scalars)
            bar.update(1)
            if self.it % cfg.logger.print_freq == 0 or self.it == total:
                now = time.perf_counter()
                self._log_train(now - t_log, self.it - it_log, bar)
                t_log, it_log = now, self.it
            if cfg.val.freq and self.it % cfg.val.freq == 0 and self.it != total:
                self.validate()
            if self.it % cfg.logger.save_checkpoint_freq == 0 or self.it == total:
                self.save()
        bar.close()
        if self.val_sets:
            self.validate(baseline=cfg.val.baseline)
        path = self._export()
        self.reporter.close()
        return path

    def _next(self, prefetcher: Any) -> Any:
        batch = prefetcher.next()
        if batch is None:  # the sampler is infinite; None means the loader died
            raise RestorekitError("the training data loader stopped unexpectedly")
        return batch

    def _log_train(self, seconds: float, iters: int, bar: tqdm) -> None:
        extra: dict[str, float] = {"it_per_s": iters / max(seconds, 1e-9)}
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
        """Evaluate every set (and, when asked, a non-learned baseline beside it)."""
        self.task.train(False)
        rows: dict[str, dict[str, float]] = {}
        for vset in self.val_sets:
            save_dir = None
            if vset.cfg.save_images and self.info.is_main:
                save_dir = self.run_dir / "visualization" / vset.name / f"iter_{self.it}"
            result = evaluate(self.task.eval_step, vset, self.device, self.info, save_dir)
            rows[vset.name] = result.means
            if self.info.is_main:
                write_result(self.run_dir / "val" / vset.name, f"iter_{self.it}", result)
                self.reporter.write_scalars(self.it, result.means, prefix=f"val/{vset.name}")
                self._log_sample_images(vset)
            self.best.update(vset.name, result.means, self.it)
            if baseline is not None:
                base = evaluate(lambda b: self.task.baseline_step(b, baseline), vset, self.device, self.info)
                rows[f"{vset.name}/{baseline}"] = base.means
        self.reporter.log(f"validation at iteration {self.it}\n{format_table(rows)}")
        self.task.train(True)
        return rows

    def _log_sample_images(self, vset: ValSetup) -> None:
        """The set's first image (output above GT) to TensorBoard / W&B, when they are on."""
        if self.reporter.tb is None and self.reporter.wandb is None:
            return
        sample = vset.dataset[0]
        batch = {k: v[None].to(self.device) for k, v in sample.items() if torch.is_tensor(v)}
        with torch.no_grad():
            out = self.task.eval_step(batch)
        self.reporter.add_images(self.it, f"val/{vset.name}/output_gt", torch.cat([out["output"], out["gt"]]))

    def _state(self) -> dict[str, Any]:
        return {
            "iter": self.it,
            "samples": self.samples,
            "world_size": self.info.world_size,
            "task": self.task.state_dict(),
            "best": self.best.state_dict(),
            "rng": rng_state(),
        }

    def save(self) -> None:
        if self.info.is_main:
            save_checkpoint(self.run_dir, self.it, self.task.networks, self._state(), self.config_yaml)
            keep = set()
            if self.cfg.val.save_best and self.best.best:
                first = next(iter(self.best.best.values()))
                keep.add(int(first["iter"]))
            prune_checkpoints(self.run_dir, self.cfg.logger.keep_last, keep)
        barrier(self.info)
        if os.environ.get(_KILL_AFTER_SAVE) == str(self.it):
            os.kill(os.getpid(), signal.SIGKILL)

    def _export(self) -> Path | None:
        if not self.info.is_main:
            return None
        path = self.run_dir / "model.safetensors"
        export_network(self.task.export_network(), path)
        self.reporter.log(f"exported {path}")
        return path


def find_resume(run_dir: Path, resume: str | None) -> Path | None:
    """``--resume auto`` → the newest complete checkpoint (None when there is none yet)."""
    if resume is None:
        return None
    if resume == "auto":
        return latest_checkpoint(run_dir)
    path = Path(resume)
    if not path.is_dir():
        raise RestorekitError(f"--resume {resume}: no such checkpoint folder")
    return path
