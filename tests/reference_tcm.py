"""A deliberately straightforward TCM, written from the specification (shared/reference/TCM.md).

It reuses a :class:`tcmcodec.model.TCM`'s parameters but recomputes everything the way the
reference implementation is described: window attention with ``einsum``, an explicit
boolean shift mask rebuilt on every call and ``-inf`` masking, the relative-position bias
gathered per call, the transformer and TCM blocks on whole maps with permuted views and a
concatenation, every 1x1 convolution through ``F.conv2d``, and the slice loop spelled
out (mean branch, then scale branch) with symbols collected in Python lists. Tests compare
the optimised model against it.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import Tensor

from tcmcodec.layers.attention import WindowAttention
from tcmcodec.layers.blocks import ConvTransBlock, SwinBlock, TransformerBlock
from tcmcodec.layers.pointwise import PointwiseConv2d, PointwiseGDN


def _shift_mask(h_windows: int, w_windows: int, p: int, shift: int) -> Tensor:
    mask = torch.zeros(h_windows, w_windows, p, p, p, p, dtype=torch.bool)
    s = p - shift
    mask[-1, :, :s, :, s:, :] = True
    mask[-1, :, s:, :, :s, :] = True
    mask[:, -1, :, :s, :, s:] = True
    mask[:, -1, :, s:, :, :s] = True
    return mask.reshape(1, 1, h_windows * w_windows, p * p, p * p)


def reference_window_attention(msa: WindowAttention, x: Tensor) -> Tensor:
    """(B, H, W, C) -> (B, H, W, C), H and W multiples of the window."""
    p, d, heads = msa.window, msa.head_dim, msa.num_heads
    shifted = msa.kind == "SW"
    if shifted:
        x = torch.roll(x, shifts=(-(p // 2), -(p // 2)), dims=(1, 2))
    b, height, width, c = x.shape
    hw, ww = height // p, width // p
    x = x.reshape(b, hw, p, ww, p, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hw * ww, p * p, c)
    qkv = msa.embedding_layer(x)  # b nw np (3h d)
    qkv = qkv.reshape(b, hw * ww, p * p, 3 * heads, d).permute(3, 0, 1, 2, 4)
    q, k, v = qkv[:heads], qkv[heads : 2 * heads], qkv[2 * heads :]
    sim = torch.einsum("hbwpc,hbwqc->hbwpq", q, k) * d**-0.5
    coords = torch.tensor([[i, j] for i in range(p) for j in range(p)])
    rel = coords[:, None, :] - coords[None, :, :] + p - 1
    bias = msa.relative_position_params[:, rel[:, :, 0], rel[:, :, 1]]
    sim = sim + bias[:, None, None]
    if shifted:
        sim = sim.masked_fill(_shift_mask(hw, ww, p, p // 2), float("-inf"))
    probs = torch.softmax(sim, dim=-1)
    out = torch.einsum("hbwij,hbwjc->hbwic", probs, v)
    out = out.permute(1, 2, 3, 0, 4).reshape(b, hw * ww, p * p, heads * d)
    out = msa.linear(out)
    out = out.reshape(b, hw, ww, p, p, c).permute(0, 1, 3, 2, 4, 5).reshape(b, height, width, c)
    if shifted:
        out = torch.roll(out, shifts=(p // 2, p // 2), dims=(1, 2))
    return out


def _plain_conv(self, x):
    return F.conv2d(x, self.weight, self.bias)


def _plain_gdn(self, x):
    beta = self.beta_reparam(self.beta)
    gamma = self.gamma_reparam(self.gamma)
    c = x.shape[1]
    norm = F.conv2d(x**2, gamma.reshape(c, c, 1, 1), beta)
    norm = torch.sqrt(norm) if self.inverse else torch.rsqrt(norm)
    return x * norm


def _plain_transformer_block(self, x):
    x = x + self.msa(self.ln1(x))
    return x + self.mlp(self.ln2(x))


def _plain_conv_trans_block(self, x):
    conv_x, trans_x = torch.split(self.conv1_1(x), self.half_width, dim=1)
    conv_x = self.conv_block(conv_x) + conv_x
    trans_x = self.trans_block(trans_x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return x + self.conv1_2(torch.cat((conv_x, trans_x), dim=1))


def _plain_swin_block(self, x):
    x = self.block_2(self.block_1(x.permute(0, 2, 3, 1)))
    return x.permute(0, 3, 1, 2)


#: (class, attribute, straightforward replacement) swapped in by straightforward_layers
_STRAIGHTFORWARD = (
    (WindowAttention, "forward", reference_window_attention),
    (TransformerBlock, "forward", _plain_transformer_block),
    (ConvTransBlock, "forward", _plain_conv_trans_block),
    (SwinBlock, "forward", _plain_swin_block),
    (PointwiseConv2d, "forward", _plain_conv),
    (PointwiseGDN, "forward", _plain_gdn),
)


@contextlib.contextmanager
def straightforward_layers():
    """Swap the optimised layers (attention, transformer / TCM / Swin blocks, pointwise
    convolutions and GDN) for the reference computations."""
    saved = [(cls, name, cls.__dict__[name]) for cls, name, _ in _STRAIGHTFORWARD]
    for cls, name, plain in _STRAIGHTFORWARD:
        setattr(cls, name, plain)
    try:
        yield
    finally:
        for cls, name, original in saved:
            setattr(cls, name, original)


def _slice_params(model, i, latent_means, latent_scales, y_hat_slices):
    support = y_hat_slices[: model.config.support_slices(i)]
    mean_support = model.atten_mean[i](torch.cat([latent_means] + support, dim=1))
    mu = model.cc_mean_transforms[i](mean_support)
    scale_support = model.atten_scale[i](torch.cat([latent_scales] + support, dim=1))
    scale = model.cc_scale_transforms[i](scale_support)
    return mean_support, mu, scale


def reference_forward(model, x: Tensor) -> dict:
    """The reference's training forward (fixed-rate models)."""
    with straightforward_layers():
        y = model.g_a(x)
        z = model.h_a(y)
        _, z_likelihoods = model.entropy_bottleneck(z)
        z_offset = model.entropy_bottleneck._get_medians()
        z_hat = torch.round(z - z_offset) + z_offset
        latent_scales = model.h_scale_s(z_hat)
        latent_means = model.h_mean_s(z_hat)
        y_hat_slices, y_likelihood = [], []
        for i, y_slice in enumerate(y.chunk(model.config.num_slices, 1)):
            mean_support, mu, scale = _slice_params(model, i, latent_means, latent_scales, y_hat_slices)
            _, lik = model.gaussian_conditional(y_slice, scale, mu)
            y_likelihood.append(lik)
            y_hat_slice = torch.round(y_slice - mu) + mu
            lrp = model.lrp_transforms[i](torch.cat([mean_support, y_hat_slice], dim=1))
            y_hat_slices.append(y_hat_slice + 0.5 * torch.tanh(lrp))
        x_hat = model.g_s(torch.cat(y_hat_slices, dim=1))
    return {"x_hat": x_hat, "likelihoods": {"y": torch.cat(y_likelihood, dim=1), "z": z_likelihoods}}


