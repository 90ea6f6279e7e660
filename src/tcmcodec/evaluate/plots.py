"""The rate-distortion figure: one PNG, two panels (bpp vs PSNR, bpp vs MS-SSIM in dB).

Our models are drawn as thick solid lines, classical codecs measured in the same run as
thin solid lines, reference curves (JSON files, e.g. CompressAI's VTM/BPG anchors) dashed.
The x axis ends a little past the largest bpp of the curves measured in this run, so long
reference curves do not squash the range that was actually evaluated.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

from tcmcodec.evaluate.bdrate import Curve


def _finite(xs, ys):
    pts = [
        (x, y)
        for x, y in zip(xs, ys or [])
        if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)
    ]
    pts.sort()
    return [p[0] for p in pts], [p[1] for p in pts]


def plot_rd(
    curves: Sequence[Curve],
    out_path: str | os.PathLike,
    title: str | None = None,
    dpi: int = 110,
    max_bpp: float | None = None,
) -> str:
    """Write the two-panel RD plot to ``out_path`` (PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    measured = [c for c in curves if c.kind != "reference"] or list(curves)
    if max_bpp is None:
        bmax = max((max(c.bpp) for c in measured if c.bpp), default=1.0)
        max_bpp = bmax * 1.08
    styles = {
        "ours": dict(linewidth=2.4, linestyle="-", marker="o", markersize=5),
        "classical": dict(linewidth=1.4, linestyle="-", marker=".", markersize=6),
        "reference": dict(linewidth=1.4, linestyle="--", marker="x", markersize=4),
    }
    for ax, metric, ylabel in (
        (axes[0], "psnr", "PSNR-RGB (dB)"),
        (axes[1], "ms-ssim", "MS-SSIM-RGB (dB) = -10 log10(1 - MS-SSIM)"),
    ):
        ylo, yhi = math.inf, -math.inf
        for c in curves:
            ys = c.metric(metric)
            if ys is None:
                continue
            x, y = _finite(c.bpp, ys)
            if not x:
                continue
            ax.plot(x, y, label=c.name, **styles.get(c.kind, styles["classical"]))
            for xi, yi in zip(x, y):
                if xi <= max_bpp:
                    ylo, yhi = min(ylo, yi), max(yhi, yi)
        ax.set_xlabel("bits per pixel (bpp)")
        ax.set_ylabel(ylabel)
        ax.set_xlim(0, max_bpp)
        if math.isfinite(ylo) and math.isfinite(yhi):
            pad = 0.04 * (yhi - ylo or 1.0)
            ax.set_ylim(ylo - pad, yhi + pad)
        ax.grid(True, alpha=0.3)
    axes[0].legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_path, dpi=dpi)
    plt.close(fig)
    return str(out_path)
