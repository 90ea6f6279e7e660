"""Elementary functions that give the same float64 bits on every computer.

IEEE 754 makes ``+ - * /`` and ``sqrt`` correctly rounded, so a fixed sequence of them on
the same inputs gives the same bits on any CPU kernel set (scalar, AVX2, AVX-512) and on a
GPU. ``exp``, ``log``, ``erf`` and ``tanh`` are not: PyTorch's vectorised kernels (SLEEF),
the scalar C library and CUDA each round their last bits differently. The functions here
are written with the correctly rounded operations alone (plus exact ones: ``floor``,
``round``, comparisons, and powers of two built from their bit patterns), each its own
tensor op so that no kernel can fuse a multiply and an add into one rounding.

Accuracy (against 40-digit references): :func:`exp` and :func:`log` about 1 ulp;
:func:`erfc` 1.6e-15 relative on [-6, 3], growing with the rounding of u**2 in the tail to
1.1e-13 at u = 26 (scripts/fit_erfc.py); the derived functions follow. That is far below the
float32 precision the networks were trained in; what matters here is that the bits are the
same everywhere.

All functions take and return float64 tensors (other float inputs are converted).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: ln 2 split so that ``k * LN2_HIGH`` is exact for |k| < 2**11 (Cody and Waite's reduction)
LN2_HIGH = 0.693145751953125
LN2_LOW = 1.4286068203094173e-06
LOG2_E = 1.4426950408889634
#: exp() underflows to 0 below this and overflows above the other bound
EXP_MIN, EXP_MAX = -708.0, 709.0
#: Taylor coefficients 1/k! of exp(r) on |r| <= ln(2)/2, highest first (error < 1e-17)
_EXP_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(13, -1, -1))
#: log(m) = 2 atanh(s), s = (m - 1) / (m + 1): coefficients 1/(2k+1) of s^(2k), highest first
_ATANH_SERIES = tuple(1.0 / (2 * k + 1) for k in range(11, -1, -1))
SQRT_HALF = 0.7071067811865476

#: Chebyshev coefficients (in s = 2t - 1) of h(t) = log(erfcx(u) / t), t = 2 / (2 + u), on
#: t in (0, 1], i.e. u >= 0; max error 1.2e-15. scripts/fit_erfc.py refits them with 40-digit
#: mpmath (agreeing within 5e-16) and measures the errors. These values are part of the file
#: format (the Gaussian tables are built with them): never refitted in place.
_ERFC_CHEBYSHEV = (
    -0.6513268598908551, 0.6419697923564902, 0.019476473204185767, -0.009561514786808561,
    -0.0009465953444817814, 0.00036683949785274133, 4.252332480665003e-05,
    -2.0278578112476454e-05, -1.6242900046917674e-06, 1.3036558356508325e-06,
    1.56264417024004e-08, -8.523809595576299e-08, 6.52905448307983e-09, 5.059343344809076e-09,
    -9.913642351085366e-10, -2.2736520041297957e-10, 9.646790840761087e-11,
    2.393922469032326e-12, -6.885879737342261e-12, 8.94367763041064e-13, 3.131423689796931e-13,
    -1.1268574634061048e-13, 3.27327429588314e-16, 7.076223611035186e-15, -1.7436301059738546e-15,
)
#: erfc(u) for u at or above this is below the smallest float64
ERFC_ZERO = 27.3


def as_float64(x: Tensor | float) -> Tensor:
    """``x`` as a float64 tensor (exact for float16/32 inputs)."""
    return torch.as_tensor(x).to(torch.float64)


def power_of_two(exponent: Tensor) -> Tensor:
    """2**k as float64 for integer-valued k in [-1022, 1023], built from its bit pattern (exact)."""
    biased = (exponent.to(torch.int64) + 1023).clamp_(1, 2046)
    return torch.bitwise_left_shift(biased, 52).view(torch.float64)


def _horner(x: Tensor, coefficients: tuple[float, ...]) -> Tensor:
    """sum c_i x^(n-i) for coefficients given highest first, one rounding per op."""
    out = torch.full_like(x, coefficients[0])
    for c in coefficients[1:]:
        out = out * x
        out = out + c
    return out


def exp(x: Tensor) -> Tensor:
    """e**x: x = k ln2 + r with |r| <= ln(2)/2, a degree-13 Taylor polynomial for e**r,
    then an exact scaling by 2**k. Saturates to 0 below :data:`EXP_MIN`."""
    x = as_float64(x)
    low = x < EXP_MIN
    x = x.clamp(EXP_MIN, EXP_MAX)
    k = torch.round(x * LOG2_E)
    r = (x - k * LN2_HIGH) - k * LN2_LOW
    out = _horner(r, _EXP_TAYLOR) * power_of_two(k)
    return out.masked_fill_(low, 0.0)


def log(x: Tensor) -> Tensor:
    """Natural logarithm of positive x: x = m 2**e with m in [sqrt(1/2), sqrt(2)), then
    log m = 2 atanh((m - 1) / (m + 1)) as a series in s**2 <= 0.0295."""
    x = as_float64(x)
    mantissa, exponent = torch.frexp(x)  # x = mantissa * 2**exponent, mantissa in [0.5, 1)
    small = mantissa < SQRT_HALF
    mantissa = torch.where(small, mantissa * 2.0, mantissa)
    e = exponent.to(torch.float64) - small.to(torch.float64)
    s = (mantissa - 1.0) / (mantissa + 1.0)
    series = _horner(s * s, _ATANH_SERIES) * s * 2.0
    out = (e * LN2_LOW + series) + e * LN2_HIGH
    out = torch.where(x > 0, out, torch.full_like(out, -math.inf))
    return torch.where(x.isnan() | (x < 0), torch.full_like(out, math.nan), out)


def _clenshaw(s: Tensor, coefficients: tuple[float, ...]) -> Tensor:
    """Chebyshev series sum c_k T_k(s) by Clenshaw's recurrence."""
    b1 = torch.zeros_like(s)
    b2 = torch.zeros_like(s)
    two_s = s * 2.0
    for c in reversed(coefficients[1:]):
        b1, b2 = (two_s * b1 - b2) + c, b1
    return (s * b1 - b2) + coefficients[0]


