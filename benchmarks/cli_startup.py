"""Wall-clock time of whole ``tcm`` commands, with and without the fast start-up (not a test).

A user who runs ``tcm encode photo.png photo.tcm`` waits for Python, torch and CompressAI to
import, for the model to load, and only then for the coding. This runs each command as a
fresh process, alternating ``TCM_FULL_IMPORTS=1`` (CompressAI imported with all of its
dependencies) and the default (placeholders for PyTorch Geometric, torchvision and pandas,
:mod:`tcmcodec.cli._startup`), and prints the medians and their ratio. ``tcm info`` reads
only the header and imports neither torch nor CompressAI either way.

    python benchmarks/cli_startup.py --image ../shared/data/kodak/kodim01.png --repeats 5
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

IMPORT_ONLY = "import tcmcodec.cli._startup as s; s.import_compressai(); import tcmcodec.codec"


def _timed(cmd: list[str], full_imports: bool) -> float:
    env = dict(os.environ, TCM_FULL_IMPORTS="1" if full_imports else "0")
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", required=True, help="a photo to encode (e.g. a Kodak image)")
    ap.add_argument("--quality", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of encode / decode")
    args = ap.parse_args()

    tcm = [sys.executable, "-m", "tcmcodec"]
    with tempfile.TemporaryDirectory() as tmp:
        coded, decoded = str(Path(tmp, "x.tcm")), str(Path(tmp, "x.png"))
        cases = {
            "import torch + CompressAI + tcmcodec.codec": [sys.executable, "-c", IMPORT_ONLY],
            "tcm encode": [*tcm, "encode", args.image, coded, "-q", str(args.quality), "--threads", str(args.threads)],
            "tcm decode": [*tcm, "decode", coded, decoded, "--threads", str(args.threads)],
            "tcm info": [*tcm, "info", coded],
        }
        _timed(cases["tcm encode"], True)  # warm the file cache; makes the file decode reads
        print(f"median of {args.repeats} fresh processes each, alternating; seconds")
        print(f"{'command':<44} {'full imports':>12} {'placeholders':>12} {'ratio':>6}")
        for name, cmd in cases.items():
            full, fast = [], []
            for _ in range(args.repeats):
                full.append(_timed(cmd, True))
                fast.append(_timed(cmd, False))
            a, b = statistics.median(full), statistics.median(fast)
            print(f"{name:<44} {a:12.2f} {b:12.2f} {a / b:6.2f}x")


if __name__ == "__main__":
    main()
