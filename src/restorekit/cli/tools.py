"""``restorekit data ...`` and ``restorekit config ...``: data-set and config tools."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parsers(sub: Any) -> None:
    d = sub.add_parser("data", help="data set tools").add_subparsers(metavar="ACTION")
    lm = d.add_parser("make-lmdb", help="pack a folder of images into an LMDB (BasicSR layout)")
    lm.add_argument("folder")
    lm.add_argument("lmdb_path")
    lm.add_argument("--compress-level", type=int, default=1)
    lm.set_defaults(func=cmd_make_lmdb)
    ms = d.add_parser("make-sample", help="build the bundled sample data set from scikit-image's images")
    ms.add_argument("--root", default="datasets/sample")
    ms.set_defaults(func=cmd_make_sample)
    sh = d.add_parser("make-shapes", help="draw a set of shape images (for the generation toy)")
    sh.add_argument("--root", default="datasets/shapes")
    sh.add_argument("-n", "--num", type=int, default=256, help="images (256)")
    sh.add_argument("--size", type=int, default=32, help="side in pixels (32)")
    sh.add_argument("--seed", type=int, default=0)
    sh.set_defaults(func=cmd_make_shapes)

    c = sub.add_parser("config", help="config tools").add_subparsers(metavar="ACTION")
    cs = c.add_parser("schema", help="print the JSON schema of the config (for editors)")
    cs.set_defaults(func=cmd_schema)
    ci = c.add_parser("import-basicsr", help="convert a BasicSR option file into a restorekit config")
    ci.add_argument("option")
    ci.add_argument("-o", "--output", required=True)
    ci.add_argument("--overwrite", action="store_true")
    ci.set_defaults(func=cmd_import_basicsr)


def cmd_make_lmdb(args: argparse.Namespace) -> int:
    from restorekit.data.lmdb_io import make_lmdb

    n = make_lmdb(args.folder, args.lmdb_path, compress_level=args.compress_level)
    print(f"packed {n} images into {args.lmdb_path}")
    return 0


def cmd_make_shapes(args: argparse.Namespace) -> int:
    from restorekit.data.shapes import make_shapes

    written = make_shapes(Path(args.root), args.num, args.size, args.seed)
    state = f"wrote {written}" if written else "already complete:"
    print(f"shapes in {args.root}: {state} {args.num} images of {args.size}x{args.size}")
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
    from restorekit.compat.basicsr import import_basicsr_file

    notes = import_basicsr_file(args.option, args.output, overwrite=args.overwrite)
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {args.output}")
    return 0
