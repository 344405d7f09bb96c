"""The ``restorekit`` command line: train | validate | infer | data | config | metrics.

Every user error (a config key, a file, a value) is a ``RestorekitError`` that is printed as one
line, ``error: ...``, with exit status 2; ``--debug`` shows the traceback instead. Heavy modules
are imported inside the commands so ``restorekit --help`` and ``config schema`` start instantly.
"""

from __future__ import annotations

import argparse
import gc
import json
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from restorekit.errors import ConfigError, RestorekitError

if TYPE_CHECKING:
    from restorekit.config import Config


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except RestorekitError as exc:
        if args.debug:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def one_line(exc: BaseException) -> str:
    """The user-facing line of an error, also when a DataLoader worker re-raised it.

    torch re-raises a worker's exception as the same type with the worker's whole traceback as
    its message; the original message is the last line, after ``module.ErrorType: ``.
    """
    text = str(exc)
    if "Original Traceback" not in text:
        return text
    last = [line for line in text.splitlines() if line.strip()][-1]
    prefix = f"{type(exc).__module__}.{type(exc).__qualname__}: "
    for candidate in (prefix, f"{type(exc).__qualname__}: "):
        if last.startswith(candidate):
            return last[len(candidate) :]
    return last.split(": ", 1)[-1]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="restorekit", description=__doc__.splitlines()[0])
    p.add_argument("--debug", action="store_true", help="show tracebacks instead of one-line errors")
    sub = p.add_subparsers(metavar="COMMAND")

    t = sub.add_parser("train", help="train from a YAML config")
    t.add_argument("-c", "--config", required=True, help="YAML config file")
    t.add_argument("overrides", nargs="*", metavar="key.path=value", help="config overrides")
    t.add_argument("--resume", metavar="auto|PATH", help="continue the newest (auto) or a given checkpoint")
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    t.add_argument("--nproc", type=int, help="run N processes with torchrun (DDP) on this machine")
    t.set_defaults(func=cmd_train)

    v = sub.add_parser("validate", help="evaluate weights on the config's validation sets")
    v.add_argument("-c", "--config", required=True)
    v.add_argument("overrides", nargs="*", metavar="key.path=value")
    v.add_argument("--weights", required=True, help=".safetensors / .pth file or a checkpoint folder")
    v.add_argument("--baseline", choices=["bicubic"], help="also evaluate a non-learned baseline")
    v.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    v.add_argument("--report", metavar="DIR", help="write an HTML report (tables, crops, curves) to DIR")
    v.add_argument("--run", metavar="DIR", help="run folder whose stats.jsonl the report plots")
    v.set_defaults(func=cmd_validate)
    _add_metrics_parser(sub)

    i = sub.add_parser("infer", help="restore / upscale images (tiled, any size)")
    i.add_argument("--weights", required=True, help=".safetensors, official .pth, or checkpoint/run folder")
    i.add_argument("-i", "--input", required=True, help="file, folder or quoted glob ('dir/*.png')")
    i.add_argument("-o", "--output", required=True, help="output file (for one image) or folder")
    i.add_argument("--scale", type=float, help="output scale if not the network's (final resize)")
    i.add_argument("--tile", type=int, default=512, help="tile side in input pixels; 0: whole images (512)")
    i.add_argument("--tile-overlap", type=int, default=32, help="pixels shared by neighbouring tiles (32)")
    i.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "fp16", "bf16"],
        help="auto: GPU half, CPU fp32",
    )
    i.add_argument("--batch", type=int, default=1, help="tiles per forward pass (1)")
    i.add_argument(
        "--ext", default="auto", choices=["auto", "png", "jpg"], help="output format (auto: input's)"
    )
    i.add_argument("--alpha", default="bicubic", choices=["bicubic", "network"], help="how alpha is upscaled")
    i.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    i.add_argument("--raw", action="store_true", help="with a checkpoint folder: the non-EMA weights")
    i.add_argument("--overwrite", action="store_true", help="replace existing output files")
    i.add_argument("--quiet", action="store_true", help="no progress bar and no summary")
    i.set_defaults(func=cmd_infer)

    x = sub.add_parser("export", help="write a self-describing .safetensors and/or ONNX model")
    x.add_argument("source", help="checkpoint folder, run folder (newest checkpoint) or weights file")
    x.add_argument("-o", "--output", help="output .safetensors (architecture in its metadata)")
    x.add_argument("--onnx", metavar="OUT.onnx", help="also (or only) write ONNX, dynamic height/width")
    x.add_argument("--raw", action="store_true", help="export the raw weights instead of the EMA copy")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset (17)")
    x.add_argument("--overwrite", action="store_true", help="replace existing output files")
    x.set_defaults(func=cmd_export)

    d = sub.add_parser("data", help="data set tools").add_subparsers(metavar="ACTION")
    lm = d.add_parser("make-lmdb", help="pack a folder of images into an LMDB (BasicSR layout)")
    lm.add_argument("folder")
    lm.add_argument("lmdb_path")
    lm.add_argument("--compress-level", type=int, default=1)
    lm.set_defaults(func=cmd_make_lmdb)
    ms = d.add_parser("make-sample", help="build the bundled sample data set from scikit-image's images")
    ms.add_argument("--root", default="datasets/sample")
    ms.set_defaults(func=cmd_make_sample)

    c = sub.add_parser("config", help="config tools").add_subparsers(metavar="ACTION")
    cs = c.add_parser("schema", help="print the JSON schema of the config (for editors)")
    cs.set_defaults(func=cmd_schema)
    ci = c.add_parser("import-basicsr", help="convert a BasicSR option file into a restorekit config")
    ci.add_argument("option")
    ci.add_argument("-o", "--output", required=True)
    ci.add_argument("--overwrite", action="store_true")
    ci.set_defaults(func=cmd_import_basicsr)
    return p


