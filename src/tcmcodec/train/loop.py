"""The training loop: exactly resumable, kill-safe checkpoints, CPU or CUDA, torchrun/DDP.

One :class:`TrainSettings` describes a run; :func:`train` runs it. Checkpoints
(``checkpoint-latest.pth.tar`` and ``checkpoint-best.pth.tar`` in the output folder) hold
the model weights and config, the step, both optimizers, the scheduler, every RNG state and
the moving average of the weights (``ema_state_dict``: what validation measures and what
``tcm export`` / ``--init`` / ``tcm eval`` take from a training checkpoint). They are written
atomically, so ``resume=True`` continues exactly where the last checkpoint left off and
killing the process loses at most the work since then.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from tcmcodec.config import TCMConfig
from tcmcodec.model import TCM
from tcmcodec.runtime import native_bfloat16
from tcmcodec.train.checkpointing import checkpoint_payload, load_initial_weights, restore_run, run_architecture
from tcmcodec.train.data import (RandomCropDataset, StepSampler, count_smaller_than, list_images, load_validation,
                                  split_holdout)
from tcmcodec.train.distributed import distributed_setup
from tcmcodec.train.ema import WeightAverage
from tcmcodec.train.losses import LevelBalancer, rate_distortion_loss
from tcmcodec.train.metrics_log import MetricsLog
from tcmcodec.train.optimizers import adam, split_parameters, step_scaled
from tcmcodec.train.run_state import BEST, LATEST, atomic_save
from tcmcodec.train.stopping import StopSignals
from tcmcodec.train.validation import validate_levels
from tcmcodec.train.settings import (AMP_MODES, DEFAULT_LAMBDA, DEFAULT_LR, GEOMEAN_LOSS, MAX_BAD_STEPS, PATCH_MULTIPLE,
                                     TrainingError, TrainSettings)


# ---------------------------------------------------------------------------- the run
class Trainer:
    """State of one run; see :func:`train`."""

    def __init__(self, settings: TrainSettings) -> None:
        self.s = settings
        self.rank, self.world, local_rank = distributed_setup()
        if settings.threads:
            torch.set_num_threads(settings.threads)
        if settings.device:
            self.device = torch.device(settings.device)
        elif torch.cuda.is_available():
            self.device = torch.device("cuda", local_rank)
        else:
            self.device = torch.device("cpu")
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True  # crops have one size: pick the fastest kernels once
        if settings.amp not in (None, *AMP_MODES):
            raise TrainingError(f"--amp {settings.amp} is not supported; use one of {', '.join(AMP_MODES)}")
        if settings.amp and not native_bfloat16(self.device):
            raise TrainingError(f"--amp {settings.amp}: {self.device} has no bfloat16 units (CPUs need AVX512-BF16 "
                                "or AMX), so it would be slower; drop --amp")
        self.out = Path(settings.out)
        if self.rank == 0:
            self.out.mkdir(parents=True, exist_ok=True)

        self.config: TCMConfig = run_architecture(settings, self.out / LATEST)
        self._set_rate_lambdas(settings)
        if self.config.variable_rate and settings.lmbda is not None:
            raise TrainingError(f"{self.config.name} is variable-rate (lambdas {list(self.config.rate_lambdas)}): "
                                "drop --lambda")
        if not self.config.variable_rate and settings.lmbda is None:
            settings = self.s = dataclasses.replace(settings, lmbda=DEFAULT_LAMBDA)
        if settings.patch < PATCH_MULTIPLE or settings.patch % PATCH_MULTIPLE:
            raise TrainingError(f"--patch must be a multiple of {PATCH_MULTIPLE}, got {settings.patch}")

        paths = list_images(settings.data)
        if not paths:
            raise TrainingError(f"no images found in {settings.data}")
        val_paths: list[Path] = []
        if settings.val_split:
            paths, val_paths = split_holdout(paths, settings.val_split)
        if settings.val:
            val_paths = list_images(settings.val)
        self.train_paths = paths
        self.val_images = load_validation(val_paths, settings.val_max_side, PATCH_MULTIPLE)

        images_per_step = settings.batch_size * self.world
        if settings.steps is None and settings.epochs is None:
            raise TrainingError("give --steps or --epochs")
        self.total_steps = settings.steps if settings.steps is not None else math.ceil(
            settings.epochs * len(paths) / images_per_step
        )

        torch.manual_seed(settings.seed)
        self.model = TCM(self.config).to(self.device)
        reduced = AMP_MODES.get(settings.amp or "", ())
        if "transforms" in reduced:
            self.model.transform_dtype = torch.bfloat16
        if "entropy" in reduced:
            self.model.entropy_dtype = torch.bfloat16
        if settings.init:
            self._load_init(settings.init)
        main_params, aux_params = split_parameters(self.model)
        self.optimizer = adam(main_params, DEFAULT_LR if settings.lr is None else settings.lr)
        self.aux_optimizer = adam(aux_params, settings.aux_lr)
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(settings.milestones), gamma=settings.gamma
        )
        if settings.max_minutes is not None and settings.max_minutes <= 0:
            raise TrainingError(f"--max-minutes must be positive, got {settings.max_minutes}")
        if settings.warmup_steps < 0:
            raise TrainingError(f"--warmup-steps must be 0 or more, got {settings.warmup_steps}")
        if not 0.0 <= settings.ema_decay < 1.0:
            raise TrainingError(f"--ema-decay must be in [0, 1), got {settings.ema_decay}")
        self.average = WeightAverage(self.model, settings.ema_decay) if settings.ema_decay else None
        if settings.balance_levels and not self.config.variable_rate:
            raise TrainingError(f"--balance-levels needs a variable-rate model; {self.config.name} has one rate")
        self.balancer = LevelBalancer(self.config.rate_levels) if settings.balance_levels else None
        self.step = 0
        self.best_loss = math.inf
        self.bad_steps = 0
        torch.manual_seed(settings.seed + 1000 * self.rank)  # per-rank quantization noise
        if settings.resume and (self.out / LATEST).exists():
            self._resume(self.out / LATEST)
        self.net: nn.Module = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.logger = MetricsLog(self.out, self.rank == 0)

    def _set_rate_lambdas(self, settings: TrainSettings) -> None:
        """The lambda table of the run: ``--lambdas``, else a resumed run's own, else the
        preset's. Sets ``self.config``."""
        lambdas = settings.rate_lambdas
        latest = self.out / LATEST
        if lambdas is None and settings.resume and latest.exists() and self.config.variable_rate:
            stored = torch.load(latest, map_location="cpu", weights_only=True, mmap=True).get("config", {})
            lambdas = tuple(stored.get("rate_lambdas", ())) or None
        if lambdas is None:
            return
        if not self.config.variable_rate:
            raise TrainingError(f"--lambdas: {self.config.name} is a fixed-rate model; give it one --lambda "
                                "or pick a variable-rate preset (e.g. tcm-cpu-wide)")
        try:
            self.config = self.config.replace(rate_lambdas=tuple(float(v) for v in lambdas))
        except ValueError as exc:
            raise TrainingError(f"--lambdas: {exc}") from None

    # -------------------------------------------------------------- checkpoints
    def _load_init(self, path: str) -> None:
        load_initial_weights(self, path)

    def checkpoint(self) -> dict[str, Any]:
        return checkpoint_payload(self)

    def save(self, best: bool = False) -> None:
        payload = self.checkpoint()  # collective under DDP: every rank calls it
        if self.rank != 0:
            return
        atomic_save(payload, self.out / LATEST)
        if best:
            atomic_save(payload, self.out / BEST)

    def _resume(self, path: Path) -> None:
        restore_run(self, path)

    def _apply_schedule_from_settings(self) -> None:
        """After a resume, the command line's milestones and gamma (and --lr, when given)
        hold from here on: lr = base * gamma ** (milestones already passed)."""
        self.scheduler.milestones = Counter(self.s.milestones)
        self.scheduler.gamma = self.s.gamma
        if self.s.lr is None:
            return
        passed = sum(1 for milestone in self.s.milestones if milestone <= self.step)
        self.scheduler.base_lrs = [self.s.lr for _ in self.optimizer.param_groups]
        for group in self.optimizer.param_groups:
            group["initial_lr"] = self.s.lr
            group["lr"] = self.s.lr * self.s.gamma**passed

    # -------------------------------------------------------------- steps
    def _lambdas(self, levels: torch.Tensor) -> torch.Tensor:
        table = torch.tensor(self.config.rate_lambdas, device=self.device)
        return table[levels]

    def train_step(self, batch: torch.Tensor) -> dict[str, float] | None:
        """One optimisation step; returns its metrics, or None if it was skipped."""
        self.model.train()
        x = batch.to(self.device, non_blocking=True)
        n = x.shape[0]
        if self.config.variable_rate:
            top = self.config.rate_levels if self.s.max_level is None else int(self.s.max_level) + 1
            levels = torch.randint(0, top, (n,), device=self.device)
            rate: torch.Tensor | None = levels.float()
            lmbda = self._lambdas(levels)
        else:
            rate = None
            lmbda = torch.full((n,), float(self.s.lmbda), device=self.device)
        self.optimizer.zero_grad(set_to_none=True)
        self.aux_optimizer.zero_grad(set_to_none=True)
        output = self.net(x, rate) if rate is not None else self.net(x)
        weights = self.balancer.weights(levels) if self.balancer is not None else None
        metrics = rate_distortion_loss(output, x, lmbda, self.s.metric, weights)
        sample_loss = metrics.pop("sample_loss")
        if self.balancer is not None:
            self.balancer.update(levels, sample_loss)
        loss = metrics["loss"]
        loss.backward()
        # the norm is needed anyway to catch gradients that overflowed under a finite loss
        # (the weights would turn NaN at once); clip=0 only measures it
        norm = nn.utils.clip_grad_norm_(self.optimizer.param_groups[0]["params"],
                                        self.s.clip if self.s.clip > 0 else math.inf)
        finite = torch.isfinite(loss.detach()) & torch.isfinite(norm)
        if self.world > 1:
            flag = finite.float().to(self.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            finite = flag > 0
        if not bool(finite):
            self.optimizer.zero_grad(set_to_none=True)
            self.bad_steps += 1
            if self.rank == 0:
                warnings.warn(f"step {self.step}: non-finite loss or gradient, step skipped")
            if self.bad_steps >= MAX_BAD_STEPS:
                raise TrainingError(
                    f"{MAX_BAD_STEPS} non-finite losses or gradients in a row at step {self.step}: the run "
                    "diverged; lower --lr or resume from an earlier checkpoint"
                )
            return None
        self.bad_steps = 0
        self._optimizer_step()
        aux = self.model.aux_loss()
        aux.backward()
        self.aux_optimizer.step()
        if self.average is not None:
            self.average.update(self.model)
        self.scheduler.step()
        result = {k: float(v.detach()) for k, v in metrics.items()}
        result["aux"] = float(aux.detach())
        return result

    def warmup_factor(self) -> float:
        """Multiplier of the learning rate at this step: (step + 1) / warmup_steps during the
        run's first ``warmup_steps`` steps, then 1."""
        n = self.s.warmup_steps
        return 1.0 if self.step >= n else (self.step + 1) / n

    def _optimizer_step(self) -> None:
        """One Adam step at the warmed-up learning rate (see :func:`step_scaled`)."""
        step_scaled(self.optimizer, self.warmup_factor())

    def validate(self) -> dict[str, float] | None:
        """Estimated bpp and PSNR on the validation images at every rate level, of the
        averaged weights when the run keeps an average (the raw weights' under ``raw_``)."""
        if not self.val_images:
            return None
        if self.average is None:
            return self._validate(self.model)
        self.average.sync_buffers(self.model)
        totals = self._validate(self.average.model)
        if self.s.val_raw:
            totals.update({f"raw_{k}": v for k, v in self._validate(self.model).items()})
        return totals

    def _validate(self, model: nn.Module) -> dict[str, float]:
        return validate_levels(model, self.config, self.val_images, self.device, self.s.metric, self.s.lmbda)

    def _selection_key(self) -> str:
        """The validation key that picks checkpoint-best: the mean loss over rate levels, or
        with --balance-levels their geometric mean."""
        return GEOMEAN_LOSS if self.balancer is not None else "loss"

    def _selection_loss(self, val: dict[str, float]) -> float:
        return val.get(self._selection_key(), val["loss"])

    def _stop_reason(self, started: float) -> str | None:
        """``"time"`` once --max-minutes has passed, ``"signal"`` after a stop signal, else
        None; rank 0 decides for every rank."""
        reasons = (None, "time", "signal")
        out_of_time = self.s.max_minutes is not None and time.monotonic() - started >= self.s.max_minutes * 60
        code = 2 if self._stop_signals.received is not None else int(out_of_time)
        if self.world > 1:  # one small broadcast per step
            flag = torch.tensor([code], dtype=torch.float32, device=self.device)
            dist.broadcast(flag, src=0)
            code = int(flag.item())
        return reasons[code]

    def _report_upscaled_images(self) -> None:
        """One line on stderr when training images are smaller than the patch: their crops
        are upscaled (bicubic), which softens them, so the user can pick a smaller patch."""
        smaller, checked = count_smaller_than(self.train_paths, self.s.patch)
        if smaller:
            print(f"tcm train: {smaller} of {checked} training images checked have a side under --patch "
                  f"{self.s.patch}; their crops are upscaled (bicubic), softer than the photos. "
                  "A smaller --patch keeps more of them at their own size", file=sys.stderr)

    def run(self) -> dict[str, float]:
        s = self.s
        if self.rank == 0:
            self._report_upscaled_images()
        dataset = RandomCropDataset(self.train_paths, s.patch, seed=s.seed)
        sampler = StepSampler(self.step, self.total_steps, s.batch_size, self.rank, self.world)
        loader = DataLoader(dataset, batch_size=s.batch_size, sampler=sampler, num_workers=s.workers,
                            pin_memory=self.device.type == "cuda", persistent_workers=False,
                            # its own generator: creating the iterator must not consume the
                            # global RNG, whose state the checkpoint restores
                            generator=torch.Generator().manual_seed(s.seed))
        bar = None
        if self.rank == 0 and s.progress:
            from tqdm import tqdm

            bar = tqdm(total=self.total_steps, initial=self.step, unit="step", dynamic_ncols=True,
                       file=sys.stderr, smoothing=0.05)
        last_save = started = time.monotonic()
        window: list[dict[str, float]] = []
        tick = time.monotonic()
        last: dict[str, float] = {}
        stop: str | None = None
        self._stop_signals = StopSignals().install()
        try:
            for batch in loader:
                metrics = self.train_step(batch)
                self.step += 1
                if metrics is not None:
                    window.append(metrics)
                if bar is not None:
                    bar.update(1)
                if window and (self.step % 10 == 0 or self.step == self.total_steps):
                    now = time.monotonic()
                    avg = {k: sum(m[k] for m in window) / len(window) for k in window[0]}
                    avg["steps_per_s"] = len(window) / max(now - tick, 1e-9)
                    avg["patches_per_s"] = avg["steps_per_s"] * s.batch_size * self.world
                    avg["lr"] = self.optimizer.param_groups[0]["lr"]
                    self.logger.log("train", self.step, avg)
                    last = {**avg, "step": float(self.step)}
                    if bar is not None:
                        bar.set_postfix(loss=f"{avg['loss']:.3f}", bpp=f"{avg['bpp']:.3f}",
                                        psnr=f"{avg['psnr']:.2f}", refresh=False)
                    window, tick = [], now
                is_best = False
                if s.val_every and self.step % s.val_every == 0:
                    val = self.validate()
                    if val is not None:
                        self.logger.log("val", self.step, val)
                        current = self._selection_loss(val)
                        if current < self.best_loss:
                            self.best_loss, is_best = current, True
                if is_best or time.monotonic() - last_save >= s.checkpoint_minutes * 60:
                    self.save(best=is_best)
                    last_save = time.monotonic()
                stop = self._stop_reason(started)
                if stop is not None:
                    break
            self.save(best=False)
            if stop == "signal":  # no final validation: whoever stopped the run wants it to end
                if self.rank == 0:
                    print(f"tcm train: stopped by a signal at step {self.step}; checkpoint saved, "
                          "--resume continues", file=sys.stderr)
                return last
            val = self.validate() if s.val_every else None
            if val is not None:
                self.logger.log("val", self.step, val)
                current = self._selection_loss(val)
                if current < self.best_loss:
                    self.best_loss = current
                    self.save(best=True)
        finally:
            self._stop_signals.restore()
            if bar is not None:
                bar.close()
        return last


def train(settings: TrainSettings) -> dict[str, float]:
    """Run (or resume) training as ``settings`` says; returns the last logged metrics."""
    trainer = Trainer(settings)
    try:
        return trainer.run()
    finally:
        if trainer.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
