"""Generalized divisive normalization (Ballé, Laparra, Simoncelli, "Density modeling of
images using a generalized normalization transformation", ICLR 2016), as used after the
convolutions of TCM's residual blocks.

    GDN:  y_i = x_i / sqrt(β_i + Σ_j γ_ij x_j²)        inverse GDN:  y_i = x_i * sqrt(...)

Parameters ``beta`` (C,) and ``gamma`` (C, C) are stored reparametrised
(:class:`~tcmcodec.layers.bounds.NonNegativeParametrizer`), under the names CompressAI uses,
so the authors' checkpoints load unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcmcodec.layers.bounds import NonNegativeParametrizer

#: β never goes below this (keeps the denominator away from zero)
BETA_MIN = 1e-6
#: γ starts as this times the identity: each channel first normalised by itself only
GAMMA_INIT = 0.1


class GDN(nn.Module):
    """(B, C, H, W) -> (B, C, H, W): divisive normalization over channels, or its
    approximate inverse (multiplication) with ``inverse=True``."""

    def __init__(self, channels: int, inverse: bool = False, beta_min: float = BETA_MIN,
                 gamma_init: float = GAMMA_INIT) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"GDN needs at least one channel, got {channels}")
        self.inverse = bool(inverse)
        self.beta_reparam = NonNegativeParametrizer(minimum=beta_min)
        self.beta = nn.Parameter(self.beta_reparam.init(torch.ones(channels)))
        self.gamma_reparam = NonNegativeParametrizer()
        self.gamma = nn.Parameter(self.gamma_reparam.init(float(gamma_init) * torch.eye(channels)))

    def normalizer(self) -> tuple[Tensor, Tensor]:
        """β (C,) and γ (C, C), the actual (non-negative) values."""
        return self.beta_reparam(self.beta), self.gamma_reparam(self.gamma)

    def forward(self, x: Tensor) -> Tensor:
        beta, gamma = self.normalizer()
        channels = x.shape[1]
        norm = F.conv2d(x**2, gamma.reshape(channels, channels, 1, 1), beta)
        return x * (torch.sqrt(norm) if self.inverse else torch.rsqrt(norm))

    def extra_repr(self) -> str:
        return f"{self.beta.shape[0]}, inverse={self.inverse}"
