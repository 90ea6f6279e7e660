"""What defines a training run (:class:`TrainSettings`, the ``tcm train`` options) and
the defaults it starts from."""

from __future__ import annotations

from argparse import ArgumentTypeError
from dataclasses import MISSING, dataclass, field
from typing import TYPE_CHECKING, Any

from tcmcodec.errors import TcmError

if TYPE_CHECKING:  # the losses need pytorch_msssim (the train extra); `tcm train --help` does not
    from tcmcodec.train.losses import Metric

#: the rate-distortion trade-off of a fixed-rate model when none is given
DEFAULT_LAMBDA = 0.013
#: consecutive non-finite losses after which the run stops
MAX_BAD_STEPS = 20
#: the authors' gradient clipping and auxiliary learning rate
DEFAULT_CLIP = 1.0
DEFAULT_AUX_LR = 1e-3
#: learning rate of a new run when none is given (the authors' Adam setting)
DEFAULT_LR = 1e-4
#: training crops must keep the hyper-latent (1/64) whole
PATCH_MULTIPLE = 64
#: decay of the weights' moving average: a horizon of ~1000 steps (docs/training.md)
DEFAULT_EMA_DECAY = 0.999
#: validation key of the geometric mean of the rate levels' losses (checkpoint-best's
#: criterion with --balance-levels)
GEOMEAN_LOSS = "loss_geomean"


def _lambda_list(text: str) -> tuple[float, ...]:
    """``0.0025,0.013,0.05`` -> a tuple of floats (the ``--lambdas`` option)."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:  # argparse shows this message as it is
        raise ArgumentTypeError(f"expected comma-separated numbers such as 0.0025,0.013,0.05, got {text!r}") from None


#: --amp modes: which parts compute in bfloat16 (g_a/g_s inner layers, entropy-parameter networks)
AMP_MODES = {"bf16": ("transforms",), "bf16-all": ("transforms", "entropy")}


def option(default: Any = MISSING, help: str = "", **cli: Any) -> Any:
    """A :class:`TrainSettings` field with its ``tcm train`` option: ``help`` and argparse
    settings (``type``, ``metavar``, ``choices``, ``nargs``; ``flag`` to name the option
    otherwise than ``--field-name``; ``group`` for mutually exclusive required options).
    Lists get a fresh copy per instance."""
    metadata = {"help": help, **cli}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


#: the architecture of a run that names none and starts from no weights: the authors' TCM-S
DEFAULT_MODEL = "tcm-s"


@dataclass
class TrainSettings:
    """Everything that defines a training run. Each field is a ``tcm train`` option
    (:func:`tcmcodec.cli.train.add_arguments` builds them from here: defaults and help live
    in one place)."""

    data: str = option(help="folder of training images (searched recursively)", metavar="DIR")
    out: str = option(help="output folder (checkpoints, metrics.jsonl)", metavar="DIR")
    model: str | None = option(None, f"preset: tcm-s, tcm-m, tcm-l, tcm-cpu, tcm-cpu-wide, tcm-tiny, ... (default: the "
                               f"architecture of a resumed run or of --init's weights, else {DEFAULT_MODEL})")
    lmbda: float | None = option(None, f"rate-distortion trade-off of fixed-rate presets (default {DEFAULT_LAMBDA})",
                                 flag="--lambda", type=float)
    metric: Metric = option("mse", "distortion the loss measures", choices=["mse", "ms-ssim"])
    patch: int = option(256, f"random crop size (a multiple of {PATCH_MULTIPLE})", type=int)
    batch_size: int = option(8, "crops per step", type=int)
    steps: int | None = option(None, "total optimisation steps", type=int, group="length")
    epochs: float | None = option(None, "total passes over the training images", type=float, group="length")
    lr: float | None = option(None, f"learning rate (default {DEFAULT_LR}; with --resume: the run's unless given)",
                              type=float)
    aux_lr: float = option(DEFAULT_AUX_LR, "learning rate of the entropy bottleneck's quantiles", type=float)
    milestones: list[int] = option([], "steps at which the learning rate is multiplied by --gamma", type=int,
                                   nargs="*", metavar="STEP")
    gamma: float = option(0.1, "learning-rate factor at each milestone", type=float)
    warmup_steps: int = option(0, "raise the learning rate linearly over the run's first N steps (useful after "
                               "--init, e.g. from a widened model; 0: off)", type=int, metavar="N")
    clip: float = option(DEFAULT_CLIP, "gradient-norm clipping (0: off)", type=float)
    seed: int = option(0, "seed of the crop order, rate levels and initial weights", type=int)
    workers: int = option(0, "data-loading processes", type=int)
    val: str | None = option(None, "folder of validation images", metavar="DIR")
    val_split: int = option(0, "hold out N images of --data for validation (deterministic)", type=int, metavar="N")
    val_every: int = option(500, "validate every this many steps (0: at the end only)", type=int, metavar="STEPS")
    val_max_side: int = option(512, "validation images are centre-cropped to at most this size", type=int)
    val_raw: bool = option(True, "with a moving average, also validate the raw weights (logged as raw_*; "
                           "--no-val-raw halves the time validation takes)")
    checkpoint_minutes: float = option(5.0, "save checkpoint-latest this often", type=float, metavar="MIN")
    resume: bool = option(False, "continue from OUT/checkpoint-latest.pth.tar")
    init: str | None = option(None, "start from these weights (fine-tuning)", metavar="CKPT")
    device: str | None = option(None, "cpu, cuda, cuda:1 ... (default: cuda if present)")
    amp: str | None = option(None, "bfloat16 compute where the hardware has it (CUDA, or a CPU with AVX512-BF16 "
                             "or AMX): bf16 = the inner layers of g_a and g_s; bf16-all = those and the "
                             "entropy-parameter networks (likelihoods, means, scales and the loss stay float32); "
                             "validation stays float32", choices=list(AMP_MODES))
    threads: int | None = option(None, "torch CPU threads", type=int)
    progress: bool = option(True, "show a progress bar")
    max_level: float | None = option(None, "variable-rate models: train only rate levels up to this one",
                                     type=float)
    ema_decay: float = option(DEFAULT_EMA_DECAY, "decay of the weights' moving average, which is validated "
                              "and exported (0: off)", type=float, metavar="D")
    max_minutes: float | None = option(None, "stop after this much wall-clock time (checkpoint and validate "
                                       "first; --resume continues)", type=float, metavar="MIN")
    balance_levels: bool = option(False, "variable-rate models: weight each rate level's loss by the inverse "
                                  "of its running mean, so every level pulls alike (by default the highest "
                                  "lambdas dominate the shared transforms)")
    rate_lambdas: tuple[float, ...] | None = option(
        None, "variable-rate presets: train for these rate-distortion lambdas (ascending; one rate level "
        "each) instead of the preset's; with --init, trained gain vectors are resampled onto them; a "
        "resumed run keeps its own", flag="--lambdas", type=_lambda_list, metavar="L1,L2,...")


class TrainingError(TcmError):
    """A run cannot start or cannot go on (bad options, diverged loss)."""
