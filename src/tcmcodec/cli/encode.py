"""``tcm encode``: compress images to ``.tcm`` files."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tcmcodec.cli._common import (add_model_arguments, add_threads_argument, apply_threads,
                                  check_output, max_pixels, model_argument)
from tcmcodec.errors import TcmError

if TYPE_CHECKING:
    from tcmcodec.ratecontrol import Target

HELP = "compress an image (or several, or a folder) to .tcm"
#: --analysis-precision choices; "auto" keeps what load_model chose
ANALYSIS_PRECISIONS = ("auto", "float32", "bfloat16")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image file(s) or a folder")
    p.add_argument("output", metavar="OUTPUT", help="output .tcm file, or a folder for several inputs")
    add_model_arguments(p)
    add_threads_argument(p)
    p.add_argument("--json", action="store_true", help="print one JSON line per file")
    p.add_argument("--refine", type=int, default=0, metavar="STEPS",
                   help="optimise the latents for each image in STEPS gradient steps before coding "
                        "(much slower encoding, same decoder; e.g. 10)")
    p.add_argument("--numerics", choices=("exact", "float"), default=None,
                   help="how the entropy parameters are computed: exact (the file decodes on every "
                        "computer; the default, except for the authors' checkpoints) or float (as "
                        "the networks compute them; the file decodes only on this kind of computer)")
    p.add_argument("--analysis-precision", choices=ANALYSIS_PRECISIONS, default="auto",
                   help="precision of the analysis transform (the encoder's network): auto "
                        "(bfloat16 where the CPU or GPU computes it natively: 1.6x faster for +0.09%% "
                        "of bits on Kodak; else float32), float32 or bfloat16. Every choice decodes "
                        "everywhere")
    p.add_argument("--refine-lambda", type=float, default=None, metavar="L",
                   help="rate-distortion trade-off of --refine (default: the model's at this quality; "
                        "needed for fixed-rate models)")
    target = p.add_argument_group("rate control (instead of -q; variable-rate models)").add_mutually_exclusive_group()
    target.add_argument("--size", metavar="BYTES",
                        help="the highest quality whose file is at most this size (e.g. 20000, 20k, 20KiB)")
    target.add_argument("--bpp", type=float, metavar="B",
                        help="the highest quality whose file is at most B bits per pixel")
    target.add_argument("--psnr", type=float, metavar="DB",
                        help="the lowest quality whose decoded image reaches DB dB PSNR (slower: "
                             "each quality tried is also reconstructed)")


def _jobs(inputs: list[str], output: str, suffix: str) -> list[tuple[Path, Path]]:
    from tcmcodec.image_io import list_images

    sources: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            sources.extend(list_images(path, recursive=True))
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
    from tcmcodec.codec import load_model

    apply_threads(args)
    if args.refine < 0:
        raise TcmError(f"--refine must be 0 or more steps, got {args.refine}")
    if args.refine_lambda is not None and not args.refine_lambda > 0:
        raise TcmError(f"--refine-lambda must be positive, got {args.refine_lambda}")
    target = _target(args)
    jobs = _jobs(args.inputs, args.output, ".tcm")
    model = load_model(model_argument(args))
    chosen = model.analysis_dtype
    if args.analysis_precision != "auto":
        import torch

        model.analysis_dtype = torch.bfloat16 if args.analysis_precision == "bfloat16" else None
    try:
        _encode_all(args, model, jobs, target)
    finally:  # the loaded model is cached: leave it as load_model made it
        model.analysis_dtype = chosen
    return 0


def _encode_all(args: argparse.Namespace, model, jobs: list[tuple[Path, Path]], target: "Target | None") -> None:
    import json

    from tcmcodec.codec import encode_image
    from tcmcodec.image_io import atomic_write_bytes
    from tcmcodec.ratecontrol import TargetedEncode, encode_to_target

    for src, dst in jobs:
        check_output(src, dst)
        start = time.perf_counter()
        if target is None:
            result = encode_image(src, model, args.quality, max_pixels=max_pixels(args),
                                  refine=args.refine, refine_lambda=args.refine_lambda, numerics=args.numerics)
        else:
            result = encode_to_target(src, target, model, max_pixels=max_pixels(args))
        atomic_write_bytes(dst, result.data)
        seconds = time.perf_counter() - start
        for note in result.warnings:
            print(f"tcm encode: warning: {src}: {note}", file=sys.stderr)
        searched = ""
        if isinstance(result, TargetedEncode):
            if result.shortfall:
                print(f"tcm encode: warning: {src}: {result.shortfall}", file=sys.stderr)
            searched = f" for {target.describe()} ({result.trials} tried)"
            if result.psnr is not None:
                searched += f", PSNR {result.psnr:.2f} dB"
        if args.json:
            record = {"input": str(src), "output": str(dst), "bytes": len(result.data),
                      "bpp": result.bits_per_pixel, "width": result.width, "height": result.height,
                      "quality": result.quality, "seconds": seconds}
            if isinstance(result, TargetedEncode):
                record.update(target=target.describe(), met=result.met, trials=result.trials, psnr=result.psnr)
            print(json.dumps(record))
        else:
            print(f"{dst}: {len(result.data)} bytes, {result.bits_per_pixel:.4f} bpp "
                  f"({result.width}x{result.height}, quality {result.quality}{searched}), {seconds:.2f} s")


def _target(args: argparse.Namespace) -> "Target | None":
    """The rate-control target of --size / --bpp / --psnr, or None; checks the options that
    cannot go with one."""
    from tcmcodec.ratecontrol import Target, parse_size

    if args.size is None and args.bpp is None and args.psnr is None:
        return None
    option = "--size" if args.size is not None else "--bpp" if args.bpp is not None else "--psnr"
    if args.quality is not None:
        raise TcmError(f"{option} chooses the quality: drop -q")
    if args.numerics is not None:
        raise TcmError(f"{option} codes with the model's own numerics: drop --numerics")
    if args.refine:
        raise TcmError(f"{option} cannot be combined with --refine (the search codes each quality "
                       "it tries; refining each would take minutes): drop one of them")
    return Target(max_bytes=parse_size(args.size) if args.size is not None else None,
                  max_bpp=args.bpp, min_psnr=args.psnr)