# --------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    from restorekit.config import dump_config, load_config

    if args.nproc:
        return _launch_torchrun(args.nproc, args.argv)
    cfg = load_config(args.config, args.overrides)
    _check_parts(cfg, args.config)
    if args.dry_run:
        print(dump_config(cfg), end="")
        return 0
    if cfg.train is None or cfg.data.train is None:
        raise RestorekitError(f"{args.config}: train and data.train: both sections are needed to train")

    from restorekit.engine.distributed import barrier, cleanup, init_distributed
    from restorekit.engine.trainer import Trainer, find_resume

    run_dir = Path(cfg.experiments_root) / cfg.name
    info = init_distributed("cuda" if _wants_cuda(cfg.device) else "cpu")
    try:
        resume = find_resume(run_dir, args.resume)
        occupied = run_dir.exists() and any(run_dir.iterdir())
        barrier(info)  # every rank has looked before rank 0 creates anything
        if args.resume is None and occupied:
            raise RestorekitError(
                f"{run_dir}: experiment folder already exists; continue it with --resume auto, "
                f"or start a new run with another name (name=NEW)"
            )
        created = not run_dir.exists()
        if info.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(dump_config(cfg), encoding="utf-8")
        try:
            trainer = Trainer(cfg, run_dir, resume=resume, info=info)
        except BaseException:
            # A run that failed to start (missing weights, bad data...) leaves no folder behind,
            # so fixing the cause and running the same command again just works.
            if created and info.is_main:
                shutil.rmtree(run_dir, ignore_errors=True)
            raise
        trainer.fit()
        barrier(info)
        # Free DDP's state while the process group still exists: tearing the group down first
        # can hang gloo at exit (pytorch/pytorch#75097).
        del trainer
        gc.collect()
    finally:
        cleanup(info)
    return 0


def _wants_cuda(device: str) -> bool:
    import torch

    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


def _launch_torchrun(nproc: int, argv: list[str]) -> int:
    """``restorekit train --nproc N ...`` → ``torchrun --standalone --nproc_per_node N -m restorekit ...``."""
    import subprocess

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
    return subprocess.call([*cmd, "-m", "restorekit", *rest])


def _check_parts(cfg: Config, source: str) -> None:
    """Config-time checks of every named part (task, network, losses, datasets, metrics)."""
    import restorekit.archs
    import restorekit.data
    import restorekit.losses
    import restorekit.tasks  # noqa: F401  (registration)
    from restorekit.engine.trainer import check_train_data
    from restorekit.engine.validation import check_val_sets
    from restorekit.registry import TASKS

    try:
        TASKS.get(cfg.task, "task").check_config(cfg)
        check_train_data(cfg)
        check_val_sets(cfg)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


