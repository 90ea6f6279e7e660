"""Fit and check the Chebyshev series behind :func:`tcmcodec.exact.elementary.erfc`.

erfc(u) for u >= 0 is written as t * exp(-u**2 + h(t)) with t = 2 / (2 + u) in (0, 1] and
h(t) = log(erfcx(u) / t), a smooth function of t; h is expanded in Chebyshev polynomials of
s = 2t - 1 in [-1, 1]. This script computes the expansion with 40-digit arithmetic (mpmath:
interpolation at Chebyshev nodes, which converges to the Chebyshev projection), compares it
with the coefficients stored in the package, and measures the error of the stored series and
of the float64 ``erfc`` built on it:

    python scripts/fit_erfc.py              # compare and check (about 20 s)
    python scripts/fit_erfc.py --print      # print freshly fitted coefficients

The stored coefficients are part of the file format: the Gaussian probability tables, and
with them every file's symbols, are computed from them. They are never refitted in place;
a change would be a new format version.
"""

from __future__ import annotations

import argparse

import mpmath as mp
import torch

from tcmcodec.exact import elementary

#: decimal digits of the reference arithmetic
DIGITS = 40
#: Chebyshev nodes the expansion is interpolated at (more than the terms kept: aliasing of
#: the dropped terms is then below float64 resolution)
NODES = 64
#: points of the error checks
CHECK_POINTS = 2001


def h_of_s(s: mp.mpf) -> mp.mpf:
    """h at s = 2t - 1: log(erfcx(u) / t) with u = 2 / t - 2."""
    t = (s + 1) / 2
    u = 2 / t - 2
    return mp.log(mp.erfc(u) * mp.exp(u * u) / t)


def fit(terms: int, nodes: int = NODES) -> list[mp.mpf]:
    """The first ``terms`` Chebyshev coefficients of h, by interpolation at ``nodes`` nodes."""
    angles = [mp.pi * (j + mp.mpf(1) / 2) / nodes for j in range(nodes)]
    values = [h_of_s(mp.cos(angle)) for angle in angles]
    coefficients = []
    for k in range(terms):
        c = 2 * mp.fsum(v * mp.cos(k * angle) for v, angle in zip(values, angles)) / nodes
        coefficients.append(c / 2 if k == 0 else c)
    return coefficients


def series(s: mp.mpf, coefficients: tuple[float, ...] | list[mp.mpf]) -> mp.mpf:
    """sum c_k T_k(s), in the reference arithmetic."""
    return mp.fsum(mp.mpf(c) * mp.chebyt(k, s) for k, c in enumerate(coefficients))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--print", action="store_true", help="print freshly fitted coefficients")
    args = parser.parse_args()
    mp.mp.dps = DIGITS
    stored = elementary._ERFC_CHEBYSHEV
    fresh = fit(len(stored))
    if args.print:
        print(",\n".join(repr(float(c)) for c in fresh))
        return
    print(f"terms: {len(stored)}; largest difference stored - fitted: "
          f"{float(max(abs(mp.mpf(c) - f) for c, f in zip(stored, fresh))):.2e}")
    grid = [mp.mpf(-1) + 2 * mp.mpf(i) / (CHECK_POINTS - 1) for i in range(CHECK_POINTS)]
    series_error = max(abs(series(s, stored) - h_of_s(s)) if s > -1 else 0 for s in grid)
    print(f"largest error of the stored series on [-1, 1]: {float(series_error):.2e}")
    # erfc itself, relative error, from the centre to deep in the tail (erfc(26) = 6e-296:
    # beyond about 26.5 the results are float64 subnormals and lose relative precision)
    points = [mp.mpf(i) / 100 for i in range(-600, 2601, 3)]
    computed = elementary.erfc(torch.tensor([float(x) for x in points], dtype=torch.float64)).tolist()
    relative = max(abs(mp.mpf(c) / mp.erfc(mp.mpf(float(x))) - 1) for c, x in zip(computed, points))
    print(f"largest relative error of elementary.erfc on [-6, 26]: {float(relative):.2e}")


if __name__ == "__main__":
    main()
