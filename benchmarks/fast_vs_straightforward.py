"""tcm-s at 768x512: our optimised path against the straightforward one (not a test).

The straightforward path (``tests/reference_tcm.py``) computes what the authors' code
computes the way it computes it: einsum attention with an explicit mask rebuilt on every
call and -inf masking, the relative-position bias gathered per call, transformer and TCM
blocks on whole maps with permuted views and a concatenation, 1x1 convolutions through
F.conv2d, the mean and scale branches one after the other, symbols through Python
lists, and the process's default glibc allocator.

Each path runs in its own fresh process, as a user would run it (the codec tunes the
allocator process-wide, see ``tcmcodec/runtime.py``), on the same random weights and image;
the processes alternate (``--rounds``), and the medians of all warm runs are compared. The
bitstreams and reconstructions of both paths are compared too.

    python benchmarks/fast_vs_straightforward.py --threads 2 --repeats 3 --rounds 2
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from reference_tcm import reference_compress, reference_decompress  # noqa: E402

from tcmcodec.config import PRESETS  # noqa: E402
from tcmcodec.model import TCM  # noqa: E402
from tcmcodec.runtime import reuse_freed_memory  # noqa: E402


def run_path(path: str, model_name: str, size: str, threads: int, repeats: int, out: Path) -> None:
    """One process: warm up, time ``repeats`` encodes and decodes, save times and outputs."""
    torch.set_num_threads(threads)
    width, height = (int(v) for v in size.split("x"))
    torch.manual_seed(0)
    model = TCM(PRESETS[model_name]).eval()
    model.update(force=True)
    x = torch.rand(1, 3, height, width)
    if path == "ours":
        reuse_freed_memory()  # what tcmcodec.codec does for an image coded in one pass
        compress = lambda: model.compress(x)  # noqa: E731
        decompress = lambda enc: model.decompress(enc["strings"], enc["shape"])["x_hat"]  # noqa: E731
    else:
        compress = lambda: reference_compress(model, x)  # noqa: E731
        decompress = lambda enc: reference_decompress(model, enc["strings"], enc["shape"])["x_hat"]  # noqa: E731
    enc_times, dec_times = [], []
    with torch.inference_mode():
        for i in range(repeats + 1):
            t0 = time.perf_counter()
            enc = compress()
            t1 = time.perf_counter()
            x_hat = decompress(enc)
            t2 = time.perf_counter()
            if i:  # the first round is warm-up
                enc_times.append(t1 - t0)
                dec_times.append(t2 - t1)
    torch.save({"enc": enc_times, "dec": dec_times, "strings": enc["strings"], "x_hat": x_hat}, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="tcm-s")
    p.add_argument("--size", default="768x512")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3, help="warm runs per process")
    p.add_argument("--rounds", type=int, default=2, help="processes per path, alternating")
    p.add_argument("--path", choices=["ours", "straightforward"], help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.path:
        run_path(args.path, args.model, args.size, args.threads, args.repeats, args.out)
        return 0

    results: dict[str, dict] = {"ours": {"enc": [], "dec": []}, "straightforward": {"enc": [], "dec": []}}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for path in ("straightforward", "ours"):
                out = Path(tmp) / f"{path}-{round_}.pt"
                subprocess.run([sys.executable, __file__, "--path", path, "--out", str(out),
                                "--model", args.model, "--size", args.size,
                                "--threads", str(args.threads), "--repeats", str(args.repeats)],
                               check=True)
                data = torch.load(out, weights_only=False)
                results[path]["enc"] += data["enc"]
                results[path]["dec"] += data["dec"]
                results[path]["strings"] = data["strings"]
                results[path]["x_hat"] = data["x_hat"]
    med = {path: {k: statistics.median(results[path][k]) for k in ("enc", "dec")} for path in results}
    ref, ours = med["straightforward"], med["ours"]
    runs = args.rounds * args.repeats
    print(f"{args.model} {args.size}, {args.threads} threads, median of {runs} warm runs per path "
          f"({args.rounds} processes each)")
    for key, name in (("enc", "encode"), ("dec", "decode")):
        print(f"{name}: straightforward {ref[key]:.2f} s, ours {ours[key]:.2f} s, {ref[key] / ours[key]:.2f}x")
    same = results["ours"]["strings"] == results["straightforward"]["strings"]
    diff = float((results["ours"]["x_hat"] - results["straightforward"]["x_hat"]).abs().max())
    print(f"identical bitstreams: {same}; max |x_hat difference|: {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