def erfc(x: Tensor) -> Tensor:
    """Complementary error function, accurate in relative terms in the upper tail:
    for u = |x|, erfc(u) = t exp(-u^2 + h(t)) with t = 2 / (2 + u); erfc(-u) = 2 - erfc(u)."""
    x = as_float64(x)
    u = x.abs().clamp(max=ERFC_ZERO)
    t = 2.0 / (u + 2.0)
    h = _clenshaw(t * 2.0 - 1.0, _ERFC_CHEBYSHEV)
    upper = t * exp(h - u * u)
    return torch.where(x < 0, 2.0 - upper, upper)


def normal_cdf(x: Tensor) -> Tensor:
    """Phi(x), the standard normal CDF: erfc(-x / sqrt 2) / 2."""
    return erfc(as_float64(x) * -SQRT_HALF) * 0.5


def gelu(x: Tensor) -> Tensor:
    """x Phi(x), the exact (erf) GELU."""
    x = as_float64(x)
    return x * normal_cdf(x)


def sigmoid(x: Tensor) -> Tensor:
    """1 / (1 + e**-x), written so that e** never overflows."""
    x = as_float64(x)
    e = exp(-x.abs())
    positive = 1.0 / (e + 1.0)
    return torch.where(x >= 0, positive, e / (e + 1.0))


def tanh(x: Tensor) -> Tensor:
    """tanh x = sign(x) (1 - 2 / (e**(2|x|) + 1))."""
    x = as_float64(x)
    e = exp(x.abs() * -2.0)
    magnitude = (1.0 - e) / (e + 1.0)
    return torch.where(x < 0, -magnitude, magnitude)


def softplus(x: Tensor) -> Tensor:
    """log(1 + e**x) = max(x, 0) + log(1 + e**-|x|)."""
    x = as_float64(x)
    return x.clamp(min=0) + log(exp(-x.abs()) + 1.0)


