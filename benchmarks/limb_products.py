"""Would int8 products make the exact entropy path faster? (numbers for docs/benchmarks.md)

The exact path (tcmcodec.exact) rounds every operand of a convolution, linear layer or
matrix product to a block-floating-point grid and multiplies the integers in float64. An
alternative numerics keeps 13 bits per operand and splits each integer n into two int8
limbs, n = 128 * hi + lo with |hi|, |lo| <= 64; then

    a @ b = 2**14 (a_hi @ b_hi) + 2**7 ([a_hi a_lo] @ [b_lo; b_hi]) + (a_lo @ b_lo)

is three int8 x int8 -> int32 products (``torch._int_mm``, exact while every int8 operand lies
in [-64, 64], under every oneDNN kernel set), combined exactly in float64. This script swaps
the exact path's convolution, linear and ``addmm`` handlers for such an implementation and
times the encoder's entropy-parameter path on one image, alternating three variants in one
process:

* ``exact``: the shipped exact path (20-bit weights, 20-24-bit activations, float64 products);
* ``int8``: 13-bit operands, products in int8 limbs;
* ``f64-13``: 13-bit operands, products in float64 (same integers as ``int8``: the two
  must write identical files, which the script checks).

Activation x activation products (attention) keep float64 in both 13-bit variants
(``torch._int_mm`` has no batched form). Medians of the warm rounds.

    python benchmarks/limb_products.py ../shared/data/kodak/kodim23.png --rounds 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from tcmcodec import codec
from tcmcodec.coding import latent_coder
from tcmcodec.exact import mode, reductions

OPERAND_BITS = 13
LIMB_BITS = 7
VARIANTS = ("exact", "int8", "f64-13")


def split_limbs(n: Tensor) -> tuple[Tensor, Tensor]:
    """float64 integers |n| <= 2**13 -> int8 (hi, lo), n = 128 hi + lo, -64 <= hi, lo <= 64."""
    wide = n.to(torch.int16)
    hi = (wide + (1 << (LIMB_BITS - 1))) >> LIMB_BITS
    return hi.to(torch.int8), (wide - (hi << LIMB_BITS)).to(torch.int8)


def limb_product(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]) -> Tensor:
    """Exact (hi, lo) @ (hi, lo) as float64 integers."""
    (a_hi, a_lo), (b_hi, b_lo) = a, b
    high = torch._int_mm(a_hi, b_hi).to(torch.float64).mul_(float(1 << (2 * LIMB_BITS)))
    cross = torch._int_mm(torch.cat([a_hi, a_lo], 1), torch.cat([b_lo, b_hi], 0)).to(torch.float64)
    return high.add_(cross.mul_(float(1 << LIMB_BITS))).add_(torch._int_mm(a_lo, b_lo))


def columns_int8(x: Tensor, kernel: tuple[int, int], padding: tuple[int, int]) -> Tensor:
    """im2col of one int8 image (C, H, W), stride 1: (C * kh * kw, H' * W'), rows ordered
    as ``weight.reshape(O, -1)``'s columns."""
    (kh, kw), (ph, pw) = kernel, padding
    channels, height, width = x.shape
    padded = x.new_zeros(channels, height + 2 * ph, width + 2 * pw)
    padded[:, ph:ph + height, pw:pw + width] = x
    out_h, out_w = height + 2 * ph - kh + 1, width + 2 * pw - kw + 1
    cols = x.new_empty(channels, kh, kw, out_h, out_w)
    for dy in range(kh):
        for dx in range(kw):
            cols[:, dy, dx] = padded[:, dy:dy + out_h, dx:dx + out_w]
    return cols.reshape(channels * kh * kw, out_h * out_w)


