"""``tcm train``: train a TCM model (CPU, CUDA, or several processes with torchrun)."""

from __future__ import annotations

import argparse

HELP = "train a model on a folder of images (resumable; torchrun for several processes/GPUs)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    """One option per :class:`~tcmcodec.train.settings.TrainSettings` field, with the
    field's default and help (booleans as ``--name`` / ``--no-name``)."""
    from dataclasses import MISSING, fields

    from tcmcodec.train.settings import TrainSettings

    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for f in fields(TrainSettings):
        cli = dict(f.metadata)
        flag = cli.pop("flag", "--" + f.name.replace("_", "-"))
        group = cli.pop("group", None)
        help_text = cli.pop("help")
        has_default = f.default is not MISSING or f.default_factory is not MISSING
        default = f.default if f.default is not MISSING else (f.default_factory() if has_default else None)
        if isinstance(default, bool):
            cli["action"] = argparse.BooleanOptionalAction
        shown = not (default is None or default == [] or isinstance(default, bool))
        if shown and "default" not in help_text:
            help_text += " (default: %(default)s)"
        kwargs = dict(dest=f.name, default=default, help=help_text, **cli)
        if group is not None:
            if group not in groups:
                groups[group] = p.add_mutually_exclusive_group(required=True)
            groups[group].add_argument(flag, **kwargs)
        else:
            p.add_argument(flag, required=not has_default, **kwargs)


def run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from tcmcodec.train.loop import train
    from tcmcodec.train.settings import TrainSettings

    settings = TrainSettings(**{f.name: getattr(args, f.name) for f in fields(TrainSettings)})
    metrics = train(settings)
    if metrics:
        print(f"done: step {int(metrics['step'])} loss {metrics['loss']:.4f} bpp {metrics['bpp']:.4f} "
              f"PSNR {metrics['psnr']:.2f} dB, {metrics['patches_per_s']:.2f} patches/s")
    return 0
