"""What defines a training run (:class:`TrainSettings`, the ``tcm train`` options) and
the defaults it starts from."""

from __future__ import annotations

from dataclasses import dataclass, field

from tcmcodec.errors import TcmError
from tcmcodec.train.losses import Metric

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


@dataclass
class TrainSettings:
    """Everything that defines a training run (the ``tcm train`` options)."""

    data: str
    out: str
    model: str = "tcm-s"
    lmbda: float | None = 0.013
    metric: Metric = "mse"
    patch: int = 256
    batch_size: int = 8
    steps: int | None = None
    epochs: float | None = None
    #: base learning rate; None: DEFAULT_LR for a new run, the checkpoint's for a resumed one
    lr: float | None = None
    aux_lr: float = DEFAULT_AUX_LR
    milestones: list[int] = field(default_factory=list)
    gamma: float = 0.1
    #: the learning rate rises linearly over the run's first steps (after --init: new
    #: weights, e.g. a widened model, meet a fresh Adam); 0: no warm-up
    warmup_steps: int = 0
    clip: float = DEFAULT_CLIP
    seed: int = 0
    workers: int = 0
    val: str | None = None
    val_split: int = 0
    val_every: int = 500
    val_max_side: int = 512
    #: also validate the raw weights when a moving average is kept (doubles validation time)
    val_raw: bool = True
    checkpoint_minutes: float = 5.0
    resume: bool = False
    init: str | None = None
    device: str | None = None
    amp: str | None = None
    threads: int | None = None
    progress: bool = True
    max_level: float | None = None
    #: moving average of the weights (validated, exported); 0 switches it off
    ema_decay: float = DEFAULT_EMA_DECAY
    #: stop (checkpoint, validate) after this much wall-clock time; resumable like any stop
    max_minutes: float | None = None
    #: variable-rate models: weight each level's loss by the inverse of its running mean
    #: (LevelBalancer) instead of letting the highest lambdas dominate
    balance_levels: bool = False
    #: variable-rate presets: train for these lambdas instead of the preset's (ascending);
    #: None: the preset's, or, resuming, the run's own
    rate_lambdas: tuple[float, ...] | None = None


class TrainingError(TcmError):
    """A run cannot start or cannot go on (bad options, diverged loss)."""
