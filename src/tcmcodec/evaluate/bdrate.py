"""BD-rates (Bjontegaard delta rate) with the ``bjontegaard`` package, and the overlap rule.

BD-rate of a *test* curve against an *anchor* curve: the average difference in log-rate at
equal quality, over the quality range where both curves exist, as a percentage (negative =
the test codec needs fewer bits). We use ``bjontegaard.bd_rate`` with ``method="pchip"``
(monotone piecewise-cubic interpolation, the package's recommended choice; the classic
VCEG-M33 cubic fit is unstable with 8+ points).

Quality axes: PSNR in dB for the PSNR BD-rate; for MS-SSIM the value is first turned into
dB, ``-10 log10(1 - MS-SSIM)``, as is usual, because raw MS-SSIM saturates near 1.

Before interpolation each curve is cleaned: points with a non-finite value or bpp <= 0 are
dropped, points are sorted by bpp, and a point is kept only if both its bpp and its quality
are strictly higher than those of the previous kept point (a monotone curve is what the
interpolation needs; dropping a rare non-monotone point at a saturated end is harmless).

**Overlap rule.** Let the overlap be the length of the quality interval common to both
curves divided by the length of their union. If it is below ``MIN_OVERLAP`` = 20%, or if a
curve has fewer than 2 usable points, no number is reported: the table says
"insufficient overlap" (or "too few points"). With curves that barely overlap a BD-rate
would come from a sliver of the quality range and extrapolated-looking interpolants, and a
single number would mislead. Between 20% and 100% the BD-rate is computed over the common
interval only (the package's behaviour); the overlap percentage is reported alongside it.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

#: curves overlapping less than this fraction of their union range get no BD-rate
MIN_OVERLAP = 0.20
#: interpolation passed to ``bjontegaard.bd_rate``
METHOD = "pchip"

INSUFFICIENT_OVERLAP = "insufficient overlap"
TOO_FEW_POINTS = "too few points"
NO_DATA = "n/a"


def msssim_to_db(values: Sequence[float] | None) -> list[float] | None:
    if values is None:
        return None
    out = []
    for v in values:
        if v is None or not math.isfinite(float(v)):
            out.append(math.nan)
        elif v >= 1.0:
            out.append(math.inf)
        else:
            out.append(-10.0 * math.log10(1.0 - float(v)))
    return out


def db_to_msssim(values: Sequence[float]) -> list[float]:
    return [1.0 - 10.0 ** (-float(v) / 10.0) if v is not None else math.nan for v in values]


@dataclass
class Curve:
    """One rate-distortion curve: mean bpp and quality per operating point."""

    name: str
    bpp: list[float]
    psnr: list[float] | None = None
    msssim: list[float] | None = None  # linear MS-SSIM (0..1)
    kind: str = "classical"  # "ours", "classical" or "reference"
    source: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def msssim_db(self) -> list[float] | None:
        return msssim_to_db(self.msssim)

    def metric(self, which: str) -> list[float] | None:
        if which == "psnr":
            return self.psnr
        if which in ("ms-ssim", "msssim"):
            return self.msssim_db
        raise ValueError(f"unknown metric {which!r}")

    @classmethod
    def from_results(cls, data: dict, kind: str | None = None, source: str = "") -> "Curve":
        """A curve from a results dict in CompressAI's format (ours or a reference file).

        Reads ``psnr-rgb`` (or ``psnr``) and ``ms-ssim-rgb`` (or ``ms-ssim``, or
        ``ms-ssim-db-rgb`` converted back to linear MS-SSIM).
        """
        res = data["results"]
        n = len(res["bpp"])

        def get(*keys):
            for k in keys:
                if k in res and res[k] is not None and len(res[k]) == n:
                    return [math.nan if v is None else float(v) for v in res[k]]
            return None

        psnr = get("psnr-rgb", "psnr")
        msssim = get("ms-ssim-rgb", "ms-ssim")
        if msssim is None and get("ms-ssim-db-rgb") is not None:
            msssim = db_to_msssim(get("ms-ssim-db-rgb"))
        if kind is None:
            kind = "ours" if data.get("learned") else "classical"
        return cls(
            name=str(data.get("name") or source or "?"),
            bpp=[float(v) for v in res["bpp"]],
            psnr=psnr,
            msssim=msssim,
            kind=kind,
            source=source,
            extra={k: data[k] for k in ("codec", "description") if k in data},
        )

    @classmethod
    def from_file(cls, path: str | os.PathLike, kind: str = "reference") -> "Curve":
        from tcmcodec.evaluate.results_file import load_results

        return cls.from_results(load_results(path), kind=kind, source=str(Path(path)))


@dataclass
class BDValue:
    """A BD-rate in percent, or the reason there is none."""

    value: float | None
    status: str  # "ok", INSUFFICIENT_OVERLAP, TOO_FEW_POINTS or NO_DATA
    overlap: float | None = None  # fraction of the union quality range

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def __str__(self) -> str:
        if self.ok:
            return f"{self.value:+.1f}%"
        if self.status == INSUFFICIENT_OVERLAP and self.overlap is not None:
            return f"{INSUFFICIENT_OVERLAP} ({100 * self.overlap:.0f}%)"
        return self.status


def clean_curve(rate: Sequence[float], quality: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Finite points with bpp > 0, sorted by bpp, strictly increasing in both bpp and quality."""
    pts = sorted(
        (float(r), float(q))
        for r, q in zip(rate, quality)
        if r is not None and q is not None and math.isfinite(float(r)) and float(r) > 0 and math.isfinite(float(q))
    )
    kept: list[tuple[float, float]] = []
    for r, q in pts:
        if not kept or (r > kept[-1][0] and q > kept[-1][1]):
            kept.append((r, q))
    arr = np.array(kept, dtype=np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def overlap_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Length of the common range of ``a`` and ``b`` divided by the length of their union."""
    lo, hi = max(a.min(), b.min()), min(a.max(), b.max())
    union = max(a.max(), b.max()) - min(a.min(), b.min())
    if union <= 0:
        return 1.0 if hi >= lo else 0.0
    return max(hi - lo, 0.0) / union


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_quality: Sequence[float],
    test_rate: Sequence[float],
    test_quality: Sequence[float],
    min_overlap: float = MIN_OVERLAP,
    method: str = METHOD,
) -> BDValue:
    """BD-rate (%) of test vs anchor at equal quality, applying the overlap rule."""
    import bjontegaard

    ar, aq = clean_curve(anchor_rate, anchor_quality)
    tr, tq = clean_curve(test_rate, test_quality)
    if len(ar) == 0 or len(tr) == 0:
        return BDValue(None, NO_DATA)
    if len(ar) < 2 or len(tr) < 2:
        return BDValue(None, TOO_FEW_POINTS)
    ov = overlap_fraction(aq, tq)
    if ov < min_overlap or ov == 0.0:
        return BDValue(None, INSUFFICIENT_OVERLAP, ov)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = bjontegaard.bd_rate(ar, aq, tr, tq, method=method, require_matching_points=False, min_overlap=0)
    value = float(value)
    if not math.isfinite(value):
        return BDValue(None, INSUFFICIENT_OVERLAP, ov)
    return BDValue(value, "ok", ov)


def curve_bd_rate(anchor: Curve, test: Curve, metric: str, min_overlap: float = MIN_OVERLAP) -> BDValue:
    am, tm = anchor.metric(metric), test.metric(metric)
    if am is None or tm is None:
        return BDValue(None, NO_DATA)
    return bd_rate(anchor.bpp, am, test.bpp, tm, min_overlap=min_overlap)


@dataclass
class BDRow:
    curve: Curve
    psnr: BDValue
    msssim: BDValue
    is_anchor: bool = False


def bd_table(curves: Sequence[Curve], anchor: Curve, min_overlap: float = MIN_OVERLAP) -> list[BDRow]:
    rows = []
    for c in curves:
        if c is anchor:
            rows.append(BDRow(c, BDValue(0.0, "ok", 1.0), BDValue(0.0, "ok", 1.0), is_anchor=True))
            continue
        rows.append(
            BDRow(
                c,
                curve_bd_rate(anchor, c, "psnr", min_overlap),
                curve_bd_rate(anchor, c, "ms-ssim", min_overlap),
            )
        )
    return rows


def _range(values: Sequence[float] | None, fmt: str) -> str:
    if not values:
        return "-"
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return "-"
    return f"{fmt.format(min(v))}-{fmt.format(max(v))}"


def format_markdown(rows: Sequence[BDRow], anchor_name: str, min_overlap: float = MIN_OVERLAP, title: str | None = None) -> str:
    """The BD-rate table in Markdown."""
    lines = []
    if title:
        lines += [f"# {title}", ""]
    lines += [
        f"BD-rate against **{anchor_name}** (negative = fewer bits at equal quality; "
        f"`bjontegaard` {METHOD} interpolation; MS-SSIM in dB; no number when the quality ranges "
        f"overlap by less than {100 * min_overlap:.0f}% of their union).",
        "",
        "| codec | kind | points | bpp range | PSNR range (dB) | MS-SSIM range | BD-rate PSNR | BD-rate MS-SSIM |",
        "| --- | --- | ---: | --- | --- | --- | ---: | ---: |",
    ]
    for r in rows:
        c = r.curve
        name = f"{c.name} (anchor)" if r.is_anchor else c.name
        psnr = "0.0% (anchor)" if r.is_anchor else str(r.psnr)
        ms = "0.0% (anchor)" if r.is_anchor else str(r.msssim)
        lines.append(
            f"| {name} | {c.kind} | {len(c.bpp)} | {_range(c.bpp, '{:.3f}')} | {_range(c.psnr, '{:.2f}')} "
            f"| {_range(c.msssim, '{:.4f}')} | {psnr} | {ms} |"
        )
    return "\n".join(lines) + "\n"
