"""``restorekit data ...`` and ``restorekit config ...``: data-set and config tools."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from restorekit.errors import RestorekitError


def add_parsers(sub: Any) -> None:
    n = sub.add_parser("new", help="write a complete, commented config for your data (--list: templates)")
    n.add_argument("template", nargs="?", help="lightweight-gan | sr")
    n.add_argument("--list", action="store_true", help="list the templates")
    n.add_argument("--data", help="folder of training images")
    n.add_argument("--image-size", type=int, default=256, help="lightweight-gan: image side (256)")
    n.add_argument("--scale", type=int, default=2, help="sr: upscaling factor (2)")
    n.add_argument("--name", help="run name (default: the data folder's name)")
    n.add_argument("-o", "--output", help="the config file to write")
    n.add_argument("--overwrite", action="store_true")
    n.set_defaults(func=cmd_new)
    k = sub.add_parser("checkpoints", help="checkpoint tools").add_subparsers(metavar="ACTION")
    kl = k.add_parser("list", help="each checkpoint of a run: iteration, time, metrics; the best marked")
    kl.add_argument("run", metavar="RUN_DIR")
    kl.add_argument("--json", action="store_true", help="one JSON object per line")
    kl.set_defaults(func=cmd_checkpoints_list)

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
    mf = d.add_parser("make-faces", help="build the face toy set from photos in installed packages")
    mf.add_argument("--root", default="datasets/faces")
    mf.add_argument("--size", type=int, default=64, help="face side in pixels (64)")
    mf.add_argument("--seed", type=int, default=0)
    mf.set_defaults(func=cmd_make_faces)
    fl = d.add_parser(
        "face-landmarks", help="write GFPGAN's eye/mouth landmarks file for a folder of aligned faces"
    )
    fl.add_argument("faces_dir", metavar="FACES_DIR", help="aligned square faces (any side)")
    fl.add_argument("-o", "--output", required=True, help="the .pth file to write")
    fl.add_argument("--size", type=int, default=512, help="face side the boxes are given for: out_size (512)")
    fl.add_argument("--detector", default="mtcnn", help="mtcnn | retinaface_resnet50 | retinaface_mobile0.25")
    fl.add_argument("--detector-weights", help="RetinaFace: facexlib's detection_*.pth (MTCNN: a folder)")
    fl.add_argument("--from", dest="source", metavar="GFPGAN_FILE", help="take the entries from this file")
    fl.add_argument("--keys", default="stem", choices=("stem", "index"), help="entry names (stem)")
    fl.add_argument("--device", default="cpu")
    fl.add_argument("--force", action="store_true", help="replace an existing output file")
    fl.set_defaults(func=cmd_face_landmarks)

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
    state = f"wrote {written} of" if written else "already complete:"
    print(f"shapes in {args.root}: {state} {args.num} images of {args.size}x{args.size}")
    return 0


def cmd_make_faces(args: argparse.Namespace) -> int:
    from restorekit.faces.toyset import make_faces

    n = make_faces(Path(args.root), args.size, args.seed)
    print(f"faces in {args.root}: {n['train']} training, {n['val']} validation faces of {args.size} px")
    return 0


def cmd_face_landmarks(args: argparse.Namespace) -> int:
    from restorekit.faces.landmarks import build_landmarks

    summary = build_landmarks(
        args.faces_dir, args.output, args.size, args.detector, args.detector_weights,
        args.source, args.keys, args.force, args.device,
    )  # fmt: skip
    print(summary.line())
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


def cmd_new(args: argparse.Namespace) -> int:
    from restorekit.config.templates import TEMPLATES, render_template

    if args.list or not args.template:
        for name, what in TEMPLATES.items():
            print(f"{name:<16} {what}")
        return 0 if args.list else 2
    if not args.data or not args.output:
        raise RestorekitError(f"new {args.template}: --data FOLDER and -o OUT.yml are required")
    out = Path(args.output)
    if out.exists() and not args.overwrite:
        raise RestorekitError(f"{out}: already exists; pass --overwrite to replace it")
    if not Path(args.data).is_dir():
        raise RestorekitError(f"--data {args.data}: not a folder of images")
    text = render_template(args.template, args.data, str(out), args.name, args.image_size, args.scale)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise RestorekitError(f"{out}: cannot be written ({exc.strerror or exc})") from None
    print(f"wrote {out}; train with: restorekit train -c {out}")
    return 0


def cmd_checkpoints_list(args: argparse.Namespace) -> int:
    from restorekit.engine.runinfo import checkpoint_rows

    rows = checkpoint_rows(Path(args.run))
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    for row in rows:
        metrics = "  ".join(f"{k} {v:.4g}" for k, v in row["metrics"].items())
        mark = "  <- best" if row["best"] else ""
        print(f"iter {row['iter']:>8d}  {row['time']}  {row['state']:<7}  {metrics}{mark}")
    return 0
