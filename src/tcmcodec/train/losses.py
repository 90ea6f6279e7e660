"""Rate-distortion losses (per-sample lambdas, for variable-rate training)."""

from __future__ import annotations

import math
from typing import Literal

import torch
from pytorch_msssim import ms_ssim
from torch import Tensor

Metric = Literal["mse", "ms-ssim"]
#: MSE is measured on [0, 1] images but lambdas are quoted for 8-bit ones
PIXEL_RANGE = 255.0


def bits_per_pixel(likelihoods: dict[str, Tensor], num_pixels: int) -> Tensor:
    """(B,) estimated bits per pixel of each sample from its latent likelihoods."""
    total = sum(lik.log2().flatten(1).sum(1) for lik in likelihoods.values())
    return -total / num_pixels


def rate_distortion_loss(output: dict, target: Tensor, lmbda: Tensor, metric: Metric = "mse") -> dict[str, Tensor]:
    """Loss ``mean(lambda * D + bpp)`` with D = 255^2 * MSE or 1 - MS-SSIM.

    Args:
        output: the model's forward output (``x_hat``, ``likelihoods``).
        target: (B, 3, H, W) images in [0, 1].
        lmbda: (B,) per-sample trade-offs.
    Returns ``loss``, ``bpp``, ``mse``, ``psnr`` (and ``ms_ssim`` for that metric), all scalars.
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
    loss = (lmbda * distortion + bpp).mean()
    result = {
        "loss": loss,
        "bpp": bpp.mean(),
        "mse": mse.mean(),
        "psnr": (-10 * torch.log10(mse.clamp_min(1e-10))).mean(),
    }
    if metric == "ms-ssim":
        result["ms_ssim"] = 1 - distortion.mean()
    return result


def psnr_from_mse(mse: float) -> float:
    return -10 * math.log10(max(mse, 1e-10))
