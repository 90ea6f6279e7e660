"""Fraction of the machine's matrix-multiply peak reached by each stage of the codec.

Counts the floating-point operations of each stage (convolutions and matrix products, via
``torch.utils.flop_counter``; element-wise work is not counted), times the stage (median of
--repeats warm runs, the codec's allocator setting), measures the fp32 matrix-multiply peak
of this machine with the same thread count (a large square ``torch.mm``), and prints
GFLOP, seconds, GFLOP/s and the fraction of that peak per stage.

    python benchmarks/stage_flops.py --model tcm-s --size 768x512 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from tcmcodec.config import PRESETS
from tcmcodec.coding import latent_coder
from tcmcodec.model import TCM
from tcmcodec.runtime import reuse_freed_memory

#: side of the square matrices used to measure the matrix-multiply peak
PEAK_MATRIX = 2048


def matmul_peak(threads: int, repeats: int = 10) -> float:
    """GFLOP/s of a large fp32 ``torch.mm`` (best of ``repeats``)."""
    torch.set_num_threads(threads)
    a = torch.randn(PEAK_MATRIX, PEAK_MATRIX)
    b = torch.randn(PEAK_MATRIX, PEAK_MATRIX)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t)
    return 2 * PEAK_MATRIX**3 / best / 1e9


def measure(model: TCM, fn: Callable[[], object], repeats: int,
            count: Callable[[], object] | None = None) -> tuple[float, float]:
    """(GFLOP counted, median seconds) of ``fn``.

    Counted with the mean/scale branches on the calling thread (the counter sees one
    thread; the operations are the same), timed as the codec runs. ``count``: what to count
    instead (the exact numerics run the float path's products, which FlopCounterMode, a
    dispatch mode, cannot see through the exact mode).
    """
    counter = FlopCounterMode(display=False)
    model.parallel_branches = False
    with counter:
        (count or fn)()
    model.parallel_branches = True
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return counter.get_total_flops() / 1e9, statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tcm-s")
    p.add_argument("--size", default="768x512")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)
    peak = matmul_peak(args.threads)
    reuse_freed_memory()
    torch.manual_seed(0)
    model = TCM(PRESETS[args.model]).eval().requires_grad_(False)  # flop counter: no grad hooks
    model.update(force=True)
    width, height = (int(v) for v in args.size.split("x"))
    x = torch.rand(1, 3, height, width)
    with torch.no_grad():
        y, z = model.analysis(x)
        coded = model.compress_analysis(y, z, keep_y_hat=True)
        y_hat, strings, shape = coded["y_hat"], coded["strings"], coded["shape"]
        stages = {
            "g_a (analysis)": lambda: model.g_a(x),
            "h_a (hyper analysis)": lambda: model.h_a(y),
            "entropy model, encode, exact numerics (hyper synthesis + slices + coder)":
                lambda: model.compress_analysis(y, z, exact=True),
            "entropy model, decode, exact numerics": lambda: latent_coder.decode_latents(model, strings, shape, None, True),
            "entropy model, encode, float numerics": lambda: model.compress_analysis(y, z, exact=False),
            "g_s (synthesis)": lambda: model.g_s(y_hat),
            "whole encode": lambda: model.compress(x),
            "whole decode": lambda: model.decompress(strings, shape),
        }
        float_counts = {  # the same products, countable
            "entropy model, encode, exact numerics (hyper synthesis + slices + coder)":
                lambda: model.compress_analysis(y, z, exact=False),
            "entropy model, decode, exact numerics": lambda: latent_coder.decode_latents(model, strings, shape, None, False),
            "whole encode": lambda: model.compress(x, exact=False),
            "whole decode": lambda: model.decompress(strings, shape, exact=False),
        }
        print(f"{args.model} {args.size}, {args.threads} threads; fp32 matmul peak {peak:.0f} GFLOP/s "
              f"(torch.mm {PEAK_MATRIX}^2), median of {args.repeats}")
        print("| stage | GFLOP | s | GFLOP/s | of peak |")
        print("|---|---|---|---|---|")
        for name, fn in stages.items():
            fn()  # warm
            gflop, seconds = measure(model, fn, args.repeats, float_counts.get(name))
            rate = gflop / seconds
            print(f"| {name} | {gflop:.1f} | {seconds:.3f} | {rate:.0f} | {rate / peak:.0%} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
