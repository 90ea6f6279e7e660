"""Rate control: the quality that meets a file-size, bpp or PSNR target.

A variable-rate model codes at any integer quality 0..100, and its file size and PSNR grow
with the quality. :func:`encode_to_target` searches that range for

- the **largest** quality whose file is at most ``max_bytes`` bytes (or ``max_bpp`` bits per
  pixel of the image), like ``cwebp -size`` but as a budget that is never exceeded when it
  can be met;
- the **smallest** quality whose decoded image reaches ``min_psnr`` dB (measured by decoding
  the file, against the 8-bit image the codec was given; grey images on their one plane).

The analysis transform g_a does not depend on the rate (the gain units come after it), so it
runs once; each trial gains y, runs the hyperprior and the entropy coder
(:meth:`TCM.latents`, :meth:`TCM.compress_analysis`). The search (:func:`last_below`)
interpolates, falling back on bisection, so it takes about 4-7 trials (at most 23).
The file it returns is byte for byte the one ``encode_image`` writes at that quality.

The search assumes the measure grows with quality; only qualities it actually measured are
returned, so the target holds for the result whenever ``met`` is true. When no quality meets
it (a budget below quality 0's file, a PSNR above quality 100's), the nearest end is coded
and ``met`` is false.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch

from tcmcodec import image_io, image_tensors, zoo
from tcmcodec.codec import EncodeResult, ModelLike, decode_stream, resolve_model, pack_result, prepare_input
from tcmcodec.container import parse
from tcmcodec.errors import TcmError
from tcmcodec.image_io import DEFAULT_MAX_PIXELS, LoadedImage

#: bits per byte, for bpp <-> bytes
_BITS = 8

#: size suffixes (case-insensitive) and their bytes: SI units, and binary ones with an "i"
SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2, "mib": 1024**2}


def parse_size(text: str) -> int:
    """Bytes from ``"20000"``, ``"20k"``/``"20kB"`` (x1000), ``"20KiB"`` (x1024), ``"1.5M"``..."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in SIZE_UNITS:
        raise TcmError(f"size {text!r} is not a size: give bytes, optionally with k, kB, KiB, M, MB or MiB "
                       "(e.g. 20000 or 20k)")
    size = int(float(match.group(1)) * SIZE_UNITS[unit])
    if size <= 0:
        raise TcmError(f"size {text!r} must be at least one byte")
    return size


@dataclass(frozen=True)
class Target:
    """What :func:`encode_to_target` aims for: exactly one of a file-size budget (bytes or
    bpp, at most) or a quality floor (PSNR in dB, at least)."""

    max_bytes: int | None = None
    max_bpp: float | None = None
    min_psnr: float | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.max_bytes, self.max_bpp, self.min_psnr) if v is not None]
        if len(given) != 1:
            raise TcmError("give exactly one target: a size in bytes, a bpp or a PSNR")
        if self.max_bytes is not None and not (isinstance(self.max_bytes, int) and self.max_bytes > 0):
            raise TcmError(f"the size target must be a positive number of bytes, got {self.max_bytes}")
        for name, value in (("bpp", self.max_bpp), ("PSNR", self.min_psnr)):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise TcmError(f"the {name} target must be a positive number, got {value}")

    @property
    def is_budget(self) -> bool:
        """True for a size/bpp budget (largest quality under it), False for a PSNR floor."""
        return self.min_psnr is None

    def describe(self) -> str:
        if self.max_bytes is not None:
            return f"at most {self.max_bytes} bytes"
        if self.max_bpp is not None:
            return f"at most {self.max_bpp:g} bpp"
        return f"at least {self.min_psnr:g} dB PSNR"


@dataclass
class TargetedEncode(EncodeResult):
    """:class:`EncodeResult` of the chosen quality, with how the search went."""

    target: Target | None = None
    met: bool = True
    """False when no quality meets the target (the nearest end of the range was coded)."""
    psnr: float | None = None
    """PSNR (dB) of the decoded file, for a PSNR target."""
    trials: int = 0
    """Qualities coded during the search."""

    @property
    def shortfall(self) -> str | None:
        """One line saying the target was missed and which quality was coded instead (None if met)."""
        if self.met or self.target is None:
            return None
        return f"no quality gives {self.target.describe()}; coded at quality {self.quality}, the nearest"


