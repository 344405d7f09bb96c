"""``restorekit infer`` and ``restorekit export``: running and shipping trained networks."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
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
