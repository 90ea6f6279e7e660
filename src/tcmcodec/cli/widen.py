"""``tcm widen``: continue a trained model as a wider one (function-preserving)."""

from __future__ import annotations

import argparse

HELP = "double the transform width of trained weights (same outputs), to train on with --init"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", metavar="CKPT", help="trained weights or training checkpoint")
    p.add_argument("out", metavar="OUT", help="output file, or a folder (file named NAME-HASH.pt)")
    p.add_argument("--model", metavar="PRESET",
                   help="wide preset (N and head sizes doubled; default: derived, named NAME-x2)")
    p.add_argument("--analysis-only", action="store_true",
                   help="widen only the analysis transform g_a (the encoder): decoding and its "
                        "cost stay as they are; default preset name NAME-ax2")
    p.add_argument("--noise", type=float, default=0.05,
                   help="symmetry-breaking perturbation of duplicated weights, relative (default 0.05)")
    p.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tcmcodec.checkpoints import export_weights, load_checkpoint
    from tcmcodec.config import get_preset
    from tcmcodec.errors import TcmError
    from tcmcodec.widen import widen_model

    if args.noise < 0:
        raise TcmError(f"--noise must be >= 0, got {args.noise}")
    config = None
    if args.model:
        try:
            config = get_preset(args.model)
        except KeyError as exc:
            raise TcmError(f"{exc.args[0]}; see `tcm models` or omit --model") from None
    narrow = load_checkpoint(args.checkpoint)
    wide = widen_model(narrow, config, noise=args.noise, seed=args.seed, analysis_only=args.analysis_only)
    path, digest = export_weights(wide, args.out)
    params = sum(p.numel() for p in wide.parameters())
    print(f"{path}: {Path(path).stat().st_size / 1e6:.2f} MB, model {wide.config.name} "
          f"(N={wide.config.N}, g_a N={wide.config.analysis_half_width}, {params / 1e6:.2f} M parameters), weights {digest}")
    return 0
