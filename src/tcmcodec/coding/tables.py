"""Probability tables of the entropy coder, built the same on every computer.

Two families of discrete distributions code a TCM's latents:

* **Gaussian** (y): one table per entry of the scale table ``s_0 < ... < s_{L-1}``
  (geometric from ``scale_min`` to ``scale_max``). A latent whose predicted scale has index
  ``i`` codes ``round(y - mu)`` with the probabilities of a zero-mean Gaussian of scale
  ``s_i`` integrated over unit bins, on ``[-K_i, K_i]`` with ``K_i = ceil(TAIL_SIGMAS s_i)``,
  plus an escape symbol holding the two tails (at least :data:`MIN_ESCAPE_PROBABILITY`).
* **Factorized** (z): one table per channel of the entropy bottleneck's learned
  cumulative density (Ballé et al., ICLR 2018), on the integer range around its median
  given by the learned quantiles, plus an escape symbol.

Both are computed in float64 with :mod:`tcmcodec.exact` (the bottleneck's density network
under :class:`~tcmcodec.exact.mode.ExactArithmetic`), so encoder and decoder get the same
probabilities bit for bit wherever they run; the range coder turns them into fixed-point
frequencies deterministically (:mod:`tcmcodec.coding.range_coder`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tcmcodec.exact import elementary
from tcmcodec.exact.mode import ExactArithmetic

#: half-width of a Gaussian table in scales: the tails beyond hold 8e-11 of the mass and are
#: coded through the escape symbol
TAIL_SIGMAS = 6.5
#: the longest factorized table accepted (a checkpoint with absurd quantiles is refused)
MAX_FACTORIZED_SUPPORT = 2**16
#: the most entries all Gaussian tables together may hold (the bundled model's 256 scales up to
#: 256 hold about 110 thousand)
MAX_GAUSSIAN_TABLE_ENTRIES = 2**22
#: the escape symbol's probability is at least this: an escape then costs at most 16 bits
#: plus the value's own, and the mass it takes from the table costs < 3e-5 bits per symbol
MIN_ESCAPE_PROBABILITY = 2.0**-16


@dataclass(frozen=True)
class TableSet:
    """Discrete distributions over integers, one row per table.

    Table ``k`` covers values ``-offsets[k] .. sizes[k] - 1 - offsets[k]``; ``pmfs[k]`` has
    ``sizes[k] + 1`` float64 probabilities, the last for the escape symbol (values outside).
    """

    offsets: np.ndarray
    sizes: np.ndarray
    pmfs: tuple[np.ndarray, ...]

    def __len__(self) -> int:
        return len(self.pmfs)


def scale_table(scale_min: float, scale_max: float, levels: int) -> Tensor:
    """The ``levels`` Gaussian scales, geometric from ``scale_min`` to ``scale_max``
    (CompressAI's default table for 0.11, 256, 64), as a float64 tensor with the same bits
    everywhere: the log-spaced exponents in Python floats, then the exact ``exp``."""
    low, high = (float(v) for v in elementary.log(torch.tensor([scale_min, scale_max], dtype=torch.float64)))
    steps = [low + (high - low) * i / (levels - 1) for i in range(levels)] if levels > 1 else [low]
    return elementary.exp(torch.tensor(steps, dtype=torch.float64))


def gaussian_tables(scales: Tensor) -> TableSet:
    """The Gaussian table of each scale in ``scales`` (float64, ascending), all in one pass.

    Raises ValueError when the scales are not finite or the tables would hold more than
    :data:`MAX_GAUSSIAN_TABLE_ENTRIES` entries (a config's ``scale_max`` decides their length).
    """
    values = scales.tolist()
    if not all(math.isfinite(scale) and scale > 0 for scale in values):
        raise ValueError("the Gaussian scales must be finite and positive")
    if sum(2 * scale * TAIL_SIGMAS + 4 for scale in values) > MAX_GAUSSIAN_TABLE_ENTRIES:
        raise ValueError(f"the Gaussian tables for scales up to {max(values):.4g} would hold more than "
                         f"{MAX_GAUSSIAN_TABLE_ENTRIES} entries")
    halves = torch.tensor([math.ceil(scale * TAIL_SIGMAS) for scale in values])
    counts = halves + 1
    # one flat pass over the bins 0..half of every table
    first = torch.cumsum(counts, 0) - counts
    magnitude = (torch.arange(int(counts.sum())) - torch.repeat_interleave(first, counts)).to(torch.float64)
    inverse = torch.repeat_interleave(1.0 / scales.to(torch.float64), counts)
    # each bin from the lower tail, where Phi is accurate in relative terms
    bins = elementary.normal_cdf((0.5 - magnitude) * inverse) - elementary.normal_cdf((-0.5 - magnitude) * inverse)
    tails = elementary.normal_cdf((-0.5 - halves.to(torch.float64)) / scales.to(torch.float64)) * 2.0
    pmfs = []
    for one_side, tail in zip(torch.split(bins, counts.tolist()), tails.tolist()):
        one_side = one_side.numpy()
        pmfs.append(np.concatenate([one_side[:0:-1], one_side, [max(tail, MIN_ESCAPE_PROBABILITY)]]))  # -half..half, escape
    halves_array = halves.numpy().astype(np.int64)
    return TableSet(halves_array, 2 * halves_array + 1, tuple(pmfs))


def factorized_tables(bottleneck: torch.nn.Module) -> tuple[TableSet, Tensor]:
    """The entropy bottleneck's per-channel tables and its medians (C,) float32.

    ``bottleneck`` is CompressAI's ``EntropyBottleneck`` (``quantiles`` (C, 1, 3), the
    density network in ``_logits_cumulative``). Symbols are ``round(z - median)``; channel
    ``c`` covers ``-minima_c .. maxima_c`` around its median.
    """
    with torch.no_grad():
        quantiles = bottleneck.quantiles.detach().float().cpu()
        medians = quantiles[:, 0, 1]
        minima = torch.ceil(medians - quantiles[:, 0, 0]).clamp(min=0)
        maxima = torch.ceil(quantiles[:, 0, 2] - medians).clamp(min=0)
        if not (torch.isfinite(minima).all() and torch.isfinite(maxima).all()) or \
                float((minima + maxima).max()) >= MAX_FACTORIZED_SUPPORT:
            raise ValueError("the entropy bottleneck's quantiles are not finite or span more than "
                             f"{MAX_FACTORIZED_SUPPORT} values: the weights are broken")
        lengths = (minima + maxima + 1).long()
        start = (medians - minima).double()
        samples = torch.arange(int(lengths.max()), dtype=torch.float64)[None, None, :] + start[:, None, None]
        with ExactArithmetic():
            bottleneck_cpu = _on_cpu(bottleneck)
            lower = bottleneck_cpu._logits_cumulative(samples - 0.5, stop_gradient=True)
            upper = bottleneck_cpu._logits_cumulative(samples + 0.5, stop_gradient=True)
            sign = -torch.sign(lower + upper)
            pmf = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()[:, 0, :]
            tails = torch.sigmoid(lower[:, 0, :1]) + torch.sigmoid(-upper[:, 0, :])
    offsets, sizes, pmfs = [], [], []
    for channel, length in enumerate(lengths.tolist()):
        tail = float(tails[channel, length - 1])  # both tails: below the first and above the last bin
        pmfs.append(np.append(pmf[channel, :length].numpy(), max(tail, MIN_ESCAPE_PROBABILITY)))
        offsets.append(int(minima[channel]))
        sizes.append(length)
    return TableSet(np.array(offsets, dtype=np.int64), np.array(sizes, dtype=np.int64), tuple(pmfs)), medians


def _on_cpu(module: torch.nn.Module) -> torch.nn.Module:
    """``module`` itself when its parameters live on the CPU, else a CPU copy."""
    if all(p.device.type == "cpu" for p in module.parameters()):
        return module
    import copy

    return copy.deepcopy(module).cpu()
