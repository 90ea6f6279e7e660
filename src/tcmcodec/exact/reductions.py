"""Reductions in block floating point: exact sums, so the same bits everywhere.

Each reduction (convolution, linear layer, matrix product, layer norm, softmax) rounds its
operands to a grid first: a group of values that is summed together shares one power-of-two
step, keeping ``bits`` bits below the group's largest magnitude (a convolution: per image;
a linear layer or matrix product: per row and column). Products and sums of such values are
integers times a power of two that float64 holds exactly while every partial sum stays
below 2**53, so the sum is the same whatever order a kernel adds in. The bit budgets are
chosen per layer from its fan-in so that it does (:func:`operand_bits`).

The functions here take and return ordinary tensors; :class:`tcmcodec.exact.mode.ExactArithmetic`
routes a model's torch calls to them.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from tcmcodec.exact import elementary


class InexactOperation(RuntimeError):
    """A torch operation without an exact (platform-independent) implementation was used
    inside :class:`~tcmcodec.exact.mode.ExactArithmetic`."""


#: mantissa bits of float64: sums of integers below 2**53 are exact in any order
EXACT_BITS = 53
#: bits kept per weight, relative to the largest weight of its output channel
WEIGHT_BITS = 20
#: at most this many bits per activation (float32's precision: more buys nothing)
MAX_ACTIVATION_BITS = 24
DTYPE = torch.float64


def _fan_in_bits(terms: int) -> int:
    """Bits a sum of ``terms`` products can add to its operands' magnitudes."""
    return max(0, math.ceil(math.log2(max(terms, 1))))


def operand_bits(terms: int, other_bits: int) -> int:
    """Bits for an activation multiplied by ``other_bits``-bit values and summed over ``terms``
    products, so that every partial sum stays below 2**52 (one bit of margin for the sign)."""
    bits = EXACT_BITS - 1 - other_bits - _fan_in_bits(terms)
    if bits < 8:
        raise InexactOperation(f"a sum of {terms} products cannot be computed exactly in float64")
    return min(bits, MAX_ACTIVATION_BITS)


