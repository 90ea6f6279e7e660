"""Packing a :class:`~tcmcodec.container.stream.TcmStream` into the bytes of a ``.tcm`` file."""

from __future__ import annotations

import zlib

from tcmcodec.container.stream import (FORMAT_VERSION, MAGIC, MODES, NUMERICS, TcmStream, _CHECK,
                                       _CRC, _FIXED, _FLAG_ALPHA, _validate)
from tcmcodec.container.varints import _varint


def pack(stream: TcmStream) -> bytes:
    """Serialise ``stream`` to the bytes of a ``.tcm`` file (see docs/format.md)."""
    if not isinstance(stream, TcmStream):
        raise TypeError(f"pack() needs a TcmStream, got {type(stream).__name__}")
    _validate(stream)  # frozen, but be safe against object.__setattr__ tampering
    name = stream.model_name.encode("utf-8")
    flags = _FLAG_ALPHA if stream.alpha is not None else 0
    parts = [
        _FIXED.pack(
            MAGIC,
            FORMAT_VERSION,
            flags,
            MODES.index(stream.mode),
            stream.quality,
            bytes.fromhex(stream.weights_hash),
            len(name),
        ),
        name,
        bytes([NUMERICS.index(stream.numerics)]),
    ]
    if stream.platform:
        parts += [bytes([len(stream.platform)]), stream.platform.encode("ascii")]
    ints = [stream.width, stream.height, *stream.pad]
    parts += [_varint(v) for v in ints]
    parts.append(bytes([len(stream.latent_shapes)]))
    parts += [_varint(v) for shape in stream.latent_shapes for v in shape]
    parts.append(bytes([len(stream.strings)]))
    parts += [_varint(len(s)) for s in stream.strings]
    parts += [_CHECK.pack(check) for check in stream.checks]
    if stream.alpha is not None:
        parts.append(_varint(len(stream.alpha)))
    parts += stream.strings
    if stream.alpha is not None:
        parts.append(stream.alpha)
    body = b"".join(parts)
    return body + _CRC.pack(zlib.crc32(body))


def header_size(stream: TcmStream) -> int:
    """Bytes of container overhead (everything but strings and alpha) for ``stream``."""
    return len(pack(stream)) - stream.payload_size