def last_below(measure: Callable[[int], float], target: float, *, strict: bool = False,
               low: int = 0, high: int = zoo.QUALITY_MAX) -> int:
    """The largest q in [low, high] with ``measure(q) <= target`` (``<`` when ``strict``),
    for a ``measure`` that grows with q; ``low - 1`` when even ``measure(low)`` is above.

    Each step interpolates linearly between the bracket's ends, unless the last two steps
    together failed to halve the bracket, when it bisects instead: a smooth measure (file
    size grows nearly linearly with our quality) is found in a few calls, and any monotone one
    in about 2 + 3 log2(high - low) at most (every three steps at least halve the bracket;
    23 for 0..100). ``measure`` is called at most once per q.
    """
    seen: dict[int, float] = {}

    def value(q: int) -> float:
        if q not in seen:
            seen[q] = measure(q)
        return seen[q]

    def below(q: int) -> bool:
        return value(q) < target if strict else value(q) <= target

    if not below(low):
        return low - 1
    if below(high):
        return high
    widths = [high - low] * 2  # the bracket's width before each of the last two steps
    bisect = False
    while high - low > 1:  # invariant: below(low), not below(high)
        if bisect or value(high) <= value(low):
            guess = (low + high) // 2
        else:
            guess = low + round((target - value(low)) / (value(high) - value(low)) * (high - low))
        guess = min(max(guess, low + 1), high - 1)
        if below(guess):
            low = guess
        else:
            high = guess
        bisect = not bisect and high - low > widths[-2] / 2
        widths.append(high - low)
    return low


def encode_to_target(image: Any, target: Target, model: ModelLike = None, *,
                     max_pixels: int | None = DEFAULT_MAX_PIXELS) -> TargetedEncode:
    """Encode ``image`` (path, PIL image or uint8 array) at the quality that meets ``target``
    with a variable-rate ``model`` (default: the bundled one); see the module docstring."""
    net = resolve_model(model)
    if not net.rate_levels:
        raise TcmError(f"model {net.model_name} has a single rate: a size or PSNR target needs a "
                       "variable-rate model (e.g. the bundled one)")
    prepared = prepare_input(image, net, max_pixels=max_pixels)
    width, height = prepared.size
    with torch.inference_mode():
        y_ungained = net.analysis_transform(prepared.x, prepared.tiling)
    results: dict[int, EncodeResult] = {}
    psnrs: dict[int, float] = {}

    def encode_at(quality: int) -> EncodeResult:
        if quality not in results:
            level = zoo.quality_to_level(quality, net.rate_levels)
            with torch.inference_mode():
                y, z = net.latents(y_ungained, level)
                out = net.compress_analysis(y, z, level, keep_y_hat=not target.is_budget)
                if not target.is_budget:
                    # the decoder rebuilds this ŷ exactly, so g_s of it is the decoded image
                    x_hat = net.synthesis(out["y_hat"], level, prepared.tiling)
                    rgb = image_tensors.from_tensor(image_tensors.crop_tensor(x_hat.cpu(), prepared.pad))
                    psnrs[quality] = _psnr(rgb, prepared.loaded)
            results[quality] = pack_result(net, prepared, out, quality)
        return results[quality]

    def psnr_at(quality: int) -> float:
        encode_at(quality)
        return psnrs[quality]

    top = zoo.QUALITY_MAX
    if target.is_budget:
        budget = target.max_bytes if target.max_bytes is not None else target.max_bpp * width * height / _BITS
        chosen = last_below(lambda q: len(encode_at(q).data), budget)
        met = chosen >= 0
        chosen = max(chosen, 0)
    else:
        # the smallest quality reaching the PSNR = one above the largest that stays under it
        chosen = last_below(psnr_at, target.min_psnr, strict=True) + 1
        met = chosen <= top
        chosen = min(chosen, top)
    best = encode_at(chosen)
    psnr = None
    if not target.is_budget:
        # report what the decoder gives: decode the file itself
        image = decode_stream(parse(best.data), net)
        psnr = _psnr(np.asarray(image.convert("RGB")), prepared.loaded)
        met = psnr >= target.min_psnr
    return TargetedEncode(best.data, best.width, best.height, best.mode, best.quality, best.warnings,
                          target=target, met=met, psnr=psnr, trials=len(results))


def _psnr(rgb: np.ndarray, loaded: LoadedImage) -> float:
    """PSNR (dB) of a decoded (H, W, 3) uint8 image against the image given, on its colour
    planes: one for grey images (as decoding gives them back), alpha left out (lossless)."""
    from tcmcodec.metrics import psnr

    if loaded.mode in ("L", "LA"):  # the grey plane, three times: the MSE of the one plane
        rgb = np.repeat(np.asarray(image_io.to_pil(rgb, "L"))[..., None], 3, axis=-1)
    return psnr(loaded.rgb, rgb)
