"""Cost and accuracy of rate control (``tcm encode --size/--bpp/--psnr``; not a test).

For each image and target this times :func:`tcmcodec.ratecontrol.encode_to_target` and a
plain encode at the quality it chose (the same file), and prints the median number of
qualities tried, the median time of both and their ratio, and how close the result came to
the target (bpp over the budget, or PSNR over the floor). Budgets are met by construction;
the medians show what the search costs.

    python benchmarks/rate_control.py ../shared/data/kodak --images 6 --bpp 0.25 0.5 --psnr 28 30
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from tcmcodec.codec import encode_image, load_model
from tcmcodec.ratecontrol import Target, encode_to_target


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("folder", help="folder of photos (e.g. Kodak)")
    ap.add_argument("--images", type=int, default=6, help="use the first N images (sorted by name)")
    ap.add_argument("--bpp", type=float, nargs="*", default=[0.25, 0.5])
    ap.add_argument("--psnr", type=float, nargs="*", default=[28.0, 30.0])
    ap.add_argument("--model", default=None, help="registry name or checkpoint (default: the bundled model)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model)
    images = sorted(p for p in Path(args.folder).iterdir() if p.suffix.lower() in (".png", ".jpg", ".ppm"))
    images = images[: args.images]
    targets = [Target(max_bpp=b) for b in args.bpp] + [Target(min_psnr=p) for p in args.psnr]
    encode_image(images[0], model, 50)  # warm-up: allocator, CDF tables
    print(f"{len(images)} images, {args.threads} thread(s); medians")
    print(f"{'target':>22} {'met':>5} {'tried':>5} {'search s':>9} {'plain s':>8} {'ratio':>6} {'margin':>10}")
    for target in targets:
        tried, search_s, plain_s, margins, met = [], [], [], [], 0
        for path in images:
            start = time.perf_counter()
            result = encode_to_target(path, target, model)
            search_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            plain = encode_image(path, model, result.quality)
            plain_s.append(time.perf_counter() - start)
            assert plain.data == result.data
            tried.append(result.trials)
            met += result.met
            if target.is_budget:
                margins.append(target.max_bpp - result.bits_per_pixel)
            else:
                margins.append(result.psnr - target.min_psnr)
        unit = "bpp" if target.is_budget else "dB"
        print(f"{target.describe():>22} {met:>2}/{len(images):<2} {statistics.median(tried):>5} "
              f"{statistics.median(search_s):>9.2f} {statistics.median(plain_s):>8.2f} "
              f"{statistics.median(search_s) / statistics.median(plain_s):>6.1f} "
              f"{statistics.median(margins):>6.3f} {unit}")


if __name__ == "__main__":
    main()
