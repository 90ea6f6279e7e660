"""Codecs as data: a registry of small classes with one interface.

Every codec has

- ``name`` (registry key, e.g. ``"jpeg"``) and ``label`` (display name, e.g. ``"JPEG"``);
- ``available()`` and ``unavailable_reason()`` (``None`` when available, else one line saying
  what is missing, e.g. ``"pillow-heif is not installed"``);
- ``encode(rgb, quality) -> bytes`` with ``rgb`` an ``H x W x 3`` ``uint8`` array; the bytes are
  the complete file, headers included, so ``bpp = 8 * len(bytes) / (H * W)``;
- ``decode(bytes) -> array`` (``H x W x 3`` ``uint8``);
- ``default_qualities``: the sweep used when ``--qualities`` does not name the codec, chosen to
  span about 0.1 to 1.5 bpp on Kodak (see docs/evaluation.md for the measured ranges);
- ``settings``: a dict stored with the results (library and version, chroma subsampling,
  speed/effort preset, what ``quality`` means for this codec).

Encoders run single-threaded where the library allows it, so encode times are comparable.

The meaning of ``quality`` per codec:

=========  ==================================================================================
jpeg       Pillow/libjpeg-turbo quality 1-95, 4:2:0, optimised Huffman tables, baseline
webp       libwebp quality 0-100, ``method=6`` (slowest/best), 4:2:0 (lossy WebP is always 4:2:0)
avif       libavif quality 0-100 (Pillow), aom encoder, ``speed=6``, 4:2:0, 8-bit, full range
jxl        libjxl quality 0-100 (maps to butteraugli distance), ``effort=7``, XYB (no subsampling)
heic       libheif/x265 quality 0-100, 4:2:0, x265 ``preset=slow``, ``tune=ssim`` (libheif defaults)
jpeg2000   OpenJPEG, *target bits per pixel* (``quality_layers=[24 / bpp]``), 9/7 irreversible
           wavelet with the ICT colour transform, raw J2K codestream (no JP2 box)
tcm:NAME   our model; ``quality`` is the model's quality index (``tcmcodec.zoo``);
           ``tcm:NAME+refine=10``: with 10 steps of encoder-side latent refinement
=========  ==================================================================================
"""

from __future__ import annotations

import math
from typing import Sequence

from tcmcodec.errors import TcmError
from tcmcodec.evaluate.classical import (AvifCodec, HeicCodec, Jpeg2000Codec, JpegCodec, JxlCodec,
                                         WebpCodec)
from tcmcodec.evaluate.codec_base import Codec, Quality
from tcmcodec.evaluate.tcm_codec import REFINE_LAMBDA_SUFFIX, REFINE_SUFFIX, TcmCodec

__all__ = [
    "ALIASES", "AvifCodec", "Codec", "DEFAULT_CODECS", "HeicCodec", "Jpeg2000Codec", "JpegCodec", "JxlCodec",
    "Quality", "REGISTRY", "TcmCodec", "WebpCodec", "get_codec", "parse_codec_list", "parse_qualities",
]

#: the classical codecs, by registry key
REGISTRY: dict[str, type[Codec]] = {
    c.name: c for c in (JpegCodec, WebpCodec, AvifCodec, JxlCodec, HeicCodec, Jpeg2000Codec)
}

#: other spellings accepted on the command line
ALIASES: dict[str, str] = {
    "jpg": "jpeg",
    "jpegxl": "jxl",
    "jpeg-xl": "jxl",
    "heif": "heic",
    "j2k": "jpeg2000",
    "jp2": "jpeg2000",
    "jpeg-2000": "jpeg2000",
}

#: the default ``--codecs`` list of ``tcm eval``
DEFAULT_CODECS = ("jpeg", "webp", "avif", "jxl", "heic", "jpeg2000")


