"""Entropy models: CompressAI's, with a training forward pass that never waits on the GPU.

CompressAI 1.2's ``EntropyBottleneck.forward`` builds its channel permutation as a device
tensor and unpacks it into ``permute(*perm)``: every element is read back to the host, so
on CUDA each training step waited for the GPU twelve times (measured on an H100 in
session 6, where a tcm-cpu step was bound by the host). :class:`EntropyBottleneck` here
computes the same values with the permutation as Python integers. Coding (``compress`` /
``decompress``), the CDF tables and the state-dict layout are CompressAI's, unchanged.
"""

from __future__ import annotations

from typing import Optional

from compressai.entropy_models import EntropyBottleneck as _CompressAIBottleneck
from torch import Tensor


class EntropyBottleneck(_CompressAIBottleneck):
    """Factorized prior of Ballé et al. (ICLR 2018) for the hyper-latent z (B, C, h, w).

    ``forward(z)`` returns ``(ẑ, likelihoods)``, both (B, C, h, w): uniform noise in
    training, rounding around the learned medians otherwise — as CompressAI's, without
    host synchronisation.
    """

    def forward(self, x: Tensor, training: Optional[bool] = None) -> tuple[Tensor, Tensor]:
        if training is None:
            training = self.training
        channels_first = (1, 0, *range(2, x.ndim))  # (B, C, ...) <-> (C, B, ...), its own inverse
        values = x.permute(channels_first).contiguous()
        shape = values.shape
        mode = "noise" if training else "dequantize"
        outputs = self.quantize(values.reshape(shape[0], 1, -1), mode, self._get_medians())
        likelihood, _, _ = self._likelihood(outputs)
        if self.use_likelihood_bound:
            likelihood = self.likelihood_lower_bound(likelihood)
        outputs = outputs.reshape(shape).permute(channels_first).contiguous()
        likelihood = likelihood.reshape(shape).permute(channels_first).contiguous()
        return outputs, likelihood