def reference_compress(model, x: Tensor) -> dict:
    """The reference's compress up to the coder: z rounded around its medians, the slice
    loop with symbols collected in Python lists; returns the symbols, the scales and the ŷ
    the decoder rebuilds."""
    with straightforward_layers():
        y = model.g_a(x)
        z = model.h_a(y)
        medians = model.entropy_bottleneck.quantiles[:, 0, 1].reshape(1, -1, 1, 1)
        z_hat = torch.round(z - medians) + medians
        latent_scales = model.h_scale_s(z_hat)
        latent_means = model.h_mean_s(z_hat)
        symbols_list, y_hat_slices, scales = [], [], []
        for i, y_slice in enumerate(y.chunk(model.config.num_slices, 1)):
            mean_support, mu, scale = _slice_params(model, i, latent_means, latent_scales, y_hat_slices)
            y_q_slice = torch.round(y_slice - mu)
            y_hat_slice = y_q_slice + mu
            symbols_list.extend(int(v) for v in y_q_slice.reshape(-1).tolist())
            scales.append(scale)
            lrp = model.lrp_transforms[i](torch.cat([mean_support, y_hat_slice], dim=1))
            y_hat_slices.append(y_hat_slice + 0.5 * torch.tanh(lrp))
    return {"shape": z.size()[-2:], "symbols": symbols_list, "scales": torch.cat(scales, dim=1),
            "y_hat": torch.cat(y_hat_slices, dim=1)}


def reference_synthesis(model, y_hat: Tensor) -> Tensor:
    """The reference's decoder output from ŷ: g_s, clamped."""
    with straightforward_layers():
        return model.g_s(y_hat).clamp_(0, 1)