def _refinement_suffixes(spec: str, rest: str) -> tuple[str, int, float | None]:
    """Split ``+refine=STEPS`` and ``+refine-lambda=L`` (either order, each at most once)
    off the end of a ``tcm:`` spec; returns (the rest, steps, lambda or None)."""
    options: dict[str, str] = {}  # suffix -> its value
    while True:
        head, sep, tail = rest.rpartition("+")
        key, eq, value = tail.partition("=")
        suffix = f"+{key}="
        if not sep or not eq or suffix not in (REFINE_SUFFIX, REFINE_LAMBDA_SUFFIX) or suffix in options:
            break
        options[suffix], rest = value, head
    try:
        refine = int(options.get(REFINE_SUFFIX, 0))
        refine_lambda = float(options[REFINE_LAMBDA_SUFFIX]) if REFINE_LAMBDA_SUFFIX in options else None
    except ValueError:
        raise TcmError(f"bad refinement in {spec!r}: use {REFINE_SUFFIX}STEPS and optionally "
                       f"{REFINE_LAMBDA_SUFFIX}L, e.g. tcm:MODEL{REFINE_SUFFIX}25"
                       f"{REFINE_LAMBDA_SUFFIX}0.013") from None
    return rest, refine, refine_lambda


def get_codec(spec: str) -> Codec:
    """A codec from a command-line spec: ``jpeg``, ``webp``, ..., ``tcm:NAME``, ``tcm:checkpoint=PATH``."""
    spec = spec.strip()
    key = spec.lower()
    if key == "tcm" or key.startswith("tcm:"):
        rest = spec[4:] if len(spec) > 3 else ""
        if not rest:
            raise TcmError("tcm needs a model: use tcm:MODEL or tcm:checkpoint=PATH")
        rest, refine, refine_lambda = _refinement_suffixes(spec, rest)
        if rest.startswith("checkpoint="):
            return TcmCodec(checkpoint=rest[len("checkpoint=") :], refine=refine, refine_lambda=refine_lambda)
        return TcmCodec(model=rest, refine=refine, refine_lambda=refine_lambda)
    key = ALIASES.get(key, key)
    if key not in REGISTRY:
        known = ", ".join(sorted(REGISTRY)) + ", tcm:MODEL, tcm:checkpoint=PATH (+refine=STEPS, +refine-lambda=L)"
        raise TcmError(f"unknown codec {spec!r} (known: {known})")
    return REGISTRY[key]()


def parse_codec_list(text: str) -> list[str]:
    """Split ``--codecs`` on commas, keeping ``tcm:checkpoint=PATH`` intact."""
    items = [s.strip() for s in text.split(",")]
    return [s for s in items if s]


def _parse_quality(text: str) -> Quality:
    text = text.strip()
    if text.lower() in ("none", "-"):
        return None
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise TcmError(f"bad quality value {text!r}") from None
        if not math.isfinite(value):
            raise TcmError(f"bad quality value {text!r}")
        return value


def parse_qualities(text: str | None, codec_names: Sequence[str]) -> dict[str, list[Quality]]:
    """Parse ``--qualities``.

    Syntax: ``CODEC=Q1,Q2,...`` items separated by ``;``, e.g. ``jpeg=10,30,50;webp=20,60``.
    ``CODEC`` is a registry key or alias (``tcm`` matches every ``tcm:...`` codec, a full
    ``tcm:NAME`` only that one). The value list is split at the *last* ``=`` so
    ``tcm:checkpoint=PATH=1,2`` works. A bare list without ``CODEC=`` is allowed when exactly
    one codec is evaluated. Codecs not named keep their default sweep.
    """
    out: dict[str, list[Quality]] = {}
    if not text:
        return out
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        if "=" in item:
            key, values = item.rsplit("=", 1)
            key = key.strip()
        else:
            if len(codec_names) != 1:
                raise TcmError("--qualities without CODEC= needs exactly one codec; use e.g. jpeg=10,30,50;webp=20,60")
            key, values = codec_names[0], item
        qs = [_parse_quality(v) for v in values.split(",") if v.strip()]
        if not qs:
            raise TcmError(f"--qualities: no values for {key!r}")
        lowered = key.lower()
        matched = [
            n
            for n in codec_names
            if n == key
            or ALIASES.get(lowered, lowered) == n
            or (lowered == "tcm" and n.startswith("tcm:"))
        ]
        if not matched:
            raise TcmError(f"--qualities names {key!r}, which is not in --codecs ({', '.join(codec_names)})")
        for n in matched:
            out[n] = qs
    return out
