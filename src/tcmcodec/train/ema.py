"""Exponential moving average of the weights during training.

At the learning rates that train a codec quickly (3e-4 here), the weights of consecutive
checkpoints differ enough that validation swings by several tenths of a dB from one to the
next. An average of the recent weights (Polyak & Juditsky, SIAM J. Control Optim. 1992; in
the exponential form used by most image models) sits near the middle of that walk and is
the better set to validate, export and ship; the optimiser keeps stepping the raw weights.

The average starts with a short warm-up, ``decay_t = min(decay, (1 + t) / (10 + t))`` after
``t`` updates, so it follows the raw weights closely at the start of a run (or when switched
on for an old run) instead of remembering its initial state for thousands of steps.
"""

from __future__ import annotations

import copy
import torch
from torch import nn

from tcmcodec.checkpoints import load_learned_state

#: ``decay_t = min(decay, (1 + t) / (WARMUP_OFFSET + t))``
WARMUP_OFFSET = 10


class WeightAverage:
    """An averaged copy of ``model`` (eval mode, no gradients).

    Parameters are averaged; buffers (entropy-model tables, caches) are copied from the
    trained model whenever :meth:`sync_buffers` is called, since they are derived data.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"weight-average decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self._averaged = list(self.model.parameters())

    def current_decay(self) -> float:
        """The decay the next update uses (after warm-up: ``decay``)."""
        t = self.updates
        return min(self.decay, (1 + t) / (WARMUP_OFFSET + t))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """avg <- decay_t * avg + (1 - decay_t) * weights, for every parameter."""
        weight = 1.0 - self.current_decay()
        torch._foreach_lerp_(self._averaged, list(model.parameters()), weight)
        self.updates += 1

    @torch.no_grad()
    def sync_buffers(self, model: nn.Module) -> None:
        """Copy the trained model's buffers (shapes may have changed: resized CDF tables)."""
        own = dict(self.model.named_buffers())
        for name, buffer in model.named_buffers():
            target = own[name]
            if target.shape != buffer.shape:
                target.resize_(buffer.shape)
            target.copy_(buffer)

    def restore(self, weights: dict[str, torch.Tensor], updates: int) -> None:
        """Continue an average saved as ``weights`` after ``updates`` updates (the decay is
        the resuming command's)."""
        self.updates = int(updates)
        load_learned_state(self.model, weights)  # CompressionModel resizes the CDF tables
