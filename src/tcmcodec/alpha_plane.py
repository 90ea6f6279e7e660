"""Lossless coding of an alpha plane, stored beside the coded colours in a ``.tcm`` file.

(H, W) uint8 in, bytes out: a constant plane in 2 bytes, otherwise the shortest of a few
zlib-compressed representations (raw, left-differences, two-level bit plane). Decoding
never inflates more than the plane's size, so a corrupted file cannot exhaust memory.
"""

from __future__ import annotations

import zlib

import numpy as np

from tcmcodec.errors import FormatError

#
# encode_alpha output: one method byte, then
#   0  constant plane: 1 byte, the value
#   1  zlib(level 9) of the raw plane, row-major
#   2  zlib of the plane with each pixel replaced by its difference (mod 256)
#      from its left neighbour (first column: from the pixel above, (0,0) raw)
#   3  binary plane with values {lo, hi}: 2 bytes lo, hi, then zlib of
#      np.packbits(plane == hi) over rows padded to a multiple of 8 bits
# The encoder tries them all and keeps the shortest.  The plane size is not
# stored: the container holds it.

_ALPHA_CONST, _ALPHA_RAW, _ALPHA_DIFF, _ALPHA_BITS = 0, 1, 2, 3


def _diff(plane: np.ndarray) -> np.ndarray:
    d = plane.copy()
    d[:, 1:] = plane[:, 1:] - plane[:, :-1]
    d[1:, 0] = plane[1:, 0] - plane[:-1, 0]
    return d


def _undiff(d: np.ndarray) -> np.ndarray:
    first = np.cumsum(d[:, 0].astype(np.uint64)).astype(np.uint8)
    d = d.copy()
    d[:, 0] = first
    return np.cumsum(d.astype(np.uint64), axis=1).astype(np.uint8)


def encode_alpha(alpha: np.ndarray) -> bytes:
    """Code an (H, W) uint8 alpha plane losslessly (format in the comment above)."""
    alpha = np.asarray(alpha)
    if alpha.dtype != np.uint8 or alpha.ndim != 2 or alpha.size == 0:
        raise ValueError(f"encode_alpha() needs a non-empty (H, W) uint8 array, got {alpha.dtype} {alpha.shape}")
    alpha = np.ascontiguousarray(alpha)
    lo, hi = int(alpha.min()), int(alpha.max())
    if lo == hi:
        return bytes([_ALPHA_CONST, lo])
    candidates = [
        bytes([_ALPHA_RAW]) + zlib.compress(alpha.tobytes(), 9),
        bytes([_ALPHA_DIFF]) + zlib.compress(_diff(alpha).tobytes(), 9),
    ]
    if np.all((alpha == lo) | (alpha == hi)):
        bits = np.packbits(alpha == hi, axis=1)
        candidates.append(bytes([_ALPHA_BITS, lo, hi]) + zlib.compress(bits.tobytes(), 9))
    return min(candidates, key=len)


def _inflate_exact(data: bytes, size: int) -> bytes:
    """Inflate ``data`` to exactly ``size`` bytes, never producing more."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(data, size)
        if len(out) != size:
            raise FormatError(f"corrupted alpha plane: it decodes to {len(out)} bytes, expected {size}")
        while d.unconsumed_tail:  # only the end of the zlib stream may remain
            if d.decompress(d.unconsumed_tail, 1):
                raise FormatError("corrupted alpha plane: it decodes to more bytes than the image has pixels")
    except zlib.error as exc:
        raise FormatError(f"corrupted alpha plane: {exc}") from None
    if not d.eof:
        raise FormatError("corrupted alpha plane: the compressed data is incomplete")
    if d.unused_data:
        raise FormatError("corrupted alpha plane: trailing bytes after the compressed data")
    return out


def decode_alpha(data: bytes, width: int, height: int) -> np.ndarray:
    """Inverse of :func:`encode_alpha`; raises FormatError unless ``data`` is
    exactly a ``height`` x ``width`` plane.  Never inflates more than the plane size."""
    if width < 1 or height < 1:
        raise FormatError(f"invalid alpha plane size {width}x{height}")
    data = bytes(data)
    if not data:
        raise FormatError("corrupted alpha plane: empty")
    method, body = data[0], data[1:]
    if method == _ALPHA_CONST:
        if len(body) != 1:
            raise FormatError("corrupted alpha plane: bad constant plane")
        return np.full((height, width), body[0], np.uint8)
    if method in (_ALPHA_RAW, _ALPHA_DIFF):
        plane = np.frombuffer(_inflate_exact(body, width * height), np.uint8).reshape(height, width)
        return _undiff(plane) if method == _ALPHA_DIFF else plane.copy()
    if method == _ALPHA_BITS:
        if len(body) < 2:
            raise FormatError("corrupted alpha plane: bad binary plane")
        lo, hi = body[0], body[1]
        row = (width + 7) // 8
        bits = np.frombuffer(_inflate_exact(body[2:], row * height), np.uint8).reshape(height, row)
        mask = np.unpackbits(bits, axis=1, count=width).astype(bool)
        return np.where(mask, np.uint8(hi), np.uint8(lo)).astype(np.uint8)
    raise FormatError(f"corrupted alpha plane: unknown coding method {method}")
