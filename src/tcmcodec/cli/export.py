"""``tcm export``: inference weights from a training checkpoint."""

from __future__ import annotations

import argparse

HELP = "export inference weights (no optimizer state; optional fp16) from a checkpoint"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT")
    p.add_argument("out", metavar="OUT", help="output file, or a folder (file named NAME-HASH.pt)")
    p.add_argument("--fp16", action="store_true", help="store weights as float16 (half the size)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tcmcodec.checkpoints import export_weights, load_checkpoint

    model = load_checkpoint(args.checkpoint)
    path, digest = export_weights(model, args.out, half=args.fp16)
    size = Path(path).stat().st_size
    print(f"{path}: {size / 1e6:.2f} MB, model {model.config.name}, weights {digest}")
    return 0
