"""``restorekit metrics fid | fid-stats | kid``: set-level metrics between image folders."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from restorekit.errors import RestorekitError


def wants_cuda(device: str) -> bool:
    import torch

    return device == "cuda" or (device == "auto" and torch.cuda.is_available())


def add_parsers(sub: Any) -> None:
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
    if name == "cuda" and not wants_cuda("cuda"):
        raise RestorekitError("--device cuda: no CUDA device is available")
    return "cuda" if wants_cuda(name) else "cpu"


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
