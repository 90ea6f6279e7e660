"""What encoder-side latent refinement (``tcm encode --refine``) buys (not a test).

Encodes the first ``--images`` of a folder at each quality, plainly and with each number of
refinement steps, through the public API (``tcmcodec.encode`` / ``decode``: real files),
and prints mean bpp, PSNR and encode seconds per quality, then the BD-rate of each refined
curve against the plain one (negative: fewer bits at equal PSNR).

    python benchmarks/refine_gain.py ../shared/data/kodak --images 4 --steps 25,50
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import tcmcodec
from tcmcodec.evaluate.bdrate import bd_rate


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / mse))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder")
    p.add_argument("--model", default=None, help="registered model (default: the bundled one)")
    p.add_argument("--images", type=int, default=4, help="first N images of the folder")
    p.add_argument("--qualities", default="0,14,29,43,57,71,86,100")
    p.add_argument("--steps", default="25", help="comma-separated refinement steps to compare with 0")
    args = p.parse_args(argv)
    files = sorted(f for f in Path(args.folder).iterdir() if f.suffix.lower() in {".png", ".jpg", ".jpeg"})
    images = [np.asarray(Image.open(f).convert("RGB")) for f in files[: args.images]]
    model = tcmcodec.load_model(args.model)
    qualities = [float(q) for q in args.qualities.split(",")]
    settings = [0] + [int(s) for s in args.steps.split(",")]
    curves: dict[int, tuple[list[float], list[float]]] = {}
    print("| steps | quality | bpp | PSNR dB | encode s |")
    print("|---|---|---|---|---|")
    for steps in settings:
        rates, qualities_db = [], []
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
            print(f"| {steps} | {q:g} | {rates[-1]:.4f} | {qualities_db[-1]:.2f} | {statistics.median(seconds):.1f} |",
                  flush=True)
        curves[steps] = (rates, qualities_db)
    plain = curves[0]
    for steps in settings[1:]:
        print(f"BD-rate of {steps} steps against none (PSNR): {bd_rate(*plain, *curves[steps])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
