"""The ``.tcm`` file format: packing and parsing of coded images.

This module is pure bytes (no torch, no numpy): it turns a :class:`TcmStream`
(what the codec produced) into a self-describing file and back.  The byte
layout, version policy and validation rules are documented in
``docs/format.md``; in short::

    magic "\\x89TCM" | version u8 | flags u8 | mode u8 | quality u8
    | weights hash (8 raw bytes) | model-name length u8 | model name (utf-8)
    | numerics u8 | [float numerics: platform length u8 | platform (ascii)]
    | varints: width, height, pad left, right, top, bottom
    | u8 latent-shape count k | 2k varints (h, w)
    | u8 string count m | m varints (string lengths) | m symbol checks (u32 LE)
    | [varint alpha length] | the m strings | [alpha bytes]
    | CRC-32 (u32 LE) of everything before it

Every integer wider than a byte is an unsigned LEB128 varint (canonical, at
most 5 bytes, below 2**32) or explicitly little-endian.  :func:`parse` accepts
exactly the byte strings that :func:`pack` produces: anything else raises
:class:`~tcmcodec.errors.FormatError` with a one-line message, quickly and
without allocating more than the input size.
"""

from __future__ import annotations

from tcmcodec.container.pack import header_size, pack
from tcmcodec.container.parse import parse
from tcmcodec.container.stream import (FORMAT_VERSION, MAGIC, MAX_DIM, MAX_LATENT_DIM, MAX_LATENT_SHAPES,
                                       MAX_MODEL_NAME_BYTES, MAX_PAD, MAX_PLATFORM_BYTES, MAX_STRINGS, MODES,
                                       NUMERICS, TcmStream, iter_fields)

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "MODES",
    "MAX_DIM",
    "MAX_PAD",
    "MAX_LATENT_DIM",
    "MAX_STRINGS",
    "MAX_LATENT_SHAPES",
    "MAX_MODEL_NAME_BYTES",
    "MAX_PLATFORM_BYTES",
    "NUMERICS",
    "TcmStream",
    "pack",
    "parse",
    "header_size",
    "iter_fields",
]