def activation_dtype(x: Tensor) -> torch.dtype:
    """The type results are returned in: float64 for float64 inputs, else float32 (the
    networks' own precision; element-wise float32 arithmetic is correctly rounded too)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def to_grid(x: Tensor, dims: tuple[int, ...], bits: int) -> tuple[Tensor, Tensor]:
    """Round ``x`` to integers ``n`` and steps ``g`` (powers of two, one per group, kept as
    size-1 dims over ``dims``) with ``x ≈ n * g`` and ``|n| <= 2**bits``; both float64.

    The step is chosen from the group's maximum magnitude, itself exact, so the result
    depends only on the values, never on the kernel that computes it; the scaling by a power
    of two is exact.
    """
    if x.dtype not in (torch.float32, torch.float64):
        x = x.to(DTYPE)
    peak = torch.maximum(x.amax(dim=dims, keepdim=True), -x.amin(dim=dims, keepdim=True))
    _, exponent = torch.frexp(peak)  # peak < 2**exponent
    exponent = exponent.to(DTYPE)
    # a float64 scale of the same rank promotes the product to float64 in the same pass
    scaled = torch.mul(x, elementary.power_of_two(bits - exponent)).round_()
    return scaled, elementary.power_of_two(exponent - bits)


def _scale_and_shift(sums: Tensor, step: Tensor, bias: Tensor | None, dtype: torch.dtype) -> Tensor:
    """``sums * step + bias`` in ``dtype``: the product of the exact sums and a power of two is
    exact, so a kernel that fuses it with the addition rounds once, as one that does not."""
    out = sums.mul_(step) if bias is None else torch.addcmul(bias.to(DTYPE), sums, step)
    return out.to(dtype)


#: attribute under which a parameter keeps its grid (dies with the parameter)
_GRID_ATTRIBUTE = "_tcmcodec_exact_grid"


def weight_grid(weight: Tensor, dims: tuple[int, ...],
                layout: Callable[[Tensor], Tensor] | None = None) -> tuple[Tensor, Tensor]:
    """:func:`to_grid` of a weight with :data:`WEIGHT_BITS` (its integers rearranged by
    ``layout`` if given), cached on the parameter (or the parameter a view was taken of)
    while it is unchanged."""
    owner = weight if isinstance(weight, torch.nn.Parameter) else weight._base
    if not isinstance(owner, torch.nn.Parameter):
        integers, step = to_grid(weight, dims, WEIGHT_BITS)
        return (integers if layout is None else layout(integers)), step
    key = (owner._version, tuple(weight.shape), tuple(weight.stride()), weight.storage_offset(), dims,
           weight.device, layout)
    cached = getattr(owner, _GRID_ATTRIBUTE, None)
    if cached is not None and cached[0] == key:
        return cached[1]
    integers, step = to_grid(weight, dims, WEIGHT_BITS)
    grid = ((integers if layout is None else layout(integers)), step)
    setattr(owner, _GRID_ATTRIBUTE, (key, grid))
    return grid


def _pair(value: Any) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _taps(weight: Tensor) -> Tensor:
    """(O, C, kh, kw) -> (kh, kw, O, C), one contiguous matrix per kernel tap."""
    return weight.permute(2, 3, 0, 1).contiguous()


def _tap_conv2d(x: Tensor, taps: Tensor, padding: tuple[int, int]) -> Tensor:
    """Stride-1 convolution of x (B, C, H, W) as one matrix product per kernel tap, each
    added into the output: tap (dy, dx) multiplies the (O, C) weights with the padded image
    flattened row by row and shifted by ``dy * row + dx``, a strided view (no im2col copy);
    the columns that wrap around a row end are cut off at the end. With integer operands
    every product and partial sum is exact, so this equals ``F.conv2d``; measured 1.7x
    faster on float64 at the entropy model's sizes (one thread)."""
    batch, channels, height, width = x.shape
    kernel_h, kernel_w, out_channels, _ = taps.shape
    pad_h, pad_w = padding
    row = width + 2 * pad_w
    out_h, out_w = height + 2 * pad_h - kernel_h + 1, row - kernel_w + 1
    columns = out_h * row
    # the padded image, rows flattened, with room for the last tap's shifted view
    flat = x.new_zeros(batch, channels, (height + 2 * pad_h) * row + kernel_w - 1)
    flat[:, :, : (height + 2 * pad_h) * row].view(batch, channels, height + 2 * pad_h, row)[
        :, :, pad_h : pad_h + height, pad_w : pad_w + width] = x
    out = x.new_empty(batch, out_channels, columns)
    for b in range(batch):
        for dy in range(kernel_h):
            for dx in range(kernel_w):
                start = dy * row + dx
                view = flat[b, :, start:start + columns]
                if dy == dx == 0:
                    torch.mm(taps[dy, dx], view, out=out[b])
                else:
                    out[b].addmm_(taps[dy, dx], view)
    return out.view(batch, out_channels, out_h, row)[..., :out_w]


def exact_conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
                 padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
    """``F.conv2d`` with per-image activation steps and per-output-channel weight steps."""
    terms = weight.shape[1] * weight.shape[2] * weight.shape[3]
    n_x, g_x = to_grid(x, (1, 2, 3), operand_bits(terms, WEIGHT_BITS))
    if _pair(stride) == (1, 1) and _pair(dilation) == (1, 1) and groups == 1 and not isinstance(padding, str):
        taps, g_w = weight_grid(weight, (1, 2, 3), _taps)
        out = _tap_conv2d(n_x, taps, _pair(padding))
    else:
        n_w, g_w = weight_grid(weight, (1, 2, 3))
        out = F.conv2d(n_x, n_w, None, stride, padding, dilation, groups)
    shift = None if bias is None else bias.reshape(1, -1, 1, 1)
    return _scale_and_shift(out, g_x * g_w.reshape(1, -1, 1, 1), shift, activation_dtype(x))


