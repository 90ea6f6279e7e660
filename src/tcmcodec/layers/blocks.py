"""Transformer block, TCM block and SWAtten (Liu, Sun, Katto, CVPR 2023, Sec. 3.2-3.3).

Module and attribute names follow the authors' state-dict layout so their checkpoints load
as they are (see ``shared/reference/TCM.md``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tcmcodec.layers.attention import WindowAttention, WindowKind
from tcmcodec.layers.residual import GatedAttention, ResidualBlock, conv1x1


def residual_add(branch: Tensor, skip: Tensor) -> Tensor:
    """``skip + branch``; at inference written into ``branch`` (a fresh output of its layer).

    Float addition is commutative, so the bits are those of ``skip + branch``; in place it
    saves allocating and first-touching a full feature map per residual connection.
    """
    if torch.is_grad_enabled():
        return skip + branch
    return branch.add_(skip)


#: at inference the transformer MLP runs on near-equal chunks of tokens whose hidden
#: activations (about this many floats, 2 MB) stay in a core's cache: g_a of tcm-s at
#: 768x512 measured 10-13% faster. The values are those of one pass over the map: the ops
#: work row by row, and the chunks keep hundreds of rows (matrix products of <= 8 rows
#: take another BLAS kernel with other float rounding; measured equal from 16 rows up).
MLP_CHUNK_ELEMENTS = 2**19


def copy_to_channels_first(src: Tensor, dst: Tensor) -> None:
    """Copy a contiguous (B, H, W, C) map into ``dst``, a (B, C, H, W) map whose images
    are contiguous (e.g. a channel slice of a larger map).

    One 2-D transpose per image takes PyTorch's blocked transpose copy; copying the 4-D
    permuted view (what ``permute(0, 3, 1, 2)`` followed by a concatenation does) takes its
    element-wise path, measured ~7x slower on a 256x384x64 map.
    """
    batch, height, width, channels = src.shape
    for b in range(batch):
        dst[b].view(channels, height * width).copy_(src[b].view(height * width, channels).t())


class TransformerBlock(nn.Module):
    """Pre-norm transformer block on (B, H, W, C) maps: x + MSA(LN(x)), then x + MLP(LN(x)).

    Keys: ``ln1``, ``msa``, ``ln2``, ``mlp.0``, ``mlp.2`` (MLP C -> ratio*C -> C, exact GELU).
    """

    def __init__(self, dim: int, head_dim: int, window: int, kind: WindowKind, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.msa = WindowAttention(dim, head_dim, window, kind)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        x = residual_add(self.msa(self.ln1(x)), x)
        if torch.is_grad_enabled():
            return x + self.mlp(self.ln2(x))
        # inference: the MLP in chunks of tokens, added in place (x is a fresh map here)
        x = x.contiguous()
        tokens = x.view(-1, x.shape[-1])
        count = -(-tokens.shape[0] * self.mlp[0].out_features // MLP_CHUNK_ELEMENTS)
        for part in tokens.tensor_split(max(1, count)):  # near-equal chunks: no tiny last one
            part.add_(self.mlp(self.ln2(part)))
        return x


class ConvTransBlock(nn.Module):
    """The TCM block: a CNN path and a window-attention path in parallel (paper Fig. 3).

    Input and output (B, 2N, H, W). ``conv1_1`` (1x1) mixes, the first N channels go through
    a residual CNN block (plus one more skip), the last N through a transformer block of
    kind W or SW; ``conv1_2`` (1x1) fuses them and the block's input is added back.
    """

    def __init__(self, half_width: int, head_dim: int, window: int, kind: WindowKind, mlp_ratio: int = 4) -> None:
        super().__init__()
        width = 2 * half_width
        self.half_width = half_width
        self.conv1_1 = conv1x1(width, width)
        self.conv1_2 = conv1x1(width, width)
        self.conv_block = ResidualBlock(half_width, half_width)
        self.trans_block = TransformerBlock(half_width, head_dim, window, kind, mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        mixed = self.conv1_1(x)
        conv_x, trans_x = torch.split(mixed, self.half_width, dim=1)
        if torch.is_grad_enabled():
            conv_x = conv_x + self.conv_block(conv_x)
            trans_x = self.trans_block(trans_x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
            return x + self.conv1_2(torch.cat((conv_x, trans_x), dim=1))
        # inference: each path writes its result over its own input half of ``mixed``, so
        # conv1_2 reads the two results without a concatenation copy (same values)
        conv_x.add_(self.conv_block(conv_x))
        copy_to_channels_first(self.trans_block(trans_x.permute(0, 2, 3, 1)), trans_x)
        return residual_add(self.conv1_2(mixed), x)


def tcm_stage(half_width: int, depth: int, head_dim: int, window: int, mlp_ratio: int = 4) -> list[nn.Module]:
    """``depth`` TCM blocks alternating W and SW windows, as in every stage of TCM."""
    return [
        ConvTransBlock(half_width, head_dim, window, "W" if i % 2 == 0 else "SW", mlp_ratio)
        for i in range(depth)
    ]


class SwinBlock(nn.Module):
    """A W transformer block followed by an SW one, on (B, C, H, W) maps.

    Keys ``block_1`` and ``block_2``. Maps smaller than a window are handled by the
    attention's own padding and masking (the reference pads and never crops).
    """

    def __init__(self, dim: int, head_dim: int, window: int, mlp_ratio: int = 4) -> None:
        super().__init__()
        self.block_1 = TransformerBlock(dim, head_dim, window, "W", mlp_ratio)
        self.block_2 = TransformerBlock(dim, head_dim, window, "SW", mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block_2(self.block_1(x.permute(0, 2, 3, 1)))
        if torch.is_grad_enabled():
            return out.permute(0, 3, 1, 2)
        contiguous = torch.empty_like(x, memory_format=torch.contiguous_format)
        copy_to_channels_first(out, contiguous)
        return contiguous


class SWAtten(GatedAttention):
    """Swin-attention module of the channel-wise entropy model (paper Fig. 4).

    (B, c_in, H, W) -> (B, c_in, H, W). ``in_conv`` (1x1) maps to the inner width u; then
    ``conv_a(u) * sigmoid(conv_b(swin(u))) + u`` (:class:`GatedAttention` with a Swin block
    in front of its gating branch); ``out_conv`` (1x1) maps back.
    """

    def __init__(self, channels: int, inner_width: int, head_dim: int, window: int, mlp_ratio: int = 4) -> None:
        super().__init__(inner_width)
        self.non_local_block = SwinBlock(inner_width, head_dim, window, mlp_ratio)
        self.in_conv = conv1x1(channels, inner_width)
        self.out_conv = conv1x1(inner_width, channels)

    def forward(self, x: Tensor) -> Tensor:
        u = self.in_conv(x)
        gate = self.conv_b(self.non_local_block(u))
        return self.out_conv(self.conv_a(u) * torch.sigmoid(gate) + u)