# --------------------------------------------------------------------------- validate
def cmd_validate(args: argparse.Namespace) -> int:
    import torch

    from restorekit.config import load_config
    from restorekit.engine.distributed import cleanup, init_distributed
    from restorekit.engine.trainer import pick_device
    from restorekit.engine.validation import build_val_sets, evaluate, format_table
    from restorekit.registry import TASKS

    cfg = load_config(args.config, args.overrides)
    _check_parts(cfg, args.config)
    if not cfg.data.val:
        raise ConfigError(f"{args.config}: data.val: no validation sets to evaluate")
    cfg = cfg.model_copy(update={"train": None, "pretrained": None})
    report = None
    if args.report or args.run:
        from restorekit.engine.report import ValidationReport, find_run_dir

        if not args.report:
            raise RestorekitError("--run DIR only makes sense with --report DIR")
        run_dir = find_run_dir(args.weights, args.run)
        report = ValidationReport(args.report, args.config, args.weights, run_dir, args.baseline)
    info = init_distributed("cuda" if _wants_cuda(cfg.device) else "cpu")
    try:
        device = pick_device(cfg.device, info)
        task = TASKS.get(cfg.task, "task")(cfg, device)
        load_into(task.networks["net_g"], args.weights)
        task.train(False)
        results: dict[str, dict[str, float]] = {}
        for vset in build_val_sets(cfg):
            with torch.inference_mode():
                crops = report.collector() if report else None
                res = evaluate(task.eval_step, vset, device, info, collect=crops)
                results[vset.name] = res.means
                base = None
                if args.baseline:
                    step = lambda b: task.baseline_step(b, args.baseline)  # noqa: E731
                    base = evaluate(step, vset, device, info)
                    results[f"{vset.name}/{args.baseline}"] = base.means
                if report:
                    report.add(vset.name, res, base)
    finally:
        cleanup(info)
    if info.is_main:
        print(json.dumps(results) if args.json else format_table(results))
        if report:
            page = report.write(results)
            print(f"wrote {page}", file=sys.stderr if args.json else sys.stdout)
    return 0


def load_into(net: object, weights: str) -> None:
    """Load a weights file (or a checkpoint folder: its EMA weights if any) into ``net``."""
    from restorekit.archs.detect import load_weights_file
    from restorekit.errors import WeightsError

    path = Path(weights)
    if path.is_dir():
        candidates = [path / "net_g_ema.safetensors", path / "net_g.safetensors"]
        found = [c for c in candidates if c.is_file()]
        if not found:
            raise WeightsError(f"{path}: folder has neither net_g_ema.safetensors nor net_g.safetensors")
        path = found[0]
    state = load_weights_file(path)
    result = net.load_state_dict(state, strict=False)  # type: ignore[attr-defined]
    if result.missing_keys or result.unexpected_keys:
        raise WeightsError(
            f"{path}: weights do not fit network_g (missing keys: {result.missing_keys[:3]}, "
            f"unexpected keys: {result.unexpected_keys[:3]})"
        )