def sqrt(x: Tensor) -> Tensor:
    """The correctly rounded square root of float32 ``x``, whatever the kernels' own sqrt.

    PyTorch's vectorised float sqrt is not always correctly rounded (SLEEF's, 0.5001 ulp),
    so its last bit differs between kernel sets. A candidate within one ulp is corrected
    exactly: s is the correctly rounded root iff x lies between the squares of the midpoints
    to s's neighbours, and those squares (25-bit midpoints, 50-bit squares) are exact in
    float64. (No tie is possible: a midpoint's square needs 50 bits, x has 24.)
    """
    x = x.to(torch.float32)
    s = torch.sqrt(x.to(torch.float64)).to(torch.float32)
    up = torch.nextafter(s, torch.full_like(s, math.inf))
    down = torch.nextafter(s, torch.zeros_like(s))
    s64, x64 = s.to(torch.float64), x.to(torch.float64)
    high = (s64 + up.to(torch.float64)) * 0.5
    low = (s64 + down.to(torch.float64)) * 0.5
    s = torch.where(x64 > high * high, up, s)
    return torch.where(x64 < low * low, down, s)


class InterpolatedFunction:
    """A smooth function tabulated on a uniform grid and interpolated linearly: ten
    correctly rounded ops per value instead of the ~100 of :func:`erfc`, for the hot spots
    of the exact path (GELU, softmax). The table itself is computed with the exact
    functions above, so the values are the same everywhere too.

    Args:
        fn: the function (float64 tensor -> float64 tensor).
        low, high: the tabulated interval; inputs are clamped to it. ``low`` must be a
            multiple of the step.
        step_bits: the grid step is ``2**-step_bits`` (so the position on the grid is exact).

    The interpolation error is at most ``step**2 / 8 * max|fn''|``.
    """

    def __init__(self, fn, low: float, high: float, step_bits: int) -> None:
        self.fn = fn
        self.low, self.high = float(low), float(high)
        self.scale = float(2**step_bits)
        if self.low * self.scale != math.floor(self.low * self.scale):
            raise ValueError("the table's lower end must be a multiple of its step")
        self.size = int(math.ceil((self.high - self.low) * self.scale)) + 1
        self._values: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor]] = {}

    def values(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """The tabulated values and the slopes to the next entry (per grid step)."""
        table = self._values.get((device, dtype))
        if table is None:
            grid = torch.arange(self.size, dtype=torch.float64) / self.scale + self.low
            values = self.fn(grid)
            slopes = torch.cat([values[1:] - values[:-1], values.new_zeros(1)])
            table = self._values[(device, dtype)] = (values.to(device=device, dtype=dtype),
                                                     slopes.to(device=device, dtype=dtype))
        return table

    def __call__(self, x: Tensor) -> Tensor:
        """Interpolated values in x's type: float32 or float64 (other types: float64)."""
        if x.dtype not in (torch.float32, torch.float64):
            x = as_float64(x)
        values, slopes = self.values(x.device, x.dtype)
        position = x.clamp(self.low, self.high).sub_(self.low).mul_(self.scale)
        index = position.floor().clamp_(max=self.size - 2)
        fraction = position.sub_(index)
        flat = index.to(torch.int32).reshape(-1)
        out = values.index_select(0, flat).reshape(x.shape)
        return out.add_(slopes.index_select(0, flat).reshape(x.shape).mul_(fraction))


#: Phi on [-8.5, 8.5] (beyond, Phi is within 1e-17 of 0 or 1), step 2**-11: error < 8e-9
_NORMAL_CDF_TABLE = InterpolatedFunction(normal_cdf, -8.5, 8.5, 11)
#: e**x for x in [-36, 0] (softmax after subtracting the maximum; e**-36 = 2e-16), step
#: 2**-11: relative error < 3e-8
_EXP_NONPOSITIVE_TABLE = InterpolatedFunction(exp, -36.0, 0.0, 11)


def fast_gelu(x: Tensor) -> Tensor:
    """x Phi(x) with Phi interpolated (absolute error of Phi < 8e-9), in x's float type
    (float32 or float64)."""
    return x * _NORMAL_CDF_TABLE(x)


def fast_exp_nonpositive(x: Tensor) -> Tensor:
    """e**x for x <= 0, interpolated (relative error < 3e-8; 2e-16 below -36), in x's type."""
    return _EXP_NONPOSITIVE_TABLE(x)
