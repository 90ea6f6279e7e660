"""A training run's checkpoints: what they hold, resuming from one, and starting from
another model's weights (``--init``)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn

from tcmcodec.checkpoints import extract_state_dict, infer_config, is_stored, load_learned_state, read_checkpoint
from tcmcodec.config import TCMConfig, get_preset
from tcmcodec.errors import TcmError
from tcmcodec.layers.gain import resample_log_gains
from tcmcodec.weights_layout import check_sizes
from tcmcodec.train.ema import WeightAverage
from tcmcodec.train.run_state import CHECKPOINT_FORMAT, rng_state, set_rng_state
from tcmcodec.train.settings import DEFAULT_MODEL, TrainingError, TrainSettings

if TYPE_CHECKING:
    from tcmcodec.train.loop import Trainer


def run_architecture(settings: TrainSettings, latest: Path) -> TCMConfig:
    """The model a run trains: ``--model``'s preset; without it, the architecture of the run
    being resumed (``latest``), else that of the ``--init`` weights (their stored config, or
    for the authors' checkpoints the one their tensor shapes imply), else
    :data:`DEFAULT_MODEL`. So a widened or otherwise derived model trains without a preset
    of its own, and fine-tuning never silently builds another architecture."""
    if settings.model is not None:
        try:
            return get_preset(settings.model)
        except KeyError as exc:
            hint = "; or leave --model out to train the architecture of --init" if settings.init else ""
            raise TrainingError(f"{exc.args[0]}{hint}") from None
    # a run's own checkpoint (zip format, with optimizer state) is mapped, not read, for its config
    if settings.resume and latest.exists():
        source, what, mapped = latest, "the run to resume", True
    elif settings.init:
        source, what, mapped = Path(settings.init), "--init", False
    else:
        return get_preset(DEFAULT_MODEL)
    try:
        data = read_checkpoint(source, mmap=mapped)
        stored = data.get("config")
        config = TCMConfig.from_dict(stored) if isinstance(stored, dict) else infer_config(extract_state_dict(data))
        check_sizes(config)
        return config
    except (TcmError, TypeError, ValueError) as exc:
        detail = exc.args[0] if exc.args else type(exc).__name__
        raise TrainingError(f"cannot tell the architecture of {what} ({source}): {detail}; give --model") from None


def load_initial_weights(trainer: "Trainer", path: str) -> None:
    """Start from the weights of ``path`` where names and shapes match (fine-tuning).

    Gain vectors of a variable-rate checkpoint trained for other lambdas are resampled
    onto this run's lambdas (:func:`resample_log_gains`), so a model can be given
    more rate levels without starting over.
    """
    data = read_checkpoint(path)
    state = extract_state_dict(data)
    own = {k: v for k, v in trainer.model.state_dict().items() if is_stored(k)}
    source_config = data.get("config")
    source_lambdas = tuple(source_config.get("rate_lambdas", ())) if isinstance(source_config, dict) else ()
    if source_lambdas and trainer.config.variable_rate and source_lambdas != trainer.config.rate_lambdas:
        for key in [k for k in state if k.endswith(".log_gain") and k in own]:
            state[key] = resample_log_gains(state[key].float(), source_lambdas, trainer.config.rate_lambdas)
    usable = {k: v.float() for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = [k for k in own if k not in usable]
    nn.Module.load_state_dict(trainer.model, usable, strict=False)
    if trainer.rank == 0 and skipped:
        warnings.warn(f"--init: {len(skipped)} tensors not in {path} were left as initialised")


def checkpoint_payload(trainer: "Trainer") -> dict[str, Any]:
    """Everything a resumed run needs: weights, optimizers, schedule, RNG states (every
    rank's under DDP: a collective, so every rank calls it), the average, the level balance."""
    rng = rng_state()
    if trainer.world > 1:
        states: list[Any] = [None] * trainer.world
        dist.all_gather_object(states, rng)
        rng = {"per_rank": states}
    payload: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": trainer.model.state_dict(),
        "config": trainer.config.to_dict(),
        "settings": dataclasses.asdict(trainer.s),
        "step": trainer.step,
        "optimizer": trainer.optimizer.state_dict(),
        "aux_optimizer": trainer.aux_optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "rng": rng,
        "best_loss": trainer.best_loss,
        "best_criterion": trainer._selection_key(),
        "world_size": trainer.world,
    }
    if trainer.average is not None:
        trainer.average.sync_buffers(trainer.model)
        payload["ema"] = {"decay": trainer.average.decay, "updates": trainer.average.updates}
        payload["ema_state_dict"] = trainer.average.model.state_dict()
    if trainer.balancer is not None:
        payload["balancer"] = trainer.balancer.state_dict()
    return payload


def restore_run(trainer: "Trainer", path: Path) -> None:
    """Continue ``trainer`` from a checkpoint of :func:`checkpoint_payload`."""
    data = torch.load(path, map_location="cpu", weights_only=True)
    if data.get("format") != CHECKPOINT_FORMAT:
        raise TrainingError(f"{path} is not a tcmcodec training checkpoint")
    if TCMConfig.from_dict(data["config"]).replace(name=trainer.config.name) != trainer.config:
        raise TrainingError(f"{path} was trained with another model config; use another --out")
    load_learned_state(trainer.model, data["state_dict"])
    if trainer.average is not None:
        if "ema_state_dict" in data:
            trainer.average.restore(data["ema_state_dict"], data["ema"]["updates"])
        else:  # a run from before the average (or with it off): start it from here
            trainer.average = WeightAverage(trainer.model, trainer.s.ema_decay)
    trainer.optimizer.load_state_dict(data["optimizer"])
    trainer.aux_optimizer.load_state_dict(data["aux_optimizer"])
    trainer.scheduler.load_state_dict(data["scheduler"])
    trainer.step = int(data["step"])
    if trainer.balancer is not None and "balancer" in data:
        trainer.balancer.load_state_dict(data["balancer"])
    trainer._apply_schedule_from_settings()
    # a run resumed with(out) --balance-levels compares another number: start its best over
    same = data.get("best_criterion", "loss") == trainer._selection_key()
    trainer.best_loss = float(data["best_loss"]) if same else math.inf
    rng = data["rng"]
    if "per_rank" in rng:
        states = rng["per_rank"]
        rng = states[trainer.rank] if trainer.rank < len(states) else states[0]
    set_rng_state(rng)