# --------------------------------------------------------------------------- infer
def cmd_infer(args: argparse.Namespace) -> int:
    from restorekit.inference.files import upscale_files

    written = upscale_files(
        args.weights, args.input, args.output, scale=args.scale, tile=args.tile,
        tile_overlap=args.tile_overlap, precision=args.precision, batch=args.batch, ext=args.ext,
        alpha=args.alpha, device=args.device, overwrite=args.overwrite, quiet=args.quiet, raw=args.raw,
    )  # fmt: skip
    if not args.quiet:
        print(f"wrote {len(written)} image(s) to {args.output}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from restorekit.inference.export import export_model

    lines = export_model(
        args.source,
        args.output,
        onnx_path=args.onnx,
        raw=args.raw,
        overwrite=args.overwrite,
        opset=args.opset,
    )
    for line in lines:
        print(line)
    return 0


# --------------------------------------------------------------------------- data / config
def cmd_make_lmdb(args: argparse.Namespace) -> int:
    from restorekit.data.lmdb_io import make_lmdb

    n = make_lmdb(args.folder, args.lmdb_path, compress_level=args.compress_level)
    print(f"packed {n} images into {args.lmdb_path}")
    return 0


def cmd_make_sample(args: argparse.Namespace) -> int:
    from restorekit.data.sample import make_sample_dataset

    info = make_sample_dataset(Path(args.root))
    state = "created" if info["created"] else "already complete"
    print(
        f"sample data set in {args.root} ({state}): {info['num_train']} training and {info['num_val']} "
        f"validation images, LQ for scales {', '.join(str(s) for s in sorted(info['train_lq']))}"
    )
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from restorekit.config import config_schema

    print(json.dumps(config_schema(), indent=2))
    return 0


def cmd_import_basicsr(args: argparse.Namespace) -> int:
    from restorekit.config.basicsr import import_basicsr_file

    notes = import_basicsr_file(args.option, args.output, overwrite=args.overwrite)
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {args.output}")
    return 0


# --------------------------------------------------------------------------- metrics
def _add_metrics_parser(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser("metrics", help="set-level metrics: FID, KID").add_subparsers(metavar="METRIC")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--weights", help="pt_inception-2015-12-05-6726825d.pth (default: the cache folder)")
        q.add_argument("--batch-size", type=int, default=50)
        q.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        q.add_argument("--dims", type=int, default=2048, choices=[64, 192, 768, 2048], help="feature layer")

    f = m.add_parser("fid", help="FID between two image folders (either may be a .npz statistics file)")
    f.add_argument("path_a", metavar="DIR_A")
    f.add_argument("path_b", metavar="DIR_B|STATS.npz")
    common(f)
    f.add_argument("--json", action="store_true", help='print {"fid": value}')
    f.set_defaults(func=cmd_fid)
    fs = m.add_parser("fid-stats", help="write a folder's FID statistics (pytorch-fid's .npz format)")
    fs.add_argument("folder", metavar="DIR")
    fs.add_argument("-o", "--output", required=True, metavar="OUT.npz")
    common(fs)
    fs.set_defaults(func=cmd_fid_stats)
    k = m.add_parser("kid", help="KID (torch-fidelity's polynomial-kernel MMD) between two image folders")
    k.add_argument("path_a", metavar="DIR_A")
    k.add_argument("path_b", metavar="DIR_B")
    common(k)
    k.add_argument("--subsets", type=int, default=100, help="number of random subsets (default 100)")
    k.add_argument("--subset-size", type=int, help="images per subset (default: 1000, or fewer if needed)")
    k.add_argument("--json", action="store_true", help='print {"kid_mean": ..., "kid_std": ...}')
    k.set_defaults(func=cmd_kid)


def _metric_device(name: str) -> str:
    if name == "cuda" and not _wants_cuda("cuda"):
        raise RestorekitError("--device cuda: no CUDA device is available")
    return "cuda" if _wants_cuda(name) else "cpu"


def cmd_fid(args: argparse.Namespace) -> int:
    from restorekit.metrics.fid import fid_from_paths

    value = fid_from_paths(
        args.path_a, args.path_b, args.weights, args.batch_size, _metric_device(args.device), args.dims
    )
    print(json.dumps({"fid": value}) if args.json else f"FID: {value!r}")
    return 0


def cmd_fid_stats(args: argparse.Namespace) -> int:
    from restorekit.metrics.fid import load_fid_model, save_stats_npz, statistics_of_path

    out = Path(args.output)
    if out.suffix != ".npz":
        raise RestorekitError(f"-o {out}: statistics files end in .npz")
    if out.exists():
        raise RestorekitError(f"-o {out}: already exists; choose another name (nothing is overwritten)")
    if not Path(args.folder).is_dir():
        raise RestorekitError(f"{args.folder}: expected a folder of images")
    device = _metric_device(args.device)
    model = load_fid_model(args.weights, device, args.dims)
    mu, sigma = statistics_of_path(args.folder, model, args.batch_size, device)
    save_stats_npz(out, mu, sigma)
    print(f"wrote {out} (dims {mu.shape[0]})")
    return 0


def cmd_kid(args: argparse.Namespace) -> int:
    from restorekit.data.io import scan_images
    from restorekit.metrics.fid import extract_features, kid, load_fid_model

    for p in (args.path_a, args.path_b):
        if not Path(p).is_dir():
            raise RestorekitError(f"{p}: KID needs two folders of images")
    counts = [len(scan_images(p)) for p in (args.path_a, args.path_b)]
    size = args.subset_size
    if size is None:
        # torch-fidelity stops with an error when a set has fewer images than its default subset
        # size (1000); here the subset size shrinks to the smaller set instead, with a note.
        size = min(1000, *counts)
        if size < 1000:
            print(f"note: KID subset size {size} (fewer than 1000 images in a folder)", file=sys.stderr)
    if not 2 <= size <= min(counts):
        raise RestorekitError(
            f"--subset-size {size}: must be between 2 and the number of images "
            f"({args.path_a}: {counts[0]}, {args.path_b}: {counts[1]})"
        )
    if args.subsets < 1:
        raise RestorekitError(f"--subsets {args.subsets}: must be at least 1")
    device = _metric_device(args.device)
    model = load_fid_model(args.weights, device, args.dims)
    feats = [extract_features(model, p, args.batch_size, device) for p in (args.path_a, args.path_b)]
    mean, std = kid(feats[0], feats[1], num_subsets=args.subsets, subset_size=size)
    print(json.dumps({"kid_mean": mean, "kid_std": std}) if args.json else f"KID: {mean:.6g} ± {std:.6g}")
    return 0
