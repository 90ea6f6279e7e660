"""Convolution helpers and the residual CNN blocks of TCM's transforms (the blocks of
Cheng, Sun, Takeuchi, Katto, "Learned image compression with discretized Gaussian mixture
likelihoods and attention modules", CVPR 2020, which TCM reuses).

Attribute names (``conv1``, ``gdn``, ``skip``, ``subpel_conv``, ``igdn``, ``upsample``,
``conv_a``, ``conv_b`` ...) are those of the published checkpoints' state dicts, so the
authors' weights and CompressAI-trained ones load unchanged. Shapes: (B, C_in, H, W) in;
stride-2 blocks halve H and W, upsampling blocks multiply them by ``factor``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tcmcodec.layers.gdn import GDN


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1: (B, C_in, H, W) -> (B, C_out, H/stride, W/stride)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """1x1 convolution: a per-pixel linear map over channels."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride)


def subpel_conv3x3(in_channels: int, out_channels: int, factor: int = 1) -> nn.Sequential:
    """Upsampling by ``factor``: a 3x3 convolution to out·factor² channels, then a pixel
    shuffle (Shi et al., CVPR 2016): (B, C_in, H, W) -> (B, C_out, factor·H, factor·W)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels * factor**2, kernel_size=3, padding=1),
        nn.PixelShuffle(factor),
    )


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions, each followed by a leaky ReLU, plus the input (through a 1x1
    convolution when the channel count changes)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels)
        self.leaky_relu = nn.LeakyReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.skip = conv1x1(in_channels, out_channels) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.leaky_relu(self.conv2(self.leaky_relu(self.conv1(x))))
        identity = x if self.skip is None else self.skip(x)
        return out + identity


class ResidualBlockWithStride(nn.Module):
    """Downsampling residual block: 3x3 convolution with ``stride``, leaky ReLU, 3x3
    convolution, GDN; plus the input through a strided 1x1 convolution (or as it is when
    neither the stride nor the channel count changes anything)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride=stride)
        self.leaky_relu = nn.LeakyReLU(inplace=True)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.gdn = GDN(out_channels)
        reshaped = stride != 1 or in_channels != out_channels
        self.skip = conv1x1(in_channels, out_channels, stride=stride) if reshaped else None

    def forward(self, x: Tensor) -> Tensor:
        out = self.gdn(self.conv2(self.leaky_relu(self.conv1(x))))
        out += x if self.skip is None else self.skip(x)
        return out


class ResidualBlockUpsample(nn.Module):
    """Upsampling residual block: sub-pixel convolution, leaky ReLU, 3x3 convolution,
    inverse GDN; plus the input through its own sub-pixel convolution."""

    def __init__(self, in_channels: int, out_channels: int, factor: int = 2) -> None:
        super().__init__()
        self.subpel_conv = subpel_conv3x3(in_channels, out_channels, factor)
        self.leaky_relu = nn.LeakyReLU(inplace=True)
        self.conv = conv3x3(out_channels, out_channels)
        self.igdn = GDN(out_channels, inverse=True)
        self.upsample = subpel_conv3x3(in_channels, out_channels, factor)

    def forward(self, x: Tensor) -> Tensor:
        out = self.igdn(self.conv(self.leaky_relu(self.subpel_conv(x))))
        out += self.upsample(x)
        return out


class BottleneckUnit(nn.Module):
    """1x1 down to half the channels, ReLU, 3x3, ReLU, 1x1 back up; plus the input; ReLU.
    (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        half = channels // 2
        self.conv = nn.Sequential(
            conv1x1(channels, half), nn.ReLU(inplace=True),
            conv3x3(half, half), nn.ReLU(inplace=True),
            conv1x1(half, channels),
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv(x)
        out += x
        return self.relu(out)


class GatedAttention(nn.Module):
    """The simplified attention module of Cheng et al. (CVPR 2020, Fig. 3):
    ``x + trunk(x) * sigmoid(mask(x))``, trunk ``conv_a`` = three
    :class:`BottleneckUnit`, mask ``conv_b`` = three more and a 1x1 convolution.
    (B, C, H, W) -> (B, C, H, W). TCM's SWAtten puts a Swin block in front of the mask.
    """

    def __init__(self, channels: int, units: int = 3) -> None:
        super().__init__()
        self.conv_a = nn.Sequential(*(BottleneckUnit(channels) for _ in range(units)))
        self.conv_b = nn.Sequential(*(BottleneckUnit(channels) for _ in range(units)),
                                    conv1x1(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_a(x) * torch.sigmoid(self.conv_b(x))
        out += x
        return out


def context_stack(in_channels: int, widths: tuple[int, int], out_channels: int) -> nn.Sequential:
    """conv3x3 -> GELU -> conv3x3 -> GELU -> conv3x3 (keys .0 .2 .4): TCM's slice mean, scale
    and latent-residual transforms, as in the reference."""
    hidden, second = widths
    return nn.Sequential(
        conv3x3(in_channels, hidden), nn.GELU(),
        conv3x3(hidden, second), nn.GELU(),
        conv3x3(second, out_channels),
    )
