"""Gain units for continuous variable rate (Cui et al., CVPR 2021).

A :class:`GainUnits` holds one positive gain vector per rate level; a latent is scaled
channel-wise by the vector of its level before quantization (gain) or after it (inverse
gain). A fractional level t in [l, l+1] interpolates geometrically:
``g = g_l^(1-(t-l)) * g_{l+1}^(t-l)``, which gives a continuous rate control.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


class GainUnits(nn.Module):
    """Learned per-level channel gains.

    Args:
        channels: channels of the latent scaled.
        initial: one initial gain per level (all channels start equal).

    ``forward(x, level)`` scales x (B, C, H, W) by the gains of ``level`` (a float, or a
    (B,) tensor of per-sample levels in [0, levels - 1]).
    """

    def __init__(self, channels: int, initial: Sequence[float]) -> None:
        super().__init__()
        if len(initial) < 2:
            raise ValueError("GainUnits needs at least 2 levels")
        init = torch.tensor([float(g) for g in initial]).log()[:, None].repeat(1, channels)
        self.log_gain = nn.Parameter(init)  # (levels, C)

    @property
    def levels(self) -> int:
        return self.log_gain.shape[0]

    def gains(self, level: Tensor | float, batch: int) -> Tensor:
        """(B, C, 1, 1) gains for ``level``."""
        level_t = torch.as_tensor(level, dtype=self.log_gain.dtype, device=self.log_gain.device)
        if level_t.dim() == 0:
            level_t = level_t.expand(batch)
        level_t = level_t.clamp(0, self.levels - 1)
        low = level_t.floor().long().clamp(max=self.levels - 2)
        frac = (level_t - low.to(level_t.dtype))[:, None]
        log_g = (1 - frac) * self.log_gain[low] + frac * self.log_gain[low + 1]
        return log_g.exp()[:, :, None, None]

    def forward(self, x: Tensor, level: Tensor | float) -> Tensor:
        return x * self.gains(level, x.shape[0]).to(x.dtype)


def resample_log_gains(log_gain: Tensor, lambdas: Sequence[float], new_lambdas: Sequence[float]) -> Tensor:
    """Gain vectors for another lambda table, from those trained for ``lambdas``.

    ``log_gain`` (L, C) holds the log-gains of the levels trained at ``lambdas`` (ascending).
    Each new lambda gets the log-gains interpolated linearly in log(lambda) between its two
    neighbours, or extrapolated from the nearest two at either end; a lambda that was
    trained keeps its vector exactly. Used to start a model with more (or other) rate
    levels from a trained one (``tcm train --init``). Returns (len(new_lambdas), C).
    """
    if log_gain.shape[0] != len(lambdas) or len(lambdas) < 2:
        raise ValueError(f"need one log-gain row per lambda (at least 2), got {log_gain.shape[0]} "
                         f"rows for {len(lambdas)} lambdas")
    known = torch.tensor([float(lam) for lam in lambdas], dtype=torch.float64).log()
    rows = []
    for lam in new_lambdas:
        x = torch.tensor(float(lam), dtype=torch.float64).log()
        exact = torch.isclose(known, x, rtol=0, atol=1e-9).nonzero()
        if exact.numel():
            rows.append(log_gain[int(exact[0])])
            continue
        low = int((known < x).sum()) - 1
        low = min(max(low, 0), len(lambdas) - 2)
        weight = float((x - known[low]) / (known[low + 1] - known[low]))
        rows.append((1 - weight) * log_gain[low] + weight * log_gain[low + 1])
    return torch.stack(rows)
