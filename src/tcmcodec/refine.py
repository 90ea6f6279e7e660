"""Encoder-side refinement of the latents: slower encoding, same decoder, same format.

The analysis transform g_a is amortised: one network guesses the latents of every image.
For a given image, the latents y that minimise the rate-distortion loss can be found
directly by gradient descent through the entropy model and the synthesis transform, with
the decoder untouched (Campos et al., "Content adaptive optimization for neural image
compression", CVPR-W 2019; Yang, Bamler, Mandt, "Improving inference for neural image
compression", NeurIPS 2020). The small bundled model has a large amortisation gap at high
rates, where its transforms cap the quality (docs/model-card.md).

y and z start from g_a's and h_a's outputs and take ``steps`` Adam steps together on
``bpp(y) + bpp(z) + lambda * 255^2 * MSE`` over the image's own pixels, through the
hyper-synthesis (the means and scales of y follow z), with the training objective's proxies
(additive noise for the rates, straight-through rounding for the values passed on). Moving z
as well, with its own step size, gains about a fifth more than moving y alone, for the same
time (docs/benchmarks.md).
The noisy rate drifts away from the coded one as the latents move (more steps spend more real
bits), so each iterate is also measured as it would be coded (rounded y and z, clamped x̂)
and the best one is kept: more steps never code worse than fewer, or than no refinement. The
result is coded like any y and z.

The search runs g_s in bfloat16 where the hardware computes it natively (1.65x faster
here, same gain); the coding of the result, and decoding, are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from tcmcodec.errors import TcmError
from tcmcodec.metrics import PIXEL_RANGE
from tcmcodec.runtime import native_bfloat16

#: Adam step size on the latents y (their values are O(1)-O(10) after the gain); tuned on
#: training photos with benchmarks/refine_gain.py (docs/benchmarks.md): with z at 3e-2,
#: 7e-3 / 1e-2 / 1.5e-2 / 2e-2 gave -6.7 / -7.4 / -7.6 / -7.1% BD-rate against plain encoding
DEFAULT_REFINE_LR = 1.5e-2
#: Adam step size on the hyper-latents z (same tuning, y at 1e-2: 3e-3 / 1e-2 / 3e-2 / 5e-2 /
#: 1e-1 gave -6.3 / -6.7 / -7.4 / -7.2 / -4.7%)
DEFAULT_REFINE_Z_LR = 3e-2
#: refinement differentiates through g_s at full resolution: refuse beyond this size
REFINE_MAX_PIXELS = 4_000_000
#: ``transform_dtype`` of :func:`refine_latents`: bfloat16 where the hardware has it natively
AUTO = "auto"
def refinement_dtype(device: torch.device) -> torch.dtype | None:
    """The precision refinement runs g_s in on ``device``: bfloat16 on CUDA GPUs and CPUs with
    native bfloat16 (AVX512-BF16 or AMX), where it is 1.65x faster for the same gain
    (docs/benchmarks.md); None (float32) elsewhere, where bfloat16 would be emulated.

    Only the search runs in bfloat16: the refined y and z are coded as any, and decoding is
    unchanged.
    """
    return torch.bfloat16 if native_bfloat16(device) else None


def lambda_for_rate(rate_lambdas: Sequence[float], rate: float) -> float:
    """The trade-off a variable-rate model was trained for at (fractional) level ``rate``:
    the lambda table interpolated linearly in log lambda, as the gain vectors are."""
    if not rate_lambdas:
        raise TcmError("a fixed-rate model has no lambda table: give the refinement lambda")
    top = len(rate_lambdas) - 1
    if not 0 <= rate <= top:
        raise TcmError(f"rate level {rate} is outside 0..{top}")
    return float(math.exp(np.interp(rate, np.arange(top + 1), np.log(rate_lambdas))))


def refine_latents(model, x: Tensor, rate: float | None, steps: int, *, lmbda: float,
                   valid: tuple[int, int, int, int] = (0, 0, 0, 0),
                   lr: float = DEFAULT_REFINE_LR, z_lr: float = DEFAULT_REFINE_Z_LR,
                   transform_dtype: torch.dtype | None | str = AUTO) -> tuple[Tensor, Tensor]:
    """y and z for :meth:`TCM.compress_analysis`, refined for this image.

    Args:
        model: a :class:`tcmcodec.model.TCM` (its weights are not changed).
        x: (1, 3, H, W) padded image in [0, 1]; H, W multiples of the model's padding.
        rate: the rate level (variable-rate models) or None.
        steps: Adam steps (0: g_a's latents unchanged).
        lmbda: the rate-distortion trade-off (see :func:`lambda_for_rate`).
        valid: the padding (left, right, top, bottom): distortion is measured inside it only.
        lr, z_lr: Adam step sizes on y and on z.
        transform_dtype: the precision of g_s during the search (None: float32; ``AUTO``:
            :func:`refinement_dtype` of the image's device).
    Returns y (1, M, H/16, W/16) and z (1, hyper, H/64, W/64).
    """
    if steps < 0:
        raise TcmError(f"refinement steps must be >= 0, got {steps}")
    if lmbda <= 0:
        raise TcmError(f"the refinement lambda must be positive, got {lmbda}")
    multiple = model.config.pad_multiple
    if x.shape[-2] % multiple or x.shape[-1] % multiple:
        raise ValueError(f"pad the image to multiples of {multiple} first, got {tuple(x.shape[-2:])}")
    if x.shape[-2] * x.shape[-1] > REFINE_MAX_PIXELS:
        raise TcmError(f"refinement is limited to {REFINE_MAX_PIXELS / 1e6:g} megapixels "
                       f"(this image: {x.shape[-2] * x.shape[-1] / 1e6:.1f}); encode without it")
    with torch.no_grad():
        y, z = model.analysis(x, rate)
    if steps == 0:
        return y, z
    left, right, top, bottom = valid
    height, width = x.shape[-2:]
    inside = (..., slice(top, height - bottom), slice(left, width - right))
    target = x[inside]
    num_pixels = target.shape[-2] * target.shape[-1]

    def rd_cost(likelihoods: Iterable[Tensor], x_hat: Tensor) -> Tensor:
        """bits per pixel (y and z) + lambda * 255^2 * MSE inside the padding."""
        bits = sum(-lik.log2().sum() for lik in likelihoods)
        mse = (x_hat[inside] - target).square().mean()
        return bits / num_pixels + lmbda * PIXEL_RANGE**2 * mse

    latents = [y.detach().clone().requires_grad_(True), z.detach().clone().requires_grad_(True)]
    optimizer = torch.optim.Adam([{"params": latents[:1], "lr": lr}, {"params": latents[1:], "lr": z_lr}])
    noisy = (model.entropy_bottleneck, model.gaussian_conditional)
    modes = [m.training for m in noisy]
    if transform_dtype == AUTO:
        transform_dtype = refinement_dtype(x.device)
    kept_dtype = model.transform_dtype
    try:
        for m in noisy:  # additive-noise likelihoods: the rate proxy has a gradient
            m.train()
        model.transform_dtype = transform_dtype
        best_cost, best = math.inf, [t.detach().clone() for t in latents]
        for step in range(steps + 1):  # the last pass only measures the last iterate
            last = step == steps
            coded: list[Tensor] = []
            with torch.set_grad_enabled(not last):
                out = model.forward_latents(*latents, rate, coded)
                loss = rd_cost(out["likelihoods"].values(), out["x_hat"])  # the training proxy
            with torch.no_grad():  # what coding this iterate would cost (rounded y, z; clamped x̂)
                cost = float(rd_cost(coded, out["x_hat"].clamp(0, 1)))
            if math.isfinite(cost) and cost < best_cost:
                best_cost, best = cost, [t.detach().clone() for t in latents]
            if last:
                break
            grads = torch.autograd.grad(loss, latents)  # the weights get no gradient
            if not (torch.isfinite(loss) and all(torch.isfinite(g).all() for g in grads)):
                break  # keep the best finite latents rather than code NaNs
            for latent, grad in zip(latents, grads):
                latent.grad = grad
            optimizer.step()
    finally:
        model.transform_dtype = kept_dtype
        for m, mode in zip(noisy, modes):
            m.train(mode)
    y, z = best
    return y, z
