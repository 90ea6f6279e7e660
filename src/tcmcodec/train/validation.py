"""Validation of a model during training: estimated rate, PSNR and loss at every rate level."""

from __future__ import annotations

import math

import torch
from torch import nn

from tcmcodec.config import TCMConfig
from tcmcodec.train.losses import Metric, rate_distortion_loss
from tcmcodec.train.settings import GEOMEAN_LOSS


@torch.no_grad()
def validate_levels(model: nn.Module, config: TCMConfig, images: list[torch.Tensor], device: torch.device,
                    metric: Metric, lmbda: float | None) -> dict[str, float]:
    """Mean ``loss``, ``bpp`` and ``psnr`` over ``images`` (each (1, 3, H, W) in [0, 1]) at
    every rate level (keys ``loss@3`` ...; a fixed-rate model at ``lmbda``, keys without a
    level), their mean ``loss`` and, with several levels, the geometric mean of the levels'
    losses (:data:`GEOMEAN_LOSS`). Runs in float32 whatever the training precision, so runs
    with and without --amp compare."""
    reduced, model.transform_dtype = model.transform_dtype, None
    try:
        model.eval()
        levels = list(range(config.rate_levels)) if config.variable_rate else [None]
        totals: dict[str, float] = {}
        for level in levels:
            lam = config.rate_lambdas[level] if level is not None else float(lmbda)
            for image in images:
                x = image.to(device)
                out = model(x, float(level)) if level is not None else model(x)
                out["x_hat"] = out["x_hat"].clamp(0, 1)
                m = rate_distortion_loss(out, x, torch.tensor([lam], device=device), metric)
                tag = "" if level is None else f"@{level}"
                for key in ("loss", "bpp", "psnr"):
                    totals[key + tag] = totals.get(key + tag, 0.0) + float(m[key]) / len(images)
        per_level = [v for k, v in totals.items() if k.startswith("loss")]
        totals["loss"] = sum(per_level) / max(1, len(levels))
        if len(per_level) > 1 and all(v > 0 for v in per_level):
            # what --balance-levels minimises: every level's relative change counts alike
            totals[GEOMEAN_LOSS] = math.exp(sum(math.log(v) for v in per_level) / len(per_level))
        return totals
    finally:
        model.transform_dtype = reduced
