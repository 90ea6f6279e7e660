"""``tcm demo``: compress a real photo with the bundled model next to JPEG, WebP and AVIF."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

HELP = "compress a photo with the default model at a few qualities, next to JPEG/WebP/AVIF"

DEFAULT_QUALITIES = "20,60,100"
CLASSICAL = ("jpeg", "webp", "avif")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", help="photo to compress (default: matplotlib's sample photo)")
    p.add_argument("--model", help="registered model (default: the bundled one)")
    p.add_argument("--qualities", default=DEFAULT_QUALITIES, help=f"TCM qualities (default {DEFAULT_QUALITIES})")
    p.add_argument("--out", default="demo-out", help="folder for the .tcm files, decoded images and the figure")
    p.add_argument("--threads", type=int, help="torch CPU threads")


def _sample_photo() -> Path:
    from matplotlib import cbook

    return Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def run(args: argparse.Namespace) -> int:
    from tcmcodec import zoo
    from tcmcodec.cli._common import apply_threads
    from tcmcodec.codec import encode_image, load_model, decode
    from tcmcodec.errors import TcmError
    from tcmcodec import metrics
    from tcmcodec.evaluate.codecs import TcmCodec, get_codec
    from tcmcodec.evaluate.compare import make_comparison, match_bpp
    from tcmcodec.image_io import atomic_write_bytes, load_image, save_image

    apply_threads(args)
    image_path = Path(args.image) if args.image else _sample_photo()
    name = args.model or zoo.default_entry().name
    model = load_model(name)
    try:
        qualities = [float(q) for q in args.qualities.split(",") if q.strip()]
    except ValueError:
        raise TcmError(f"--qualities must be numbers separated by commas, got {args.qualities!r}") from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rgb = load_image(image_path).rgb
    height, width = rgb.shape[:2]
    print(f"image {image_path} ({width}x{height}); model {name}")
    header = f"{'codec':<8} {'quality':>7} {'bytes':>8} {'bpp':>7} {'PSNR dB':>8} {'MS-SSIM':>8} {'enc s':>6} {'dec s':>6}"
    print(header)
    print("-" * len(header))
    classical = [get_codec(c) for c in CLASSICAL]
    tcm_bpps = []
    for quality in qualities:
        start = time.perf_counter()
        result = encode_image(rgb, model, quality)
        enc_s = time.perf_counter() - start
        start = time.perf_counter()
        decoded = decode(result.data, model)
        dec_s = time.perf_counter() - start
        stem = f"{image_path.stem}-q{quality:g}"
        atomic_write_bytes(out / f"{stem}.tcm", result.data)
        save_image(decoded, out / f"{stem}.png")
        rec = metrics.as_rgb_uint8(decoded)
        bpp = result.bits_per_pixel
        tcm_bpps.append(bpp)
        print(f"{'TCM':<8} {quality:>7g} {len(result.data):>8} {bpp:>7.3f} {metrics.psnr(rgb, rec):>8.2f} "
              f"{metrics.ms_ssim(rgb, rec):>8.4f} {enc_s:>6.2f} {dec_s:>6.2f}")
        for codec in classical:
            if codec.unavailable_reason() is not None:
                continue
            match = match_bpp(codec, rgb, bpp)
            print(f"{codec.name:<8} {str(match.quality):>7} {round(match.bpp * width * height / 8):>8} "
                  f"{match.bpp:>7.3f} {match.psnr:>8.2f} {metrics.ms_ssim(rgb, match.reconstruction):>8.4f}")
    middle = tcm_bpps[len(tcm_bpps) // 2]
    figure = out / f"{image_path.stem}-comparison.png"
    make_comparison(rgb, middle, [TcmCodec(model=name), *[c for c in classical if c.unavailable_reason() is None]],
                    figure)
    print(f"side-by-side crops at about {middle:.3f} bpp: {figure}")
    print(f"files written to {out}/")
    return 0
