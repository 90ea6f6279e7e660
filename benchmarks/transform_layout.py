"""g_a and g_s with channels-first or channels-last activations: speed and agreement.

At inference on the CPU our models keep the transforms' activations channels-last
(``TCM.channels_last_transforms``): oneDNN's convolutions read and write that layout without
converting it, and the 1x1 convolutions are one matrix product over all pixels. This times
both layouts in float32 (alternating in one process, warm medians on the first image; the
bfloat16 transforms are channels-last either way), then encodes and decodes each image at
each quality in both layouts and reports how far files and pixels differ.

    python benchmarks/transform_layout.py ../shared/data/kodak --images 24 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch

from tcmcodec import codec, metrics, zoo
from transform_precision import DEFAULT_QUALITIES, alternate

LAYOUTS = {"channels-first": False, "channels-last": True}


def timed_calls(net, x: torch.Tensor, y_hat: torch.Tensor, level: int) -> dict:
    """One float32 call per transform and layout, to alternate."""
    calls = {}
    for layout, channels_last in LAYOUTS.items():
        def analysis(channels_last=channels_last) -> None:
            net.channels_last_transforms = channels_last
            net.analysis_transform(x)

        def synthesis(channels_last=channels_last) -> None:
            net.channels_last_transforms = channels_last
            net.synthesis(y_hat, level)

        calls[f"g_a {layout}"] = analysis
        calls[f"g_s {layout}"] = synthesis
    return calls


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--images", type=int, default=4, help="first N images by name")
    parser.add_argument("--qualities", default=DEFAULT_QUALITIES)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    qualities = [int(q) for q in args.qualities.split(",")]
    net = codec.load_model()
    paths = sorted(p for p in args.dataset.iterdir() if p.suffix.lower() in {".png", ".jpg", ".jpeg"})[: args.images]
    net.analysis_dtype = None
    print(f"{len(paths)} images, qualities {qualities}, {args.threads} threads, float32")

    prepared = codec.prepare_input(paths[0], net)
    level = zoo.quality_to_level(qualities[len(qualities) // 2], net.rate_levels)
    with torch.inference_mode():
        y, z = net.analysis(prepared.x, level)
        y_hat = net.compress_analysis(y, z, level, keep_y_hat=True)["y_hat"]
        times = alternate(timed_calls(net, prepared.x, y_hat, level), args.repeats)
    for name, values in times.items():
        print(f"{name:18s} median {statistics.median(values):.3f} s ({', '.join(f'{t:.3f}' for t in values)})")
    for transform in ("g_a", "g_s"):
        first, last = (statistics.median(times[f"{transform} {layout}"]) for layout in LAYOUTS)
        print(f"{transform}: channels-last {first / last:.2f}x as fast as channels-first")

    same_files, largest_size_change, largest_pixel_change, changed_values, values = 0, 0, 0, 0, 0
    for path in paths:
        rgb = metrics.as_rgb_uint8(path)
        for q in qualities:
            files, images = {}, {}
            for layout, channels_last in LAYOUTS.items():
                net.channels_last_transforms = channels_last
                files[layout] = codec.encode_image(rgb, net, quality=q).data
            same_files += files["channels-first"] == files["channels-last"]
            largest_size_change = max(largest_size_change, abs(len(files["channels-first"]) - len(files["channels-last"])))
            for layout, channels_last in LAYOUTS.items():
                net.channels_last_transforms = channels_last
                images[layout] = metrics.as_rgb_uint8(codec.decode(files["channels-first"], net)).astype(np.int16)
            change = np.abs(images["channels-last"] - images["channels-first"])
            largest_pixel_change = max(largest_pixel_change, int(change.max()))
            changed_values += int((change > 0).sum())
            values += change.size
    net.channels_last_transforms, net.analysis_dtype = True, codec.default_analysis_dtype(net, "cpu")
    print(f"g_a float32: {same_files} of {len(paths) * len(qualities)} files identical in both layouts, "
          f"largest size difference {largest_size_change} bytes")
    print(f"g_s float32: largest pixel difference {largest_pixel_change} levels; {changed_values} of "
          f"{values} decoded values differ ({100 * changed_values / max(values, 1):.4f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
