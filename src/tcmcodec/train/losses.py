"""Rate-distortion losses (per-sample lambdas, for variable-rate training)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pytorch_msssim import ms_ssim
from torch import Tensor

from tcmcodec.metrics import PIXEL_RANGE

Metric = Literal["mse", "ms-ssim"]
#: MSE is measured on [0, 1] images but lambdas are quoted for 8-bit ones
#: decay of LevelBalancer's running mean of each level's loss (a horizon of ~100 draws)
BALANCE_DECAY = 0.99


def bits_per_pixel(likelihoods: dict[str, Tensor], num_pixels: int) -> Tensor:
    """(B,) estimated bits per pixel of each sample from its latent likelihoods."""
    total = sum(lik.log2().flatten(1).sum(1) for lik in likelihoods.values())
    return -total / num_pixels


def rate_distortion_loss(
    output: dict, target: Tensor, lmbda: Tensor, metric: Metric = "mse", weights: Tensor | None = None
) -> dict[str, Tensor]:
    """Loss ``mean(weight * (lambda * D + bpp))`` with D = 255^2 * MSE or 1 - MS-SSIM.

    Args:
        output: the model's forward output (``x_hat``, ``likelihoods``).
        target: (B, 3, H, W) images in [0, 1].
        lmbda: (B,) per-sample trade-offs.
        weights: (B,) per-sample loss weights (``LevelBalancer``); None: all 1.
    Returns ``loss``, ``bpp``, ``mse``, ``psnr`` (and ``ms_ssim`` for that metric), all
    scalars, and ``sample_loss``: the (B,) unweighted per-sample losses, detached.
    """
    batch, _, height, width = target.shape
    bpp = bits_per_pixel(output["likelihoods"], height * width)
    x_hat = output["x_hat"]
    mse = (x_hat - target).square().flatten(1).mean(1)
    if metric == "mse":
        distortion = PIXEL_RANGE**2 * mse
    elif metric == "ms-ssim":
        distortion = 1 - ms_ssim(x_hat.clamp(0, 1), target, data_range=1.0, size_average=False)
    else:
        raise ValueError(f"unknown metric {metric!r}")
    sample_loss = lmbda * distortion + bpp
    loss = (sample_loss if weights is None else weights * sample_loss).mean()
    result = {
        "loss": loss,
        "sample_loss": sample_loss.detach(),
        "bpp": bpp.mean(),
        "mse": mse.mean(),
        "psnr": (-10 * torch.log10(mse.clamp_min(1e-10))).mean(),
    }
    if metric == "ms-ssim":
        result["ms_ssim"] = 1 - distortion.mean()
    return result


class LevelBalancer:
    """Per-sample weights that give every rate level of a variable-rate model the same pull.

    With one loss ``lambda * D + bpp`` summed over levels, the top levels dominate: on the
    validation images an earlier bundled model's loss was 0.21 at level 0 and 10.36 at
    level 7, so the shared transforms follow the highest lambdas. This keeps a running mean
    ``m_l`` of each level's loss and weights a level-``l`` sample by ``mean_k(m_k) / m_l``:
    the gradient of ``sum_l log(loss_l)`` up to scale, i.e. every level's loss counts by its
    relative change, which is what a BD-rate averages.

    Args:
        levels: number of rate levels.
        decay: decay of the running means (per step in which the level was drawn).
    """

    def __init__(self, levels: int, decay: float = BALANCE_DECAY) -> None:
        if levels < 1:
            raise ValueError(f"levels must be at least 1, got {levels}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.means = torch.full((levels,), math.nan, dtype=torch.float64)

    def weights(self, levels: Tensor) -> Tensor:
        """(B,) float32 weights of samples at integer rate ``levels`` (B,), from the running
        means so far (1 for a level not seen yet)."""
        index = levels.detach().long().cpu()
        known = self.means[~self.means.isnan()]
        if len(known) == 0:
            return torch.ones(len(index), device=levels.device)
        scale = known.mean()
        per_sample = self.means[index]
        per_sample = torch.where(per_sample.isnan() | (per_sample <= 0), scale, per_sample)
        return (scale / per_sample).float().to(levels.device)

    def update(self, levels: Tensor, sample_loss: Tensor) -> None:
        """Fold a batch's (B,) unweighted losses at rate ``levels`` (B,) into the running means;
        non-finite losses are ignored."""
        index = levels.detach().long().cpu()
        losses = sample_loss.detach().double().cpu()
        for level in index.unique().tolist():
            value = float(losses[index == level].mean())
            if not math.isfinite(value):
                continue
            old = float(self.means[level])
            self.means[level] = value if math.isnan(old) else self.decay * old + (1 - self.decay) * value

    def state_dict(self) -> dict:
        return {"decay": self.decay, "means": self.means.tolist()}

    def load_state_dict(self, state: dict) -> None:
        means = torch.tensor(state["means"], dtype=torch.float64)
        if means.shape != self.means.shape:
            raise ValueError(f"balancer state for {len(means)} levels, model has {len(self.means)}")
        self.means = means

