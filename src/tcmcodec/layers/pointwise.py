"""1x1 convolutions and GDN computed as matrix products, for thread-count determinism.

The entropy decoder must recompute the encoder's means and scales bit for bit: a scale
that lands on the other side of a scale-table boundary selects another CDF and the rest
of the stream decodes to garbage. Measured on this project's CPU build of PyTorch
(oneDNN), 3x3 convolutions, linear layers, batched matrix products, layer norm and
attention give identical bits with 1, 2 or more threads, but 1x1 convolutions (``nn.Conv2d``
and the ``F.conv2d`` inside GDN) do not. Computing them as a matrix product
over channels removes that dependence; ``tests/test_determinism.py`` checks it across
processes. The modules keep their parameters, so state dicts are unchanged.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tcmcodec.layers.gdn import GDN


def _strictly_channels_last(x: Tensor) -> bool:
    """True for a dense channels-last map that is not also channels-first contiguous."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def pointwise(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """(B, C, H, W) x (O, C) [+ (O,)] -> (B, O, H, W): one fused ``addmm`` per image
    (no broadcast copies, bias added in the same pass). A channels-last ``x`` gives a
    channels-last result from one ``addmm`` over all pixels (B·H·W, C) x (C, O)."""
    batch, channels, height, width = x.shape
    out_channels = weight.shape[0]
    w = weight.reshape(out_channels, channels)
    if bias is None:
        bias = x.new_zeros(out_channels)
    if _strictly_channels_last(x):
        pixels = x.permute(0, 2, 3, 1).reshape(-1, channels)  # a view of the dense map
        out = torch.addmm(bias, pixels, w.t())
        return out.view(batch, height, width, out_channels).permute(0, 3, 1, 2)
    flat = x.reshape(batch, channels, height * width)
    if batch == 1:
        out = torch.addmm(bias[:, None], w, flat[0])[None]
    else:
        out = torch.stack([torch.addmm(bias[:, None], w, flat[b]) for b in range(batch)])
    return out.reshape(batch, out_channels, height, width)


class PointwiseConv2d(nn.Conv2d):
    """A 1x1, stride-1 ``nn.Conv2d`` evaluated by :func:`pointwise` at inference.

    With autograd on (training) it is a plain convolution: bits do not matter there, and
    one batched convolution is faster than a matrix product per image.
    """

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            return super().forward(x)
        return pointwise(x, self.weight, self.bias)


class PointwiseGDN(GDN):
    """(Inverse) GDN with its 1x1 convolution evaluated by :func:`pointwise` at inference
    (the plain forward with autograd on)."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled():
            return super().forward(x)
        beta, gamma = self.normalizer()
        norm = pointwise(x * x, gamma, beta)
        norm = torch.sqrt(norm) if self.inverse else torch.rsqrt(norm)
        return x * norm


def use_pointwise_matmul(module: nn.Module) -> nn.Module:
    """Switch every plain 1x1 convolution and GDN below ``module`` to the matmul versions.

    Changes the classes in place (same parameters and buffers); returns ``module``.
    """
    for child in module.modules():
        if type(child) is nn.Conv2d and child.kernel_size == (1, 1) and child.stride == (1, 1) \
                and child.groups == 1 and child.padding == (0, 0) and child.dilation == (1, 1):
            child.__class__ = PointwiseConv2d
        elif type(child) is GDN:
            child.__class__ = PointwiseGDN
    return module
