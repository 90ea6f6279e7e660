"""``tcm export``: inference weights from a training checkpoint (or the mean of several)."""

from __future__ import annotations

import argparse

HELP = "export inference weights (no optimizer state; optional fp16) from a checkpoint"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoints", metavar="CKPT", nargs="+",
                   help="training checkpoint or weights; several (same model): export the mean of their "
                        "weights, e.g. of runs branched from one checkpoint (a model soup)")
    p.add_argument("out", metavar="OUT", help="output file, or a folder (file named NAME-HASH.pt)")
    p.add_argument("--fp16", action="store_true", help="store weights as float16 (half the size)")
    p.add_argument("--scale-levels", type=int, default=None, metavar="N",
                   help="entries of the Gaussian scale table the exported model codes with (default: "
                        "the checkpoint's, CompressAI's 64); 256 codes y within 0.1%% of its entropy "
                        "instead of 0.5%%. Part of the weights' identity (their hash)")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tcmcodec.checkpoints import average_models, export_weights, load_checkpoint
    from tcmcodec.errors import TcmError

    models = [load_checkpoint(path) for path in args.checkpoints]
    config = None
    if args.scale_levels is not None:
        try:
            config = models[0].config.replace(scale_levels=args.scale_levels)
        except ValueError as exc:
            raise TcmError(f"--scale-levels: {exc}") from None
    # one model as loaded, or the mean of several (a mean of one: the same weights, rebuilt
    # for the other scale table)
    model = models[0] if len(models) == 1 and config is None else average_models(models, config)
    path, digest = export_weights(model, args.out, half=args.fp16)
    size = Path(path).stat().st_size
    what = f"mean of {len(models)} checkpoints, " if len(models) > 1 else ""
    print(f"{path}: {size / 1e6:.2f} MB, {what}model {model.config.name}, weights {digest}")
    return 0
