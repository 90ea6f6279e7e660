"""tcm-s at 768x512: our optimised path against the straightforward one (not a test).

The straightforward path (``tests/reference_tcm.py``) computes what the authors' code
computes the way it computes it: einsum attention with an explicit mask rebuilt on every
call and -inf masking, the relative-position bias gathered per call, 1x1 convolutions
through F.conv2d, symbols through Python lists. Both paths run on the same weights and
image, in one process, alternating, warm; medians of --repeats runs. Also checks that the
bitstreams are identical and the reconstructions agree.

    python benchmarks/fast_vs_straightforward.py --threads 2 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from reference_tcm import reference_compress, reference_decompress  # noqa: E402

from tcmcodec.config import PRESETS  # noqa: E402
from tcmcodec.model import TCM  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tcm-s")
    p.add_argument("--size", default="768x512")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    width, height = (int(v) for v in args.size.split("x"))
    torch.manual_seed(0)
    model = TCM(PRESETS[args.model]).eval()
    model.update(force=True)
    x = torch.rand(1, 3, height, width)
    times = {k: [] for k in ("fast_enc", "fast_dec", "ref_enc", "ref_dec")}
    for i in range(args.repeats + 1):
        with torch.inference_mode():
            t = time.perf_counter(); enc = model.compress(x); t1 = time.perf_counter()
            out = model.decompress(enc["strings"], enc["shape"])["x_hat"]; t2 = time.perf_counter()
            ref = reference_compress(model, x); t3 = time.perf_counter()
            ref_out = reference_decompress(model, ref["strings"], ref["shape"])["x_hat"]
            t4 = time.perf_counter()
        if i:  # first round is warm-up
            times["fast_enc"].append(t1 - t); times["fast_dec"].append(t2 - t1)
            times["ref_enc"].append(t3 - t2); times["ref_dec"].append(t4 - t3)
    med = {k: statistics.median(v) for k, v in times.items()}
    same = enc["strings"] == ref["strings"]
    diff = float((out - ref_out).abs().max())
    print(f"{args.model} {args.size}, {args.threads} threads, median of {args.repeats}")
    print(f"encode: straightforward {med['ref_enc']:.2f} s, ours {med['fast_enc']:.2f} s, "
          f"{med['ref_enc'] / med['fast_enc']:.2f}x")
    print(f"decode: straightforward {med['ref_dec']:.2f} s, ours {med['fast_dec']:.2f} s, "
          f"{med['ref_dec'] / med['fast_dec']:.2f}x")
    print(f"identical bitstreams: {same}; max |x_hat difference|: {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
