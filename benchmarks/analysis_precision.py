"""g_a in bfloat16 for encoding: speed and rate-distortion (numbers for docs/benchmarks.md).

The analysis transform runs only in the encoder: its precision changes which latents are
coded, never whether a file decodes. This script encodes images with the bundled model twice,
g_a in float32 and g_a's inner layers in bfloat16 (its last layer, next to the latent, in
float32, as ``tcm train --amp bf16`` runs it), decodes both with the float32 decoder, and
prints bits per pixel, PSNR, the BD-rate of bfloat16 against float32, and g_a's time (warm
medians, the two precisions alternating in one process).

    python benchmarks/analysis_precision.py ../shared/data/kodak --images 8 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from tcmcodec import codec, metrics
from tcmcodec.evaluate.bdrate import bd_rate
from tcmcodec.runtime import native_bfloat16

PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}
DEFAULT_QUALITIES = "0,29,57,86,100"
PEAK = 255.0


def time_analysis(net: torch.nn.Module, x: torch.Tensor, dtype: torch.dtype | None, repeats: int) -> list[float]:
    net.analysis_dtype = dtype
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            start = time.perf_counter()
            net.analysis_transform(x)
            times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--images", type=int, default=8, help="first N images by name")
    parser.add_argument("--qualities", default=DEFAULT_QUALITIES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5, help="timed g_a runs per precision (after one warm-up)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    qualities = [int(q) for q in args.qualities.split(",")]
    net = codec.load_model()
    paths = sorted(p for p in args.dataset.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})[: args.images]
    print(f"native bfloat16 here: {native_bfloat16('cpu')}; {len(paths)} images, qualities {qualities}, "
          f"{args.threads} threads")

    prepared = codec.prepare_input(paths[0], net)
    for dtype in PRECISIONS.values():
        time_analysis(net, prepared.x, dtype, 1)
    timings: dict[str, list[float]] = {name: [] for name in PRECISIONS}
    for _ in range(args.repeats):
        for name, dtype in PRECISIONS.items():
            timings[name] += time_analysis(net, prepared.x, dtype, 1)

    totals = {name: {q: [0, 0.0, 0] for q in qualities} for name in PRECISIONS}  # bytes, mse sum, pixels
    worst_symbols = 0
    for path in paths:
        rgb = metrics.as_rgb_uint8(path)
        for q in qualities:
            files = {}
            for name, dtype in PRECISIONS.items():
                net.analysis_dtype = dtype
                files[name] = codec.encode_image(rgb, net, quality=q).data
                decoded = metrics.as_rgb_uint8(codec.decode(files[name], net))
                entry = totals[name][q]
                entry[0] += len(files[name])
                entry[1] += metrics.mse(rgb, decoded) * rgb.shape[0] * rgb.shape[1]
                entry[2] += rgb.shape[0] * rgb.shape[1]
            worst_symbols = max(worst_symbols, abs(len(files["bfloat16"]) - len(files["float32"])))

    curves = {}
    for name in PRECISIONS:
        bpp = [8 * totals[name][q][0] / totals[name][q][2] for q in qualities]
        psnr = [metrics.psnr_from_mse(totals[name][q][1] / totals[name][q][2] / PEAK**2) for q in qualities]
        curves[name] = (bpp, psnr)
        print(f"{name:9s} g_a median {statistics.median(timings[name]):.3f} s "
              f"({', '.join(f'{t:.3f}' for t in timings[name])})")
        print("          bpp  " + "  ".join(f"{b:.4f}" for b in bpp))
        print("          PSNR " + "  ".join(f"{p:.3f}" for p in psnr))
    value = bd_rate(*curves["float32"], *curves["bfloat16"])
    ratio = statistics.median(timings["float32"]) / statistics.median(timings["bfloat16"])
    print(f"BD-rate (PSNR) bfloat16 vs float32 g_a: {value.value:+.3f}%; g_a {ratio:.2f}x faster; "
          f"largest file size difference {worst_symbols} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
