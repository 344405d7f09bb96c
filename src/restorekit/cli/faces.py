"""``restorekit faces``: detect, align, restore and paste back faces in photos and videos.

The flags follow GFPGAN's ``inference_gfpgan.py`` where it has one (``--upscale``, ``--aligned``,
``--only-center-face``, ``--ext``, ``--suffix``, the output layout), with its complaints fixed:
every weight file is a path (nothing is downloaded), ``--fidelity`` really blends, the CPU never
runs half precision, and videos are taken. The work is in ``restorekit.faces.files``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from restorekit.errors import ConfigError

#: short detector names as the issue and GFPGAN's users write them
DETECTOR_ALIASES = {"retinaface": "retinaface_resnet50", "retinaface_mobile": "retinaface_mobile0.25"}


def add_parsers(sub: Any) -> None:
    f = sub.add_parser("faces", help="restore faces in photos and videos (GFPGAN / RestoreFormer weights)")
    f.add_argument("-i", "--input", required=True, help="image or video file, folder, or quoted glob")
    f.add_argument(
        "-o", "--output", required=True, help="output folder (restored_imgs/, restored_videos/, ...)"
    )
    f.add_argument(
        "--weights", required=True, help="face model: GFPGANv1.pth, GFPGANv1.3/1.4.pth, RestoreFormer.pth"
    )
    f.add_argument("--upscale", type=float, default=2, help="output scale of the whole image (2)")
    f.add_argument("--bg-weights", help="restorekit SR model for the background, tiled (default: Lanczos)")
    f.add_argument("--detector", default="mtcnn", help="mtcnn | retinaface | retinaface_mobile0.25 (mtcnn)")
    f.add_argument("--detector-weights", help="MTCNN folder (default: facenet-pytorch's) or RetinaFace .pth")
    f.add_argument("--conf-threshold", type=float, help="minimum detector confidence (detector's own)")
    f.add_argument("--only-center-face", action="store_true", help="restore only the face nearest the centre")
    f.add_argument("--largest", action="store_true", help="restore only the largest face")
    f.add_argument("--aligned", action="store_true", help="inputs are already aligned faces (no detection)")
    f.add_argument("--fidelity", type=float, default=0.0, help="0: restored face .. 1: the input face (0)")
    f.add_argument("--no-color-fix", action="store_true", help="keep the network's colours (no Lab mean fix)")
    f.add_argument("--parse-weights", help="ParseNet parsing_parsenet.pth: face-shaped paste mask")
    f.add_argument(
        "--ext", default="auto", choices=["auto", "png", "jpg"], help="image output format (auto: input's)"
    )
    f.add_argument("--suffix", help="NAME_SUFFIX.ext instead of NAME.ext, as GFPGAN")
    f.add_argument(
        "--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"], help="auto: GPU half"
    )
    f.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    f.add_argument("--batch", type=int, help="faces per forward pass (default: 4 on a GPU, 1 on the CPU)")
    f.add_argument("--tile", type=int, default=512, help="background tile side; 0: whole image (512)")
    f.add_argument("--save-faces", action="store_true", help="also write cropped_faces/ and restored_faces/")
    f.add_argument("--compare", action="store_true", help="also write cmp/: input crop | restored face")
    f.add_argument("--json", metavar="PATH", help="write a summary: faces per image, boxes, scores, counts")
    f.add_argument("--overwrite", action="store_true", help="replace existing output files")
    f.add_argument("--quiet", action="store_true", help="no progress bars and no summary line")
    f.set_defaults(func=cmd_faces)


def detector_name(name: str) -> str:
    """``retinaface`` → ``retinaface_resnet50``; full names as ``restorekit.faces.detect.DETECTORS``."""
    from restorekit.errors import did_you_mean
    from restorekit.faces.detect import DETECTORS

    full = DETECTOR_ALIASES.get(name, name)
    if full not in DETECTORS:
        choices = [*DETECTORS, *DETECTOR_ALIASES]
        raise ConfigError(
            f"--detector {name}: expected one of {', '.join(choices)}{did_you_mean(name, choices)}"
        )
    return full


def check_args(args: argparse.Namespace) -> None:
    if not 0.0 <= args.fidelity <= 1.0:
        raise ConfigError(
            f"--fidelity {args.fidelity}: expected a number from 0 (restored) to 1 (input face)"
        )
    if not args.upscale >= 1:
        raise ConfigError(f"--upscale {args.upscale}: expected a scale >= 1")
    if args.batch is not None and args.batch < 1:
        raise ConfigError(f"--batch {args.batch}: expected a whole number >= 1")
    if args.tile < 0:
        raise ConfigError(f"--tile {args.tile}: expected pixels >= 0 (0: whole image)")
    if args.suffix is not None and ("/" in args.suffix or "\\" in args.suffix):
        raise ConfigError(f"--suffix {args.suffix!r}: must not contain a path separator")
    for flag, value in (("--weights", args.weights), ("--bg-weights", args.bg_weights),
                        ("--parse-weights", args.parse_weights)):  # fmt: skip
        if value is not None and not Path(value).exists():
            raise ConfigError(f"{flag} {value}: file does not exist")


def cmd_faces(args: argparse.Namespace) -> int:
    from restorekit.faces.files import collect_face_inputs, plan, restore_faces_files, write_summary

    check_args(args)
    detector = detector_name(args.detector)
    out = Path(args.output)
    images, videos = collect_face_inputs(args.input)
    crops_named = bool(args.save_faces or args.compare)
    img_pairs, vid_pairs = plan(images, videos, out, args.ext, args.suffix, args.overwrite, crops_named)
    if vid_pairs and crops_named and not args.quiet:
        note = "note: --save-faces / --compare apply to images only; videos get restored_videos/"
        print(note, file=sys.stderr)
    summary_path = Path(args.json) if args.json else None
    if summary_path is not None and summary_path.exists() and not args.overwrite:
        raise ConfigError(f"{summary_path}: already exists; pass --overwrite to replace")
    from restorekit.faces.pipeline import load_face_restorer  # torch, the networks: after the checks

    restorer = load_face_restorer(
        args.weights, upscale=args.upscale, bg_weights=args.bg_weights, detector=detector,
        detector_weights=args.detector_weights, only_center_face=args.only_center_face,
        largest=args.largest, aligned=args.aligned, fidelity=args.fidelity,
        color_fix=not args.no_color_fix, parse_weights=args.parse_weights, device=args.device,
        precision=args.precision, batch=args.batch, tile=args.tile, conf_threshold=args.conf_threshold,
    )  # fmt: skip
    summary = restore_faces_files(
        restorer, img_pairs, vid_pairs, out, forced_ext=args.ext != "auto", suffix=args.suffix,
        save_faces=args.save_faces, compare=args.compare, overwrite=args.overwrite, quiet=args.quiet,
    )  # fmt: skip
    data = summary.as_dict({
        "weights": args.weights, "upscale": args.upscale, "detector": detector, "fidelity": args.fidelity,
        "aligned": args.aligned, "color_fix": not args.no_color_fix, "bg_weights": args.bg_weights,
    })  # fmt: skip
    if summary_path is not None:
        write_summary(summary_path, data, args.overwrite)
    if not args.quiet:
        c = data["counts"]
        line = f"restored {c['faces']} face(s) in {c['images']} image(s)"
        if c["images_without_faces"]:
            line += f" ({c['images_without_faces']} without a face: upscaled only)"
        if c["failed_faces"]:
            line += f", {c['failed_faces']} failed (kept as input)"
        if c["videos"]:
            line += f"; {c['videos']} video(s), {c['frames']} frames, {c['video_faces']} face(s)"
        print(f"{line}; wrote to {out} in {data['elapsed_s']:.1f} s")
    return 0
