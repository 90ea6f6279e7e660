"""The two density models of the hyperprior architecture, for training and rate estimates.

* :class:`EntropyBottleneck`: the factorized prior of the hyper-latent z (Ballé, Minnen,
  Singh, Hwang, Johnston, "Variational image compression with a scale hyperprior", ICLR
  2018, App. 6.1): per channel, a learned monotone cumulative c(v) built from small matrices
  (softplus-positive), biases and tanh "factors"; p(v) = c(v + ½) - c(v - ½).
* :class:`GaussianConditional`: y given the hyperprior: p(v) = Φ((½ - |v - μ|)/σ) -
  Φ((-½ - |v - μ|)/σ), with σ bounded below.

Both return ``(values, likelihoods)``: in training, values plus uniform noise in [-½, ½)
(the differentiable proxy of rounding); otherwise values rounded around the median / mean.
Coding does not go through them: :mod:`tcmcodec.coding` builds the coder's tables from
these parameters with exact arithmetic. Parameter names are those of CompressAI (and of the
authors' checkpoints): ``quantiles``, ``matrices.i``, ``biases.i``, ``factors.i``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tcmcodec.layers.bounds import LowerBound

#: likelihoods never go below this in training (log2 stays finite)
LIKELIHOOD_BOUND = 1e-9
#: σ never goes below this (the first entry of the coder's scale table)
SCALE_BOUND = 0.11
#: probability mass the bottleneck's quantiles leave outside [lower, upper] quantile
TAIL_MASS = 1e-9
#: hidden widths of the factorized density network
BOTTLENECK_FILTERS = (3, 3, 3, 3)
#: the density starts spread over about [-init_scale, init_scale]
BOTTLENECK_INIT_SCALE = 10.0
#: bisection of :meth:`EntropyBottleneck.fit_quantiles`: search interval and tolerance
QUANTILE_SEARCH_RADIUS = 1e5
QUANTILE_TOLERANCE = 1e-4


def quantize_ste(x: Tensor) -> Tensor:
    """``round(x)`` with the gradient of the identity (straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def _quantize(values: Tensor, training: bool, centers: Tensor | None) -> Tensor:
    """Uniform noise in training; else ``round(values - centers) + centers``."""
    if training:
        return values + torch.empty_like(values).uniform_(-0.5, 0.5)
    if centers is None:
        return torch.round(values)
    return torch.round(values - centers) + centers


class EntropyBottleneck(nn.Module):
    """Factorized prior for z (B, C, h, w); ``forward(z)`` returns ``(ẑ, likelihoods)``,
    both (B, C, h, w).

    ``quantiles`` (C, 1, 3) are learned by :meth:`loss` (the auxiliary loss) to sit where
    the cumulative reaches ``TAIL_MASS / 2``, ½ and ``1 - TAIL_MASS / 2``: the middle one is
    the median symbols are taken around, the outer ones bound the coder's tables.
    """

    target: Tensor

    def __init__(self, channels: int, filters: tuple[int, ...] = BOTTLENECK_FILTERS,
                 init_scale: float = BOTTLENECK_INIT_SCALE, tail_mass: float = TAIL_MASS,
                 likelihood_bound: float = LIKELIHOOD_BOUND) -> None:
        super().__init__()
        if channels < 1 or not filters or min(filters) < 1:
            raise ValueError(f"EntropyBottleneck needs channels >= 1 and positive filter widths, "
                             f"got {channels} and {filters}")
        self.channels = int(channels)
        self.filters = tuple(int(f) for f in filters)
        widths = (1, *self.filters, 1)
        layers = len(widths) - 1
        # each layer's softplus(matrix) entries start at 1/(scale * fan-out), scale^layers = init_scale
        scale = float(init_scale) ** (1 / layers)
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(layers):
            inverse_softplus = math.log(math.expm1(1 / scale / widths[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, widths[i + 1], widths[i]), inverse_softplus)))
            self.biases.append(nn.Parameter(torch.empty(channels, widths[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < layers - 1:
                self.factors.append(nn.Parameter(torch.zeros(channels, widths[i + 1], 1)))
        spread = float(init_scale)
        self.quantiles = nn.Parameter(torch.tensor([-spread, 0.0, spread]).repeat(channels, 1, 1))
        logit = math.log(2 / tail_mass - 1)
        self.register_buffer("target", torch.tensor([-logit, 0.0, logit]))
        self.likelihood_lower_bound = LowerBound(likelihood_bound)

    def _get_medians(self) -> Tensor:
        """The medians (C, 1, 1), around which z is rounded."""
        return self.quantiles[:, :, 1:2]

    def _logits_cumulative(self, inputs: Tensor, stop_gradient: bool) -> Tensor:
        """logit c(v) for inputs (C, 1, n) -> (C, 1, n); parameters detached with
        ``stop_gradient`` (the auxiliary loss must not move the density)."""
        def param(p: Tensor) -> Tensor:
            return p.detach() if stop_gradient else p

        logits = inputs
        for i, (matrix, bias) in enumerate(zip(self.matrices, self.biases)):
            logits = torch.matmul(F.softplus(param(matrix)), logits)
            logits = logits + param(bias)
            if i < len(self.factors):
                logits = logits + torch.tanh(param(self.factors[i])) * torch.tanh(logits)
        return logits

    def _likelihood(self, inputs: Tensor, stop_gradient: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        """p(v) = c(v + ½) - c(v - ½) for inputs (C, 1, n), with both logits.

        The difference is taken on the side of the median where the cumulative is small
        (sigmoid of the negated logits above it), so tail probabilities keep their
        relative precision instead of cancelling against values near 1.
        """
        lower = self._logits_cumulative(inputs - 0.5, stop_gradient)
        upper = self._logits_cumulative(inputs + 0.5, stop_gradient)
        side = -torch.sign(lower + upper)
        likelihood = torch.abs(torch.sigmoid(side * upper) - torch.sigmoid(side * lower))
        return likelihood, lower, upper

    def forward(self, z: Tensor, training: bool | None = None) -> tuple[Tensor, Tensor]:
        if training is None:
            training = self.training
        channels_first = (1, 0, *range(2, z.ndim))  # (B, C, ...) <-> (C, B, ...), its own inverse
        values = z.permute(channels_first).contiguous()
        shape = values.shape
        outputs = _quantize(values.reshape(shape[0], 1, -1), training, self._get_medians())
        likelihood = self.likelihood_lower_bound(self._likelihood(outputs)[0])
        outputs = outputs.reshape(shape).permute(channels_first).contiguous()
        likelihood = likelihood.reshape(shape).permute(channels_first).contiguous()
        return outputs, likelihood

    def loss(self) -> Tensor:
        """Auxiliary loss: how far the cumulative at the quantiles is from its targets."""
        logits = self._logits_cumulative(self.quantiles, stop_gradient=True)
        return torch.abs(logits - self.target).sum()

    @torch.no_grad()
    def fit_quantiles(self, radius: float = QUANTILE_SEARCH_RADIUS, tolerance: float = QUANTILE_TOLERANCE) -> None:
        """Set the quantiles to where the (monotone) cumulative meets its targets, by
        bisection per channel: a faster, more precise alternative to training the
        auxiliary loss to convergence."""
        shape = (self.channels, 1, 1)
        device, dtype = self.quantiles.device, self.quantiles.dtype
        steps = math.ceil(math.log2(2 * radius / tolerance))
        for k, target in enumerate(self.target.tolist()):
            low = torch.full(shape, -radius, device=device, dtype=dtype)
            high = torch.full(shape, radius, device=device, dtype=dtype)
            for _ in range(steps):
                middle = (low + high) / 2
                below = self._logits_cumulative(middle, stop_gradient=True) < target
                low = torch.where(below, middle, low)
                high = torch.where(below, high, middle)
            self.quantiles[:, :, k] = ((low + high) / 2)[:, :, 0]


class GaussianConditional(nn.Module):
    """Gaussian likelihoods of y given means and scales, all (B, C, h, w);
    ``forward(y, scales, means)`` returns ``(ŷ, likelihoods)``."""

    def __init__(self, scale_bound: float = SCALE_BOUND, likelihood_bound: float = LIKELIHOOD_BOUND) -> None:
        super().__init__()
        if not scale_bound > 0:
            raise ValueError(f"the scale bound must be positive, got {scale_bound}")
        self.lower_bound_scale = LowerBound(scale_bound)
        self.likelihood_lower_bound = LowerBound(likelihood_bound)
        # kept as a buffer too, as in the published state-dict layout
        self.register_buffer("scale_bound", torch.tensor([float(scale_bound)]))

    @staticmethod
    def _standardized_cumulative(u: Tensor) -> Tensor:
        """Φ(u) = ½ erfc(-u / √2), accurate in the lower tail."""
        return 0.5 * torch.erfc(-(2**-0.5) * u)

    def _likelihood(self, values: Tensor, scales: Tensor, means: Tensor | None = None) -> Tensor:
        """P(round(v) = v) under N(μ, σ²): mass of [v - ½, v + ½], measured in the lower tail."""
        distance = torch.abs(values - means if means is not None else values)
        scales = self.lower_bound_scale(scales)
        upper = self._standardized_cumulative((0.5 - distance) / scales)
        lower = self._standardized_cumulative((-0.5 - distance) / scales)
        return upper - lower

    def forward(self, y: Tensor, scales: Tensor, means: Tensor | None = None,
                training: bool | None = None) -> tuple[Tensor, Tensor]:
        if training is None:
            training = self.training
        outputs = _quantize(y, training, means)
        return outputs, self.likelihood_lower_bound(self._likelihood(outputs, scales, means))
