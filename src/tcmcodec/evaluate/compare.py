"""The side-by-side crop figure: the same crop of the original and of several codecs at about
the same file size.

For a codec with an integer quality range (JPEG, WebP, AVIF, ..., and our variable-rate TCM
models) the quality is found by :func:`tcmcodec.ratecontrol.last_below` (interpolation and
bisection), assuming the file size grows with quality: of the two qualities around the
target bpp, the one whose bpp is closer to the target wins. Codecs without a range (a
fixed-rate TCM, JPEG 2000) try their default qualities and the closest bpp wins. bpp and
PSNR are measured on the whole image; the crop is drawn with nearest-neighbour scaling (no smoothing).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tcmcodec.errors import TcmError
from tcmcodec import metrics
from tcmcodec.evaluate.codecs import Codec
from tcmcodec.ratecontrol import last_below


@dataclass
class Match:
    codec: Codec
    quality: object
    bpp: float
    psnr: float
    reconstruction: np.ndarray


def _trial(codec: Codec, rgb: np.ndarray, quality, cache: dict) -> tuple[bytes, float]:
    if quality not in cache:
        data = codec.encode(rgb, quality)
        cache[quality] = (data, metrics.bpp(len(data), rgb.shape[0], rgb.shape[1]))
    return cache[quality]


def match_bpp(codec: Codec, rgb: np.ndarray, target_bpp: float) -> Match:
    """Encode ``rgb`` with ``codec`` at the quality whose bpp is closest to ``target_bpp``."""
    cache: dict = {}
    if codec.quality_bounds is not None and codec.bpp_increases_with_quality:
        low, high = codec.quality_bounds
        below = last_below(lambda q: _trial(codec, rgb, q, cache)[1], target_bpp, low=low, high=high)
        candidates = [q for q in (below, below + 1) if low <= q <= high]
    else:
        candidates = [q for q in codec.default_qualities]
        if not candidates:
            raise TcmError(f"{codec.name} has no qualities to choose from")
    best = min(candidates, key=lambda q: abs(_trial(codec, rgb, q, cache)[1] - target_bpp))
    data, bpp = _trial(codec, rgb, best, cache)
    rec = metrics.as_rgb_uint8(codec.decode(data))
    return Match(codec, best, bpp, metrics.psnr(rgb, rec), rec)


def parse_crop(text: str | None, width: int, height: int, default_size: int = 256) -> tuple[int, int, int, int]:
    """``X,Y,W,H`` (checked against the image), or a centred ``default_size`` square."""
    if not text:
        w, h = min(default_size, width), min(default_size, height)
        return (width - w) // 2, (height - h) // 2, w, h
    try:
        x, y, w, h = (int(v) for v in text.split(","))
    except ValueError:
        raise TcmError(f"--crop must be X,Y,W,H (integers), got {text!r}") from None
    if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > width or y + h > height:
        raise TcmError(f"--crop {text} does not fit in the {width}x{height} image")
    return x, y, w, h


def make_comparison(
    image: str | os.PathLike | np.ndarray,
    target_bpp: float,
    codecs: Sequence[Codec],
    out_path: str | os.PathLike,
    crop: str | tuple | None = None,
    dpi: int = 100,
) -> list[Match]:
    """Write the comparison PNG and return the chosen operating points."""
    if not (target_bpp > 0 and math.isfinite(target_bpp)):
        raise TcmError(f"--bpp must be a positive number, got {target_bpp}")
    rgb = metrics.as_rgb_uint8(image)
    height, width = rgb.shape[:2]
    if isinstance(crop, tuple):
        x, y, w, h = crop
    else:
        x, y, w, h = parse_crop(crop, width, height)
    matches = []
    for codec in codecs:
        reason = codec.unavailable_reason()
        if reason is not None:
            raise TcmError(f"{codec.name} is not available: {reason}")
        matches.append(match_bpp(codec, rgb, target_bpp))

    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    n = 1 + len(matches)
    panel = 3.2
    fig, axes = plt.subplots(1, n, figsize=(panel * n, panel * h / w + 0.9), squeeze=False)
    axes = axes[0]
    panels = [("Original", f"{w}x{h} crop at ({x},{y})", rgb)]
    for m in matches:
        q = m.quality if not isinstance(m.quality, float) else f"{m.quality:g}"
        panels.append((f"{m.codec.label} (q={q})", f"{m.bpp:.3f} bpp, {m.psnr:.2f} dB", m.reconstruction))
    for ax, (t1, t2, img) in zip(axes, panels):
        ax.imshow(img[y : y + h, x : x + w], interpolation="nearest")
        ax.set_title(f"{t1}\n{t2}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"target {target_bpp:g} bpp; bpp and PSNR over the whole {width}x{height} image", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_path, dpi=dpi)
    plt.close(fig)
    return matches
