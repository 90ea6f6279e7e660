"""``tcm decode``: decompress ``.tcm`` files to ordinary images."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tcmcodec.cli._common import add_threads_argument, apply_threads, check_output, max_pixels
from tcmcodec.errors import TcmError

HELP = "decompress a .tcm file (or several, or a folder) to an image (format from the extension)"

#: zlib level of written PNGs. Measured on a decoded 768x512 Kodak image: level 6
#: (Pillow's default) 0.099 s and 404 KB, level 3 0.034 s and 446 KB, level 9 0.74 s and
#: 388 KB. The decoded image is already lossy, so the faster level is the default;
#: ``--png-compression 9`` writes the smallest file.
PNG_COMPRESSION = 3


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=".tcm file(s) or a folder")
    p.add_argument("output", metavar="OUTPUT", help="output image (png, jpg, webp, ...) or a folder")
    p.add_argument("--checkpoint", metavar="PATH", help="checkpoint of the model that coded the file")
    p.add_argument("--model", metavar="NAME", help="registered model (default: the one named in the file)")
    p.add_argument("--format", default="png", help="image format for folder output (default png)")
    p.add_argument("--png-compression", type=int, choices=range(10), default=PNG_COMPRESSION, metavar="0-9",
                   help=f"zlib level of PNG output: 9 smallest, 1 fastest (default {PNG_COMPRESSION})")
    p.add_argument("--synthesis-precision", choices=("float32", "bfloat16"), default="float32",
                   help="precision of the synthesis transform (the decoder's network): float32 (the "
                        "default: pixels agree within one level on every computer) or bfloat16 (1.7x "
                        "faster where the CPU or GPU computes it natively, slower elsewhere; pixels "
                        "may differ from float32's by a few levels)")
    add_threads_argument(p)


def _check_distinct(outputs: list[Path], sources: list[Path]) -> None:
    """Refuse to write two inputs to the same output (e.g. a/x.tcm and b/x.tcm)."""
    seen: dict[Path, Path] = {}
    for src, dst in zip(sources, outputs):
        if dst in seen:
            raise TcmError(f"{seen[dst]} and {src} would both be written to {dst}")
        seen[dst] = src


def run(args: argparse.Namespace) -> int:
    import torch

    from tcmcodec.codec import decode_stream, load_model, read_stream
    from tcmcodec.image_io import save_image

    apply_threads(args)
    sources: list[Path] = []
    for item in args.inputs:
        path = Path(item)
        sources.extend(sorted(path.glob("*.tcm")) if path.is_dir() else [path])
    out = Path(args.output)
    several = len(args.inputs) > 1 or Path(args.inputs[0]).is_dir()
    if not sources:
        raise TcmError(f"no .tcm files in {', '.join(args.inputs)}")
    if several:
        if out.exists() and not out.is_dir():
            raise TcmError(f"several inputs need an output folder, not {out}")
        _check_distinct([out / f"{src.stem}.{args.format}" for src in sources], sources)
        out.mkdir(parents=True, exist_ok=True)
    model = None
    if args.checkpoint or args.model:
        model = load_model(args.checkpoint or args.model)
    limit = max_pixels(args)  # default 2^28, as the help says: checked on the header
    synthesis_dtype = torch.bfloat16 if args.synthesis_precision == "bfloat16" else None
    for src in sources:
        dst = out / f"{src.stem}.{args.format}" if several else out
        check_output(src, dst)
        start = time.perf_counter()
        data = Path(src).read_bytes()
        try:
            stream = read_stream(data, max_pixels=limit)
        except TcmError as exc:
            raise type(exc)(f"{src}: {exc.message}", python_hint=exc.python_hint, cli_hint=exc.cli_hint) from None
        image = decode_stream(stream, model, synthesis_dtype=synthesis_dtype)
        png = dst.suffix.lower() == ".png"
        save_image(image, dst, **({"compress_level": args.png_compression} if png else {}))
        print(f"{dst}: {image.width}x{image.height} {image.mode}, {time.perf_counter() - start:.2f} s")
    return 0
