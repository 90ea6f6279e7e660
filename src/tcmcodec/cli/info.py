"""``tcm info``: what a ``.tcm`` file holds, without decoding it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HELP = "show the header of a .tcm file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    from tcmcodec.stream_info import describe  # the header alone: no torch, so this takes milliseconds

    data = Path(args.file).read_bytes()
    info = {"file": str(args.file), **describe(data)}
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            if isinstance(value, float):
                value = f"{value:.4f}"
            print(f"{key:<{width}}  {value}")
    return 0
