"""Whole-process time and peak memory of ``tcm`` commands beside ``import torch`` (not a test).

A user who runs ``tcm decode photo.tcm photo.png`` waits for Python and torch to import,
for the model to load and for the decoding; this is what the runtime costs on top of
torch itself. Each command runs as a fresh process, the cases alternating round by round so
that drifts of a noisy machine hit all of them alike; prints the median wall time, the
median peak RSS (from ``wait4``) and each command's time over ``import torch``.

    python benchmarks/cli_startup.py --image ../shared/data/kodak/kodim23.png --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KIB_PER_MIB = 1024


def run_once(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one fresh process running ``cmd``."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-500:]}")
    return elapsed, usage.ru_maxrss / KIB_PER_MIB  # Linux reports KiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", required=True, help="a photo to encode (e.g. a Kodak image)")
    ap.add_argument("--quality", type=int, default=60)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="torch threads of encode / decode")
    args = ap.parse_args()

    tcm = [sys.executable, "-m", "tcmcodec"]
    threads = ["--threads", str(args.threads)]
    with tempfile.TemporaryDirectory() as tmp:
        coded, decoded = str(Path(tmp, "x.tcm")), str(Path(tmp, "x.png"))
        cases = {
            "python -c 'import torch'": [sys.executable, "-c", "import torch"],
            "tcm encode": [*tcm, "encode", args.image, coded, "-q", str(args.quality), *threads],
            # g_a in float32 even where bfloat16 is native (the default picks per machine)
            "tcm encode (g_a float32)": [*tcm, "encode", args.image, str(Path(tmp, "f.tcm")), "-q",
                                         str(args.quality), *threads, "--analysis-precision", "float32"],
            "tcm decode": [*tcm, "decode", coded, decoded, *threads],
            "tcm info": [*tcm, "info", coded],
        }
        run_once(cases["tcm encode"])  # warms the file cache and writes the file decode reads
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(args.repeats):
            for name, cmd in cases.items():
                samples[name].append(run_once(cmd))
    baseline = statistics.median(t for t, _ in samples["python -c 'import torch'"])
    print(f"{Path(args.image).name}, {args.threads} threads, median of {args.repeats} fresh processes")
    print(f"{'command':<26} {'wall s':>7} {'minus import torch':>19} {'peak RSS MiB':>13}")
    for name, values in samples.items():
        wall = statistics.median(t for t, _ in values)
        rss = statistics.median(r for _, r in values)
        print(f"{name:<26} {wall:7.2f} {wall - baseline:19.2f} {rss:13.0f}")


if __name__ == "__main__":
    main()
