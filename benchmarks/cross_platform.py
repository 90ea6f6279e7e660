"""Do files decode on other kinds of computer? Kodak under every CPU kernel set, both ways.

Each kernel set this machine offers (tcmcodec.exact.kernel_sets: its own kernels, AVX2,
baseline; AVX-512 where present) stands in for another kind of computer. For every set a
subprocess restricted to it encodes the images (exact numerics, the bundled model) at the
matrix qualities; then a subprocess per set decodes every file of every set. Files coded
with the float numerics on the machine's own kernels are decoded the same way, to show what
exact numerics fix. A last pass, on the machine's own kernels, codes every image at every
trained quality with both numerics for the BD-rate of exact against float (PSNR and
MS-SSIM, the curves averaged over images as ``tcm eval`` does) and their times.

    python benchmarks/cross_platform.py ../shared/data/kodak --json results/cross-platform.json

Prints markdown tables for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

WORKER = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import numpy as np, torch
    torch.set_num_threads(int(sys.argv[5]))
    import tcmcodec
    from tcmcodec import codec
    from tcmcodec.metrics import as_rgb_uint8, ms_ssim, psnr
    action, folder, tag, images = sys.argv[1], Path(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
    qualities = json.loads(sys.argv[6])
    model = tcmcodec.load_model(None)
    def decode(data):
        start = time.perf_counter()
        result = codec.decode_stream_details(codec.read_stream(data), None)
        return result, time.perf_counter() - start
    if action == "encode":
        for image in images:
            for quality in qualities:
                for numerics in (["exact", "float"] if tag == "native" else ["exact"]):
                    start = time.perf_counter()
                    data = tcmcodec.encode(image, model=model, quality=quality, numerics=numerics)
                    seconds = time.perf_counter() - start
                    name = f"{Path(image).stem}.q{quality}.{numerics}.{tag}.tcm"
                    (folder / name).write_bytes(data)
                    print(json.dumps({"file": name, "encode_s": seconds}), flush=True)
    elif action == "decode":
        for path in sorted(folder.glob("*.tcm")):
            try:
                result, seconds = decode(path.read_bytes())
                print(json.dumps({"file": path.name, "symbols": list(result.symbol_digests), "decode_s": seconds}), flush=True)
            except tcmcodec.TcmError as exc:
                print(json.dumps({"file": path.name, "error": str(exc)}), flush=True)
    else:  # rate-distortion of both numerics
        for image in images:
            original = as_rgb_uint8(image)
            for quality in qualities:
                for numerics in ("exact", "float"):
                    start = time.perf_counter()
                    data = tcmcodec.encode(image, model=model, quality=quality, numerics=numerics)
                    encode_s = time.perf_counter() - start
                    result, decode_s = decode(data)
                    decoded = as_rgb_uint8(result.image)
                    print(json.dumps({"image": Path(image).stem, "quality": quality, "numerics": numerics,
                                      "bpp": 8 * len(data) / (original.shape[0] * original.shape[1]),
                                      "psnr": psnr(original, decoded), "ms_ssim": ms_ssim(original, decoded),
                                      "encode_s": encode_s, "decode_s": decode_s}), flush=True)
    """
)


