"""g_a and g_s in bfloat16: speed, rate-distortion, pixels (numbers for docs/benchmarks.md).

**Encoder (g_a).** g_a runs only in the encoder: its precision changes which latents are
coded, never whether or how a file decodes. Each image is encoded with the bundled model
twice, g_a in float32 and g_a's inner layers in bfloat16 (its last layer, next to the
latent, in float32; ``TCM.analysis_dtype``), and both files are decoded the same way:
bits per pixel, PSNR and the BD-rate of bfloat16 against float32.

**Decoder (g_s).** Each float32-encoded file is decoded twice, g_s in float32 and g_s's inner
layers in bfloat16 (its first layer in float32; ``decode(..., synthesis_dtype=...)``): PSNR
of both and how far their pixels differ.

Times are warm medians on the first image (the precisions alternating in one process).

    python benchmarks/transform_precision.py ../shared/data/kodak --images 24 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tcmcodec import codec, metrics, zoo
from tcmcodec.evaluate.bdrate import bd_rate
from tcmcodec.runtime import native_bfloat16

PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16}
DEFAULT_QUALITIES = "0,14,29,43,57,71,86,100"
PEAK = 255.0


class Totals:
    """Bytes, squared error and pixels per quality, for a pooled bpp / PSNR curve."""

    def __init__(self, qualities: list[int]) -> None:
        self.qualities = qualities
        self.bytes = dict.fromkeys(qualities, 0)
        self.squared_error = dict.fromkeys(qualities, 0.0)
        self.pixels = dict.fromkeys(qualities, 0)

    def add(self, quality: int, size: int, original: np.ndarray, decoded: np.ndarray) -> None:
        pixels = original.shape[0] * original.shape[1]
        self.bytes[quality] += size
        self.squared_error[quality] += metrics.mse(original, decoded) * pixels
        self.pixels[quality] += pixels

    def curve(self) -> tuple[list[float], list[float]]:
        bpp = [8 * self.bytes[q] / self.pixels[q] for q in self.qualities]
        psnr = [metrics.psnr_from_mse(self.squared_error[q] / self.pixels[q] / PEAK**2) for q in self.qualities]
        return bpp, psnr


def alternate(calls: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds of each call, run in turn ``repeats`` times after one warm-up each."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return times


def print_times(label: str, times: dict[str, list[float]]) -> float:
    """Print each precision's times; returns how many times faster bfloat16 ran (medians)."""
    for name, values in times.items():
        print(f"{label} {name:9s} median {statistics.median(values):.3f} s ({', '.join(f'{t:.3f}' for t in values)})")
    return statistics.median(times["float32"]) / statistics.median(times["bfloat16"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--images", type=int, default=8, help="first N images by name")
    parser.add_argument("--qualities", default=DEFAULT_QUALITIES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per precision")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    qualities = [int(q) for q in args.qualities.split(",")]
    net = codec.load_model()
    paths = sorted(p for p in args.dataset.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})[: args.images]
    print(f"native bfloat16 here: {native_bfloat16('cpu')}; {len(paths)} images, qualities {qualities}, "
          f"{args.threads} threads")

    prepared = codec.prepare_input(paths[0], net)
    level = zoo.quality_to_level(qualities[len(qualities) // 2], net.rate_levels)
    with torch.inference_mode():
        y, z = net.analysis(prepared.x, level)
        y_hat = net.compress_analysis(y, z, level, keep_y_hat=True)["y_hat"]

        def analysis(dtype: torch.dtype | None):
            def run() -> None:
                net.analysis_dtype = dtype
                net.analysis_transform(prepared.x)
            return run

        analysis_times = alternate({name: analysis(dtype) for name, dtype in PRECISIONS.items()}, args.repeats)
        synthesis_times = alternate({name: (lambda dtype=dtype: net.synthesis(y_hat, level, None, dtype))
                                     for name, dtype in PRECISIONS.items()}, args.repeats)

    encoded = {name: Totals(qualities) for name in PRECISIONS}
    decoded = {name: Totals(qualities) for name in PRECISIONS}
    largest_size_change, largest_pixel_change, pixels_beyond_one = 0, 0, 0
    for path in paths:
        rgb = metrics.as_rgb_uint8(path)
        for q in qualities:
            files = {}
            for name, dtype in PRECISIONS.items():
                net.analysis_dtype = dtype
                files[name] = codec.encode_image(rgb, net, quality=q).data
                encoded[name].add(q, len(files[name]), rgb, metrics.as_rgb_uint8(codec.decode(files[name], net)))
            largest_size_change = max(largest_size_change, abs(len(files["bfloat16"]) - len(files["float32"])))
            images = {name: metrics.as_rgb_uint8(codec.decode(files["float32"], net, synthesis_dtype=dtype))
                      for name, dtype in PRECISIONS.items()}
            for name, image in images.items():
                decoded[name].add(q, len(files["float32"]), rgb, image)
            change = np.abs(images["bfloat16"].astype(np.int16) - images["float32"].astype(np.int16))
            largest_pixel_change = max(largest_pixel_change, int(change.max()))
            pixels_beyond_one += int((change > 1).sum())
    net.analysis_dtype = codec.default_analysis_dtype(net, "cpu")

    print("encoder: g_a")
    speedup = print_times("  g_a", analysis_times)
    curves = {name: totals.curve() for name, totals in encoded.items()}
    for name, (bpp, psnr) in curves.items():
        print(f"  {name:9s} bpp  " + "  ".join(f"{b:.4f}" for b in bpp))
        print(f"  {name:9s} PSNR " + "  ".join(f"{p:.3f}" for p in psnr))
    value = bd_rate(*curves["float32"], *curves["bfloat16"])
    bd = "n/a (too few qualities)" if value.value is None else f"{value.value:+.3f}%"
    print(f"  BD-rate (PSNR) bfloat16 vs float32 g_a: {bd}; g_a {speedup:.2f}x faster; "
          f"largest file size difference {largest_size_change} bytes")
    print("decoder: g_s (files encoded with g_a in float32)")
    speedup = print_times("  g_s", synthesis_times)
    for name, totals in decoded.items():
        print(f"  {name:9s} PSNR " + "  ".join(f"{p:.3f}" for p in totals.curve()[1]))
    print(f"  g_s {speedup:.2f}x faster; largest pixel difference {largest_pixel_change} levels; "
          f"{pixels_beyond_one} pixel values differ by more than one level")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
