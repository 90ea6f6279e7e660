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
    from tcmcodec import container  # the header alone: no torch, so this takes milliseconds

    data = Path(args.file).read_bytes()
    stream = container.parse(data)
    info = {
        "file": str(args.file),
        "format_version": container.FORMAT_VERSION,
        "bytes": len(data),
        "bpp": 8 * len(data) / (stream.width * stream.height),
        "model": stream.model_name,
        "weights_hash": stream.weights_hash,
        "quality": stream.quality,
        "numerics": stream.numerics,
        "platform": stream.platform or "any (decodes everywhere)",
        "width": stream.width,
        "height": stream.height,
        "mode": stream.mode,
        "pad": list(stream.pad),
        "latent_shapes": [list(s) for s in stream.latent_shapes],
        "string_bytes": [len(s) for s in stream.strings],
        "symbol_checks": [f"{c:08x}" for c in stream.checks],
        "alpha_bytes": len(stream.alpha) if stream.alpha is not None else 0,
        "header_bytes": container.header_size(stream),
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            if isinstance(value, float):
                value = f"{value:.4f}"
            print(f"{key:<{width}}  {value}")
    return 0
