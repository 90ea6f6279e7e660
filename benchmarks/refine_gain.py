"""What encoder-side latent refinement (``tcm encode --refine``) buys (not a test).

Encodes images at each quality, plainly and with each refinement setting, through the public
API (``tcmcodec.encode`` / ``decode``: real files), prints mean bpp, PSNR and encode seconds
per quality, then the BD-rate of each refined curve against the plain one (negative: fewer
bits at equal PSNR) and its total encode time.

A setting is ``STEPS[@LR[/Z_LR]][:PRECISION]``: Adam steps, their step sizes on y and on z
(defaults ``tcmcodec.refine.DEFAULT_REFINE_LR`` and ``DEFAULT_REFINE_Z_LR``) and the precision
of g_s during the search
(``float32``, ``bfloat16`` or ``auto``, the default: what ``tcm encode`` uses). Step size and
precision are not part of the public API; this script sets them by wrapping
``tcmcodec.refine.refine_latents``, which the encoder looks up at each call.

    python benchmarks/refine_gain.py ../shared/data/kodak --images 3 --steps 10
    # tune on training photos (not the evaluation set), on centre crops for speed:
    python benchmarks/refine_gain.py ../shared/data/train --pick 100,700,1200,400 \\
        --crop 448x320 --steps 10@5e-3,10@1e-2,10@1e-2/1e-2,10@1e-2:float32
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import tcmcodec
from tcmcodec import refine
from tcmcodec.evaluate.bdrate import bd_rate

PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "auto": refine.AUTO}


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def centre_crop(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """A width x height centre crop (height x width for portrait images), or the image if smaller."""
    if rgb.shape[0] > rgb.shape[1]:
        width, height = height, width
    if rgb.shape[0] < height or rgb.shape[1] < width:
        return rgb
    top, left = (rgb.shape[0] - height) // 2, (rgb.shape[1] - width) // 2
    return np.ascontiguousarray(rgb[top:top + height, left:left + width])


def parse_setting(text: str) -> tuple[int, float, float, str]:
    """``STEPS[@LR[/Z_LR]][:PRECISION]`` -> (steps, lr, z_lr, precision)."""
    head, _, precision = text.partition(":")
    steps, _, rates = head.partition("@")
    lr, _, z_lr = rates.partition("/")
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise SystemExit(f"unknown precision {precision!r} in {text!r}: use one of {', '.join(PRECISIONS)}")
    return (int(steps), float(lr) if lr else refine.DEFAULT_REFINE_LR,
            float(z_lr) if z_lr else refine.DEFAULT_REFINE_Z_LR, precision)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("--model", default=None, help="registered model (default: the bundled one)")
    p.add_argument("--images", type=int, default=4, help="first N images of the folder")
    p.add_argument("--pick", default=None, help="comma-separated indexes into the sorted folder instead")
    p.add_argument("--crop", default=None, metavar="WxH", help="centre crops of this size")
    p.add_argument("--qualities", default="0,14,29,43,57,71,86,100")
    p.add_argument("--steps", default="10", help="comma-separated settings STEPS[@LR[/Z_LR]][:PRECISION]")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    files = sorted(f for f in Path(args.folder).iterdir() if f.suffix.lower() in {".png", ".jpg", ".jpeg"})
    files = [files[int(i)] for i in args.pick.split(",")] if args.pick else files[: args.images]
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files]
    if args.crop:
        width, height = (int(v) for v in args.crop.split("x"))
        images = [centre_crop(rgb, width, height) for rgb in images]
    model = tcmcodec.load_model(args.model)
    qualities = [float(q) for q in args.qualities.split(",")]
    settings = [parse_setting("0")] + [parse_setting(s) for s in args.steps.split(",")]
    original = refine.refine_latents
    curves: dict[tuple, tuple[list[float], list[float], float]] = {}
    print("| steps | lr (y / z) | precision | quality | bpp | PSNR dB | encode s |")
    print("|---|---|---|---|---|---|---|")
    try:
        for setting in settings:
            steps, lr, z_lr, precision = setting
            refine.refine_latents = functools.partial(original, lr=lr, z_lr=z_lr,
                                                      transform_dtype=PRECISIONS[precision])
            rates, qualities_db, total = [], [], 0.0
            for q in qualities:
                bpps, psnrs, seconds = [], [], []
                for rgb in images:
                    start = time.perf_counter()
                    data = tcmcodec.encode(rgb, model, q, refine=steps)
                    seconds.append(time.perf_counter() - start)
                    bpps.append(8 * len(data) / (rgb.shape[0] * rgb.shape[1]))
                    psnrs.append(psnr(rgb, np.asarray(tcmcodec.decode(data, model=model).convert("RGB"))))
                rates.append(statistics.mean(bpps))
                qualities_db.append(statistics.mean(psnrs))
                total += sum(seconds)
                print(f"| {steps} | {lr:g} / {z_lr:g} | {precision} | {q:g} | {rates[-1]:.4f} | {qualities_db[-1]:.2f} "
                      f"| {statistics.median(seconds):.1f} |", flush=True)
            curves[setting] = (rates, qualities_db, total)
    finally:
        refine.refine_latents = original
    plain = curves[settings[0]]
    for setting in settings[1:]:
        steps, lr, z_lr, precision = setting
        rates, qualities_db, total = curves[setting]
        print(f"{steps} steps at lr {lr:g} / {z_lr:g}, {precision}: BD-rate against none (PSNR) "
              f"{bd_rate(plain[0], plain[1], rates, qualities_db)}; encoding {total:.0f} s in all "
              f"(plain: {plain[2]:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
