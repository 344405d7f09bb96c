"""``restorekit infer`` and ``restorekit export``: running and shipping trained networks."""

from __future__ import annotations

import argparse
from typing import Any

from restorekit.errors import RestorekitError


def add_parsers(sub: Any) -> None:
    g = sub.add_parser("generate", help="images, a grid or a latent walk from a trained generator")
    g.add_argument(
        "--weights", required=True, help=".safetensors, run/checkpoint folder, or lightweight-gan model_N.pt"
    )
    g.add_argument("-n", "--num-images", type=int, default=64, help="images to generate (64)")
    g.add_argument("-o", "--output", default="generated", help="folder, grid file, or walk .gif (generated/)")
    g.add_argument("--grid", action="store_true", help="one grid image instead of single images")
    g.add_argument("--seed", type=int, default=0, help="latent i depends on (seed, i) only (0)")
    g.add_argument("--raw", action="store_true", help="the raw generator instead of the EMA copy")
    g.add_argument("--best", action="store_true", help="a run folder's best checkpoint (FID), not its newest")
    g.add_argument("--interpolate", action="store_true", help="a slerp walk through latents, as a GIF")
    g.add_argument("--steps", type=int, default=100, help="frames of the walk (100)")
    g.add_argument("--num", type=int, default=8, help="latents the walk passes through (8)")
    g.add_argument("--frames", action="store_true", help="also write the walk's frames as PNG")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    g.add_argument("--overwrite", action="store_true", help="replace existing output files")
    g.set_defaults(func=cmd_generate)

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
    i.add_argument(
        "--arch-opt", action="append", default=[], metavar="KEY=VALUE",
        help="an architecture argument the weights do not store, e.g. res_scale=0.1 (repeatable)",
    )  # fmt: skip
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
        arch_opts=parse_arch_opts(args.arch_opt),
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


def cmd_generate(args: argparse.Namespace) -> int:
    from restorekit.inference.generate import generate

    written = generate(
        args.weights, args.output, num=args.num_images, seed=args.seed, as_grid=args.grid, raw=args.raw,
        device=args.device, interpolate=args.interpolate, steps=args.steps, points=args.num,
        frames=args.frames, overwrite=args.overwrite, best=args.best,
    )  # fmt: skip
    print(f"wrote {len(written)} file(s): {written[0]}" + (" ..." if len(written) > 1 else ""))
    return 0


def parse_arch_opts(items: list[str]) -> dict[str, Any]:
    """``["res_scale=0.1"]`` → ``{"res_scale": 0.1}`` (values read as YAML scalars, never code)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise RestorekitError(f"--arch-opt {item!r}: expected KEY=VALUE, e.g. res_scale=0.1")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            out[key.strip()] = value
    return out