class ThirteenBitHandlers:
    """Convolution, linear and addmm handlers with 13-bit operands; ``use_int8`` picks the
    product. Weights' grids and limbs are cached per parameter view."""

    def __init__(self, use_int8: bool) -> None:
        self.use_int8 = use_int8
        self._weights: dict[tuple, tuple] = {}

    def _weight(self, weight: Tensor, dims: tuple[int, ...], layout: Callable[[Tensor], Tensor]) -> tuple:
        owner = weight if isinstance(weight, torch.nn.Parameter) else weight._base
        key = None
        if isinstance(owner, torch.nn.Parameter):
            key = (id(owner), owner._version, tuple(weight.shape), tuple(weight.stride()),
                   weight.storage_offset(), dims, layout)
            if key in self._weights:
                return self._weights[key]
        integers, step = reductions.to_grid(weight, dims, OPERAND_BITS)
        integers = layout(integers).contiguous()
        entry = (integers, split_limbs(integers), step)
        if key is not None:
            self._weights[key] = entry
        return entry

    def _product(self, a: Tensor, b: Tensor, a_limbs: Any = None, b_limbs: Any = None) -> Tensor:
        if not self.use_int8:
            return torch.mm(a, b)
        return limb_product(a_limbs or split_limbs(a), b_limbs or split_limbs(b))

    def conv2d(self, x: Tensor, weight: Tensor, bias: Tensor | None = None, stride: Any = 1,
               padding: Any = 0, dilation: Any = 1, groups: int = 1) -> Tensor:
        if groups != 1 or {reductions._pair(stride), reductions._pair(dilation)} != {(1, 1)}:
            raise reductions.InexactOperation("the 13-bit prototype covers stride-1 convolutions only")
        kernel, pads = tuple(weight.shape[2:]), reductions._pair(padding)
        n_x, g_x = reductions.to_grid(x, (1, 2, 3), OPERAND_BITS)
        n_w, w_limbs, g_w = self._weight(weight, (1, 2, 3), lambda w: w.reshape(w.shape[0], -1))
        outs = []
        for image in n_x:
            if self.use_int8:
                hi, lo = split_limbs(image)
                cols = (columns_int8(hi, kernel, pads), columns_int8(lo, kernel, pads))
                out = limb_product(w_limbs, cols)
            else:
                out = torch.mm(n_w, F.unfold(image[None], kernel, padding=pads)[0])
            outs.append(out)
        out_h = x.shape[2] + 2 * pads[0] - kernel[0] + 1
        sums = torch.stack(outs).reshape(x.shape[0], weight.shape[0], out_h, -1)
        shift = None if bias is None else bias.reshape(1, -1, 1, 1)
        return reductions._scale_and_shift(sums, g_x * g_w.reshape(1, -1, 1, 1), shift, reductions.activation_dtype(x))

    def linear(self, x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
        n_w, w_limbs, g_w = self._weight(weight, (-1,), torch.t)
        n_x, g_x = reductions.to_grid(x, (-1,), OPERAND_BITS)
        flat = n_x.reshape(-1, n_x.shape[-1])
        sums = self._product(flat, n_w, b_limbs=w_limbs).reshape(*n_x.shape[:-1], weight.shape[0])
        return reductions._scale_and_shift(sums, g_x * g_w.t(), bias, reductions.activation_dtype(x))

    def addmm(self, bias: Tensor, weight: Tensor, x: Tensor, *, beta: float = 1, alpha: float = 1) -> Tensor:
        n_w, w_limbs, g_w = self._weight(weight, (-1,), lambda w: w)
        n_x, g_x = reductions.to_grid(x, (-2,), OPERAND_BITS)
        sums = self._product(n_w, n_x, a_limbs=w_limbs)
        return reductions._scale_and_shift(sums, g_w * g_x, bias, reductions.activation_dtype(x))

    def matmul(self, a: Tensor, b: Tensor) -> Tensor:
        n_a, g_a = reductions.to_grid(a, (-1,), OPERAND_BITS)
        n_b, g_b = reductions.to_grid(b, (-2,), OPERAND_BITS)
        return reductions._scale_and_shift(torch.matmul(n_a, n_b), g_a * g_b, None, reductions.activation_dtype(a))

    def handlers(self) -> dict[str, Callable]:
        table = {name: self.conv2d for name in ("torch.nn.functional.conv2d", "torch.conv2d")}
        table.update({"torch.nn.functional.linear": self.linear, "torch.addmm": self.addmm})
        table.update({name: self.matmul for name in ("torch.matmul", "torch.Tensor.matmul", "torch.Tensor.__matmul__")})
        return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--quality", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (the first is warm-up)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    net = codec.load_model()
    image = Image.open(args.image).convert("RGB")
    shipped = dict(mode._HANDLERS)
    variants = {"exact": {}, "int8": ThirteenBitHandlers(True).handlers(), "f64-13": ThirteenBitHandlers(False).handlers()}
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    files: dict[str, bytes] = {}
    entropy_path = latent_coder._entropy_path
    current = [""]

    def timed(*a: Any, **k: Any) -> Tensor:
        start = time.perf_counter()
        out = entropy_path(*a, **k)
        times[current[0]].append(time.perf_counter() - start)
        return out

    latent_coder._entropy_path = timed
    try:
        for _ in range(args.rounds):
            for name in VARIANTS:
                mode._HANDLERS.clear()
                mode._HANDLERS.update(shipped, **variants[name])
                current[0] = name
                files[name] = codec.encode_image(image, net, quality=args.quality).data
    finally:
        mode._HANDLERS.clear()
        mode._HANDLERS.update(shipped)
        latent_coder._entropy_path = entropy_path
    print(f"{args.image}, quality {args.quality}, {args.threads} threads; entropy-parameter path of the encoder")
    for name in VARIANTS:
        warm = times[name][1:] or times[name]
        print(f"  {name:7s} median {statistics.median(warm):.3f} s  ({', '.join(f'{t:.3f}' for t in warm)})  "
              f"{len(files[name])} bytes")
    print("  int8 and f64-13 files identical:", files["int8"] == files["f64-13"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
