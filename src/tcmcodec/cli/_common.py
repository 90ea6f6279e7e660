"""Helpers shared by the ``tcm`` sub-commands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from tcmcodec.errors import TcmError


def add_model_arguments(p: argparse.ArgumentParser, *, quality: bool = True) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--model", metavar="NAME", help="registered model (see `tcm models`); default: the bundled one")
    group.add_argument("--checkpoint", metavar="PATH", help="checkpoint file (ours or the authors')")
    if quality:
        p.add_argument("-q", "--quality", type=float, metavar="Q",
                       help="quality 0..100 for variable-rate models (default: the model's)")


def model_argument(args: argparse.Namespace):
    return args.checkpoint or args.model


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: all cores)")
    p.add_argument("--max-pixels", type=float, metavar="N", default=None,
                   help="refuse images with more pixels (default 2^28; 0 = no limit)")


def apply_threads(args: argparse.Namespace) -> None:
    if getattr(args, "threads", None):
        import torch

        torch.set_num_threads(args.threads)


def max_pixels(args: argparse.Namespace):
    from tcmcodec.image_io import DEFAULT_MAX_PIXELS

    value = getattr(args, "max_pixels", None)
    if value is None:
        return DEFAULT_MAX_PIXELS
    return None if value <= 0 else int(value)


def check_output(inp: str | os.PathLike, out: str | os.PathLike, force: bool = True) -> None:
    """Refuse to overwrite the input with the output."""
    try:
        if Path(out).exists() and Path(inp).exists() and Path(out).samefile(inp):
            raise TcmError(f"output {out} is the input file; choose another output path")
    except OSError:
        pass
    parent = Path(out).parent
    if not parent.exists():
        raise TcmError(f"output folder {parent} does not exist")
