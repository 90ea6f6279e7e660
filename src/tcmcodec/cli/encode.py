"""``tcm encode``: compress images to ``.tcm`` files."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tcmcodec.cli._common import (add_model_arguments, add_threads_argument, apply_threads,
                                  check_output, max_pixels, model_argument)
from tcmcodec.errors import TcmError

HELP = "compress an image (or several, or a folder) to .tcm"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image file(s) or a folder")
    p.add_argument("output", metavar="OUTPUT", help="output .tcm file, or a folder for several inputs")
    add_model_arguments(p)
    add_threads_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON line per file")
    p.add_argument("--refine", type=int, default=0, metavar="STEPS",
                   help="optimise the latents for each image in STEPS gradient steps before coding "
                        "(much slower encoding, same decoder; e.g. 10)")
    p.add_argument("--refine-lambda", type=float, default=None, metavar="L",
                   help="rate-distortion trade-off of --refine (default: the model's at this quality; "
                        "needed for fixed-rate models)")


def _jobs(inputs: list[str], output: str, suffix: str) -> list[tuple[Path, Path]]:
    from tcmcodec.train.data import list_images

    sources: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            sources.extend(list_images(path))
        elif path.exists():
            sources.append(path)
        else:
            raise FileNotFoundError(2, "no such file", str(path))
    if not sources:
        raise TcmError(f"no images found in {', '.join(inputs)}")
    out = Path(output)
    if len(inputs) == 1 and not Path(inputs[0]).is_dir() and not out.is_dir():
        return [(sources[0], out)]
    if not out.is_dir() and out.suffix:
        raise TcmError(f"several inputs need an output folder, not {out}")
    jobs = [(src, out / (src.stem + suffix)) for src in sources]
    seen: dict[Path, Path] = {}
    for src, dst in jobs:
        if dst in seen:  # e.g. a/x.png and b/x.png, or x.png and x.jpg
            raise TcmError(f"{seen[dst]} and {src} would both be written to {dst}")
        seen[dst] = src
    out.mkdir(parents=True, exist_ok=True)
    return jobs


def run(args: argparse.Namespace) -> int:
    import json

    from tcmcodec.codec import encode_image, load_model
    from tcmcodec.image_io import atomic_write_bytes

    apply_threads(args)
    if args.refine < 0:
        raise TcmError(f"--refine must be 0 or more steps, got {args.refine}")
    if args.refine_lambda is not None and not args.refine_lambda > 0:
        raise TcmError(f"--refine-lambda must be positive, got {args.refine_lambda}")
    jobs = _jobs(args.inputs, args.output, ".tcm")
    model = load_model(model_argument(args))
    for src, dst in jobs:
        check_output(src, dst)
        start = time.perf_counter()
        result = encode_image(src, model, args.quality, max_pixels=max_pixels(args),
                              refine=args.refine, refine_lambda=args.refine_lambda)
        atomic_write_bytes(dst, result.data)
        seconds = time.perf_counter() - start
        for note in result.warnings:
            print(f"tcm encode: warning: {src}: {note}", file=sys.stderr)
        if args.json:
            print(json.dumps({"input": str(src), "output": str(dst), "bytes": len(result.data),
                              "bpp": result.bits_per_pixel, "width": result.width, "height": result.height,
                              "quality": result.quality, "seconds": seconds}))
        else:
            print(f"{dst}: {len(result.data)} bytes, {result.bits_per_pixel:.4f} bpp "
                  f"({result.width}x{result.height}, quality {result.quality}), {seconds:.2f} s")
    return 0
