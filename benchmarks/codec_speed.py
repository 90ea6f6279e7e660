"""Encode/decode speed and peak memory of the codec (not a test: numbers for docs/benchmarks.md).

Each (model, size, threads) case runs in a fresh subprocess so that peak resident memory
(ru_maxrss) is its own. Times are medians over --repeats warm runs, split into network time
(transforms and entropy-parameter networks) and entropy coding (the range coder), measured
by timing the coder's calls. Random weights are fine for speed (the work does not depend on the values
much; the bundled model is measured with its real weights).

    python benchmarks/codec_speed.py --models default,tcm-s,tcm-m,tcm-l --threads 1,2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

CASE = r"""
import json, resource, statistics, sys, time
import numpy as np, torch
from tcmcodec.coding import range_coder
device = "cuda" if "{threads}" == "cuda" else "cpu"
torch.set_num_threads(2 if device == "cuda" else int("{threads}"))
from tcmcodec.codec import encode_image, decode, load_model
from tcmcodec.config import PRESETS
from tcmcodec.model import TCM
if "{model}" == "default":
    model = load_model(None)
else:
    torch.manual_seed(0)
    model = TCM(PRESETS["{model}"]).eval(); model.update(force=True)
model = model.to(device)
width, height = {width}, {height}
rng = np.random.default_rng(0)
# a smooth image with texture: closer to a photo's rate than noise
yy, xx = np.mgrid[0:height, 0:width]
img = (127 + 60 * np.sin(xx / 37.0)[..., None] * np.cos(yy / 23.0)[..., None] + rng.normal(0, 8, (height, width, 3)))
img = np.clip(img, 0, 255).astype(np.uint8)
coding = [0.0]
def timed(fn):
    def wrapper(*a, **k):
        t = time.perf_counter(); r = fn(*a, **k); coding[0] += time.perf_counter() - t; return r
    return wrapper
range_coder.SymbolEncoder.encode = timed(range_coder.SymbolEncoder.encode)
range_coder.SymbolEncoder.finish = timed(range_coder.SymbolEncoder.finish)
range_coder.SymbolDecoder.decode = timed(range_coder.SymbolDecoder.decode)
quality = 60 if model.rate_levels else None
enc, dec, enc_c, dec_c = [], [], [], []
for i in range({repeats} + 1):
    coding[0] = 0.0; t = time.perf_counter(); result = encode_image(img, model, quality); e = time.perf_counter() - t; ec = coding[0]
    coding[0] = 0.0; t = time.perf_counter(); decode(result.data, model); d = time.perf_counter() - t; dc = coding[0]
    if i or {repeats} == 0:
        enc.append(e); dec.append(d); enc_c.append(ec); dec_c.append(dc)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if device == "cuda":  # GPU memory instead of host memory
    peak = torch.cuda.max_memory_allocated() / 2**20
print(json.dumps(dict(encode_s=statistics.median(enc), decode_s=statistics.median(dec),
      encode_coding_s=statistics.median(enc_c), decode_coding_s=statistics.median(dec_c),
      peak_mb=peak, bpp=result.bits_per_pixel)))
"""


#: images at least this large get --large-repeats runs (4K: minutes per run)
LARGE_PIXELS = 8_000_000


def run_case(model: str, width: int, height: int, threads: str, repeats: int) -> dict:
    code = CASE.format(model=model, width=width, height=height, threads=threads, repeats=repeats)
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cuda_present() -> bool:
    import torch

    return torch.cuda.is_available()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="default,tcm-s,tcm-m,tcm-l")
    p.add_argument("--sizes", default="768x512,1920x1080,3840x2160")
    p.add_argument("--threads", default="1,2" + (",cuda" if _cuda_present() else ""),
                   help="CPU thread counts, and 'cuda' for a GPU row")
    p.add_argument("--repeats", type=int, default=3, help="warm runs per case (median)")
    p.add_argument("--large-repeats", type=int, default=0,
                   help="runs for images of 8 MP or more (0: one run, no warm-up)")
    p.add_argument("--json", help="also write the rows to this JSON file")
    args = p.parse_args(argv)
    rows = []
    print("| model | size | threads | encode s (net + coder) | decode s (net + coder) | peak MB | bpp |")
    print("|---|---|---|---|---|---|---|")
    for model in args.models.split(","):
        for size in args.sizes.split(","):
            width, height = (int(v) for v in size.split("x"))
            for threads in args.threads.split(","):
                start = time.perf_counter()
                repeats = args.large_repeats if width * height >= LARGE_PIXELS else args.repeats
                r = run_case(model, width, height, threads, repeats)
                r.update(model=model, size=size, threads=threads, wall_s=time.perf_counter() - start)
                rows.append(r)
                if "error" in r:
                    print(f"| {model} | {size} | {threads} | error: {r['error']} | | | |")
                    continue
                e, ec, d, dc = r["encode_s"], r["encode_coding_s"], r["decode_s"], r["decode_coding_s"]
                print(f"| {model} | {size} | {threads} | {e:.2f} ({e - ec:.2f} + {ec:.2f}) | "
                      f"{d:.2f} ({d - dc:.2f} + {dc:.2f}) | {r['peak_mb']:.0f} | {r['bpp']:.3f} |", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