def run_worker(action: str, folder: Path, kernel_set: str, images: list[str], threads: int,
               qualities: list[int]) -> list[dict]:
    from tcmcodec.exact import kernel_sets

    env = kernel_sets.environment(kernel_set, threads)
    env["PYTHONWARNINGS"] = "ignore"
    proc = subprocess.run([sys.executable, "-c", WORKER, action, str(folder), kernel_set, json.dumps(images),
                           str(threads), json.dumps(qualities)], env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{action} under {kernel_set} failed: {proc.stderr[-2000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def decode_matrix(decoded: dict[str, list[dict]], sets: list[str], numerics: str) -> dict[str, dict[str, str]]:
    """For each encoder set and decoder set: 'n/m identical' (symbols equal to the encoder
    set's own decode) over the files of that numerics."""
    by_encoder = {}
    for encoder in sets:
        row = {}
        for decoder in sets:
            own = {r["file"]: r for r in decoded[encoder]}
            files = [f for f in own if f.endswith(f".{numerics}.{encoder}.tcm")]
            if not files:
                continue
            mine = {r["file"]: r for r in decoded[decoder]}
            same = sum("symbols" in mine[f] and "symbols" in own[f] and mine[f]["symbols"] == own[f]["symbols"]
                       for f in files)
            row[decoder] = f"{same}/{len(files)}"
        if row:
            by_encoder[encoder] = row
    return by_encoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kodak", type=Path, help="folder of the images (Kodak's 24)")
    parser.add_argument("--images", type=int, default=0, help="use only the first N images (0: all)")
    parser.add_argument("--matrix-qualities", default="0,50,100", help="qualities of the decode matrix")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-rd", action="store_true", help="skip the rate-distortion pass")
    parser.add_argument("--json", type=Path, help="also write everything measured to this file")
    args = parser.parse_args(argv)

    from tcmcodec import zoo
    from tcmcodec.exact import kernel_sets

    images = sorted(str(p) for p in args.kodak.iterdir() if p.suffix.lower() == ".png")
    images = images[: args.images] if args.images else images
    matrix_qualities = [int(q) for q in args.matrix_qualities.split(",")]
    sets = kernel_sets.available()
    capabilities = {name: kernel_sets.capability(name) for name in sets}
    report: dict = {"images": len(images), "kernel_sets": capabilities, "threads": args.threads}
    print(f"kernel sets: {', '.join(f'{n} ({c})' for n, c in capabilities.items())}; {len(images)} images")

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        encoded = {s: run_worker("encode", folder, s, images, args.threads, matrix_qualities) for s in sets}
        decoded = {s: run_worker("decode", folder, s, images, args.threads, matrix_qualities) for s in sets}
    report["matrix"] = {n: decode_matrix(decoded, sets, n) for n in ("exact", "float")}
    report["refusals"] = sorted({r["error"].split(",")[0] for s in sets for r in decoded[s] if "error" in r})[:5]
    for numerics in ("exact", "float"):
        print(f"\n{numerics} numerics: files with identical symbols (rows: encoder's kernels, columns: decoder's)\n")
        print("| encoded under | " + " | ".join(sets) + " |")
        print("|---|" + "---|" * len(sets))
        for encoder, row in report["matrix"][numerics].items():
            print(f"| {encoder} | " + " | ".join(row.get(d, "") for d in sets) + " |")
    print(f"\nmatrix: {time.perf_counter() - start:.0f} s")

    if not args.no_rd:
        qualities = list(zoo.default_entry().qualities)
        with tempfile.TemporaryDirectory() as tmp:
            rows = run_worker("rd", Path(tmp), "native", images, args.threads, qualities)
        report["rd"] = rows
        print_rd(rows, qualities)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


def print_rd(rows: list[dict], qualities: list[int]) -> None:
    from tcmcodec.evaluate.bdrate import Curve, curve_bd_rate

    curves = {}
    for numerics in ("exact", "float"):
        points = [[r for r in rows if r["numerics"] == numerics and r["quality"] == q] for q in qualities]
        curves[numerics] = Curve(numerics, bpp=[statistics.fmean(r["bpp"] for r in p) for p in points],
                                 psnr=[statistics.fmean(r["psnr"] for r in p) for p in points],
                                 msssim=[statistics.fmean(r["ms_ssim"] for r in p) for p in points])
    psnr_bd = curve_bd_rate(curves["float"], curves["exact"], "psnr")
    msssim_bd = curve_bd_rate(curves["float"], curves["exact"], "ms-ssim")
    print(f"\nBD-rate of exact against float numerics: PSNR {psnr_bd.value:+.3f}%, MS-SSIM {msssim_bd.value:+.3f}%")
    print("\n| numerics | bpp (q0 .. q100) | PSNR dB | encode s (median) | decode s (median) |")
    print("|---|---|---|---|---|")
    for numerics, curve in curves.items():
        mine = [r for r in rows if r["numerics"] == numerics]
        print(f"| {numerics} | {curve.bpp[0]:.4f} .. {curve.bpp[-1]:.4f} | {curve.psnr[0]:.2f} .. {curve.psnr[-1]:.2f} | "
              f"{statistics.median(r['encode_s'] for r in mine):.2f} | {statistics.median(r['decode_s'] for r in mine):.2f} |")


if __name__ == "__main__":
    sys.exit(main())
