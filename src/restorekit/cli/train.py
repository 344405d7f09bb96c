"""``restorekit train`` and ``restorekit validate``: thin wrappers of ``restorekit.engine.run``."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from typing import Any

from restorekit.errors import ConfigError, RestorekitError


def add_parsers(sub: Any) -> None:
    t = sub.add_parser("train", help="train from a YAML config")
    t.add_argument("-c", "--config", required=True, help="YAML config file")
    t.add_argument("overrides", nargs="*", metavar="key.path=value", help="config overrides")
    t.add_argument("--resume", metavar="auto|PATH", help="continue the newest (auto) or a given checkpoint")
    t.add_argument(
        "--allow-config-change",
        action="store_true",
        help="resume although seed, training data/batch or process count changed (not exact)",
    )
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    t.add_argument("--nproc", type=int, help="run N processes with torchrun (DDP) on this machine")
    t.set_defaults(func=cmd_train)

    v = sub.add_parser("validate", help="evaluate weights on the config's validation sets")
    v.add_argument("-c", "--config", required=True)
    v.add_argument("overrides", nargs="*", metavar="key.path=value")
    v.add_argument("--weights", required=True, help=".safetensors / .pth file or a checkpoint folder")
    v.add_argument(
        "--baseline",
        choices=["bicubic", "input"],
        help="also evaluate a non-learned baseline: bicubic upscaling, or the degraded input (scale 1)",
    )
    v.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    v.add_argument("--report", metavar="DIR", help="write an HTML report (tables, crops, curves) to DIR")
    v.add_argument("--run", metavar="DIR", help="run folder whose stats.jsonl the report plots")
    v.set_defaults(func=cmd_validate)


def cmd_train(args: argparse.Namespace) -> int:
    from restorekit.config import dump_config, load_config
    from restorekit.engine.run import train_run
    from restorekit.engine.validation import check_config

    if args.nproc:
        return launch_torchrun(args.nproc, args.argv)
    cfg = load_config(args.config, args.overrides)
    check_config(cfg, args.config)
    if args.dry_run:
        print(dump_config(cfg), end="")
        return 0
    train_run(cfg, resume=args.resume, source=args.config, allow_config_change=args.allow_config_change)
    return 0


def launch_torchrun(nproc: int, argv: list[str]) -> int:
    """``restorekit train --nproc N ...`` → ``torchrun --standalone --nproc_per_node N -m restorekit ...``."""
    from restorekit.engine.distributed import parent_death_setter

    if nproc < 1:
        raise RestorekitError(f"--nproc: expected a positive number of processes, got {nproc}")
    rest = list(argv)
    for i, arg in enumerate(rest):
        if arg == "--nproc":
            del rest[i : i + 2]
            break
        if arg.startswith("--nproc="):
            del rest[i]
            break
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    # torchrun's agent gets SIGTERM when this process dies (even by SIGKILL) and then stops its
    # workers, which in turn watch the agent (engine.distributed.watch_parent): no orphans.
    arm = parent_death_setter()
    me = os.getpid()

    def in_child() -> None:
        if arm is not None:
            arm()
        if os.getppid() != me:  # this launcher died between fork and arming
            os._exit(1)

    return subprocess.call([*cmd, "-m", "restorekit", *rest], preexec_fn=in_child)


def cmd_validate(args: argparse.Namespace) -> int:
    from restorekit.config import load_config
    from restorekit.engine.distributed import cleanup, init_distributed
    from restorekit.engine.run import dist_timeout, validate_run, wants_cuda
    from restorekit.engine.validation import check_config, format_table

    cfg = load_config(args.config, args.overrides)
    if args.baseline == "input" and getattr(cfg, "scale", 1) != 1:  # before any evaluation runs
        raise ConfigError(
            f"--baseline input: needs scale 1, {args.config} has scale {cfg.scale} (use bicubic)"
        )
    check_config(cfg, args.config)  # config errors come before any report folder is looked at
    if not cfg.data.val:
        raise ConfigError(f"{args.config}: data.val: no validation sets to evaluate")
    report = None
    if args.report or args.run:
        from restorekit.engine.report import ValidationReport, find_run_dir

        if not args.report:
            raise RestorekitError("--run DIR only makes sense with --report DIR")
        run_dir = find_run_dir(args.weights, args.run)
        report = ValidationReport(args.report, args.config, args.weights, run_dir, args.baseline)
    info = init_distributed("cuda" if wants_cuda(cfg.device) else "cpu", timeout=dist_timeout(cfg))
    try:
        results = validate_run(cfg, args.weights, args.baseline, report, source=args.config, info=info)
    finally:
        cleanup(info)
    means = {name: res.means for name, res in results.items()}
    if info.is_main:
        print(json.dumps(means) if args.json else format_table(means))
        for name, res in results.items():  # what each number means, on stderr beside --json
            for line in [*res.notes, *(f"{m}: {p}" for m, p in res.protocols.items())]:
                print(f"note: {name}: {line}", file=sys.stderr if args.json else sys.stdout)
        if report:
            page = report.write(means)
            print(f"wrote {page}", file=sys.stderr if args.json else sys.stdout)
    return 0
