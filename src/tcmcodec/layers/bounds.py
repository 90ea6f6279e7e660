"""Bounded parameters: a lower bound with a gradient that can leave it, and a
non-negative reparametrisation (Ballé, Laparra, Simoncelli, ICLR 2017, Sec. 3 / App. 6.1).

Both keep their constants as one-element float32 buffers named ``bound`` and ``pedestal``,
the names CompressAI's modules use, so state dicts written by either load in the other.
Those buffers are architecture constants (:data:`tcmcodec.checkpoints.CONSTANT_BUFFERS`):
never learned, never stored in inference files.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

#: offset of the square-root reparametrisation: values are stored as sqrt(v + offset²)
REPARAMETRISATION_OFFSET = 2.0**-18


class _LowerBoundGradient(torch.autograd.Function):
    """``max(x, bound)`` whose gradient passes where ``x`` is above the bound, or where the
    descent step would move ``x`` up (a negative gradient): a value stuck at the bound can
    still leave it, which plain ``max`` (zero gradient below the bound) would not allow."""

    @staticmethod
    def forward(ctx, x: Tensor, bound: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, bound)
        return torch.max(x, bound)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        x, bound = ctx.saved_tensors
        passes = (x >= bound) | (grad_output < 0)
        return passes * grad_output, None


class LowerBound(nn.Module):
    """``max(x, bound)`` element-wise, with the gradient of :class:`_LowerBoundGradient`.

    Any shape in, the same shape out; ``bound`` is a (1,) buffer.
    """

    bound: Tensor

    def __init__(self, bound: float) -> None:
        super().__init__()
        self.register_buffer("bound", torch.tensor([float(bound)], dtype=torch.float32))

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _LowerBoundGradient.apply(x, self.bound)
        return torch.max(x, self.bound)

    def extra_repr(self) -> str:
        return f"bound={float(self.bound):g}"


class NonNegativeParametrizer(nn.Module):
    """Stores a value v >= ``minimum`` as p = sqrt(v + ε²) and returns v = max(p, b)² - ε²
    with b = sqrt(minimum + ε²), ε = :data:`REPARAMETRISATION_OFFSET`.

    Gradient steps on p move small values of v in small steps, which keeps GDN's β and γ
    stable in training. :meth:`init` maps a value to its stored form; ``forward`` maps back.
    """

    pedestal: Tensor

    def __init__(self, minimum: float = 0.0, offset: float = REPARAMETRISATION_OFFSET) -> None:
        super().__init__()
        self.minimum = float(minimum)
        self.register_buffer("pedestal", torch.tensor([float(offset) ** 2], dtype=torch.float32))
        self.lower_bound = LowerBound((self.minimum + float(offset) ** 2) ** 0.5)

    def init(self, value: Tensor) -> Tensor:
        """The stored form of ``value`` (values below zero are stored as zero)."""
        return torch.sqrt(torch.max(value + self.pedestal, self.pedestal))

    def forward(self, stored: Tensor) -> Tensor:
        bounded = self.lower_bound(stored)
        return bounded**2 - self.pedestal
