"""``tcm compare``: one PNG with the same crop from the original, TCM and classical codecs at
about the same bpp (binary search on quality; for TCM the model quality closest to --bpp)."""

from __future__ import annotations

import argparse
import sys

from tcmcodec.errors import TcmError

HELP = "side-by-side crops of TCM, JPEG, WebP and AVIF at about the same bpp"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE", help="input image")
    parser.add_argument(
        "--model",
        required=True,
        metavar="M",
        help="TCM model name (or checkpoint=PATH); 'none' leaves TCM out",
    )
    parser.add_argument("--bpp", type=float, required=True, metavar="B", help="target bits per pixel")
    parser.add_argument("--crop", default=None, metavar="X,Y,W,H", help="crop to show (default: centred 256x256)")
    parser.add_argument(
        "--codecs",
        default="jpeg,webp,avif",
        help="classical codecs to show next to TCM (default: %(default)s)",
    )
    parser.add_argument("--out", required=True, metavar="FILE.png", help="output PNG")


def run(args: argparse.Namespace) -> int:
    from tcmcodec.evaluate import compare
    from tcmcodec.evaluate.codecs import get_codec, parse_codec_list
    from tcmcodec.evaluate.runner import load_rgb

    if not args.out.lower().endswith(".png"):
        raise TcmError("--out must be a .png file")
    codecs = []
    if args.model.strip().lower() != "none":
        codecs.append(get_codec(f"tcm:{args.model}"))
    codecs += [get_codec(s) for s in parse_codec_list(args.codecs)]
    if not codecs:
        raise TcmError("nothing to compare: give --model and/or --codecs")
    rgb = load_rgb(args.image)
    matches = compare.make_comparison(rgb, args.bpp, codecs, args.out, crop=args.crop)
    for m in matches:
        print(f"{m.codec.label:>18}  q={m.quality!s:>6}  {m.bpp:.3f} bpp  {m.psnr:.2f} dB")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0