def _exact_product(a: Tensor, b: Tensor, a_bits: int, b_bits: int,
                   a_grid: tuple[Tensor, Tensor] | None = None, b_grid: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """a (..., n, k) @ b (..., k, m) with a's rows and b's columns on their own grids
    (given, e.g. a cached weight's, or computed)."""
    n_a, g_a = a_grid or to_grid(a, (-1,), a_bits)
    n_b, g_b = b_grid or to_grid(b, (-2,), b_bits)
    return torch.matmul(n_a, n_b), g_a * g_b


def exact_matmul(a: Tensor, b: Tensor) -> Tensor:
    """``torch.matmul`` of two activations (matrices or batches of them)."""
    if a.dim() < 2 or b.dim() < 2:
        raise InexactOperation("exact matmul needs operands with at least 2 dims")
    bits = (EXACT_BITS - 1 - _fan_in_bits(a.shape[-1])) // 2
    sums, step = _exact_product(a, b, min(bits, MAX_ACTIVATION_BITS), min(bits, MAX_ACTIVATION_BITS))
    return _scale_and_shift(sums, step, None, activation_dtype(a))


def exact_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear``: per-row activation steps, per-output-row weight steps."""
    terms = weight.shape[1]
    n_w, g_w = weight_grid(weight, (-1,))
    sums, step = _exact_product(x, weight.t(), operand_bits(terms, WEIGHT_BITS), WEIGHT_BITS,
                                b_grid=(n_w.t(), g_w.t()))
    return _scale_and_shift(sums, step, bias, activation_dtype(x))


def exact_addmm(bias: Tensor, weight: Tensor, x: Tensor, *, beta: float = 1, alpha: float = 1) -> Tensor:
    """``torch.addmm(bias, weight, x)`` (a 1x1 convolution of one image: weight (O, C),
    x (C, pixels)): per-row weight steps, per-pixel activation steps."""
    if beta != 1 or alpha != 1:
        raise InexactOperation("exact addmm supports beta = alpha = 1 only")
    terms = weight.shape[1]
    sums, step = _exact_product(weight, x, WEIGHT_BITS, operand_bits(terms, WEIGHT_BITS),
                                a_grid=weight_grid(weight, (-1,)))
    return _scale_and_shift(sums, step, bias, activation_dtype(x))


def exact_layer_norm(x: Tensor, normalized_shape: Any, weight: Tensor | None = None,
                     bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """``F.layer_norm`` over the last dim: mean and variance from exact integer sums
    (C sum n^2 - (sum n)^2 for the variance), then correctly rounded element-wise ops."""
    shape = tuple(normalized_shape) if not isinstance(normalized_shape, int) else (normalized_shape,)
    if len(shape) != 1:
        raise InexactOperation("exact layer norm normalises over the last dim only")
    count = shape[0]
    bits = (EXACT_BITS - 1 - 2 * _fan_in_bits(count)) // 2
    n, step = to_grid(x, (-1,), min(bits, MAX_ACTIVATION_BITS))
    total = n.sum(dim=-1, keepdim=True)
    squares = (n * n).sum(dim=-1, keepdim=True)
    variance = (squares * count - total * total) / (count * count) * (step * step)
    centered = (n - total / count) * step
    out = centered / elementary.sqrt((variance + eps).to(torch.float32)).to(DTYPE)
    if weight is not None:
        out = out * weight.to(DTYPE)
    if bias is not None:
        out = out + bias.to(DTYPE)
    return out.to(activation_dtype(x))


def exact_softmax(x: Tensor, dim: int, *args: Any, **kwargs: Any) -> Tensor:
    """softmax along ``dim``: e**(x - max) rounded to a fixed grid (all values are <= 1),
    an exact float64 sum of the integers, one division. float32 inputs use a 2**-23 grid
    (integers exact in float32), float64 ones the finest grid whose sums stay exact."""
    dtype = activation_dtype(x)
    x = x.to(dtype)
    shifted = x - x.amax(dim=dim, keepdim=True)
    terms = x.shape[dim]
    bits = min(EXACT_BITS - 1 - _fan_in_bits(terms), MAX_ACTIVATION_BITS - 1 if dtype == torch.float32 else EXACT_BITS)
    weights = elementary.fast_exp_nonpositive(shifted).mul_(2.0**bits).round_()
    total = weights.sum(dim=dim, keepdim=True, dtype=DTYPE)
    return weights.mul_((1.0 / total).to(dtype))


def exact_gelu(x: Tensor, approximate: str = "none") -> Tensor:
    if approximate != "none":
        raise InexactOperation(f"exact GELU is the erf form, not approximate={approximate!r}")
    return elementary.fast_gelu(x.to(activation_dtype(x)))


def exact_softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    if beta != 1:
        raise InexactOperation("exact softplus supports beta = 1 only")
    dtype = activation_dtype(x)
    x = x.to(DTYPE)
    return torch.where(x > threshold, x, elementary.softplus(x)).to(dtype)


def exact_pow(x: Tensor, exponent: Any) -> Tensor:
    if isinstance(exponent, (int, float)) and exponent == 2:
        return x * x
    raise InexactOperation(f"exact pow supports the exponent 2 only, got {exponent!r}")
