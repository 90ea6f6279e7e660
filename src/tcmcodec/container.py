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

import struct
import zlib
from dataclasses import dataclass
from typing import Iterable

from .errors import FormatError

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

MAGIC = b"\x89TCM"
"""The first four bytes of every ``.tcm`` file (the 0x89 byte catches 7-bit transfers)."""

FORMAT_VERSION = 2
"""The only format version this module writes and reads."""

NUMERICS: tuple[str, ...] = ("float", "exact")
"""How the entropy parameters were computed, in the order of their one-byte codes:
``"float"`` (the networks in float32: bound to the kind of computer that wrote the file,
which the header names) and ``"exact"`` (:mod:`tcmcodec.exact`: decodes everywhere)."""

MODES: tuple[str, ...] = ("RGB", "L", "RGBA", "LA")
"""Colour modes in the order of their one-byte codes (0, 1, 2, 3)."""

_ALPHA_MODES = frozenset({"RGBA", "LA"})

MAX_DIM = 2**20
"""Largest allowed width or height of the original image."""

MAX_PAD = 2**16
"""Largest allowed padding on any one side."""

MAX_LATENT_DIM = 2**16
"""Largest allowed latent height or width."""

MAX_STRINGS = 16
MAX_LATENT_SHAPES = 16
MAX_MODEL_NAME_BYTES = 64
MAX_PLATFORM_BYTES = 32

_FLAG_ALPHA = 0x01
_KNOWN_FLAGS = _FLAG_ALPHA

_FIXED = struct.Struct("<4sBBBB8sB")  # magic, version, flags, mode, quality, hash, name length
_CRC = struct.Struct("<I")
_CHECK = struct.Struct("<I")
_MAX_VARINT_BYTES = 5
_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class TcmStream:
    """Everything a ``.tcm`` file holds.

    Construction validates the fields (raising :class:`FormatError`, which is
    a ``ValueError``) and normalises sequences to tuples and buffers to
    ``bytes``, so ``parse(pack(s)) == s`` for every valid stream ``s``.
    """

    model_name: str
    """Registry name of the model that coded the image (utf-8, 1..64 bytes)."""
    weights_hash: str
    """16 lowercase hex chars: the first 8 bytes of the sha256 of the weights."""
    quality: int
    """Quality index used (0..255); 0 for single-rate models."""
    width: int
    """Original image width (1..2**20)."""
    height: int
    """Original image height (1..2**20)."""
    mode: str
    """Colour mode decoding gives back: "RGB", "L", "RGBA" or "LA"."""
    pad: tuple[int, int, int, int]
    """Padding added before coding: (left, right, top, bottom), each 0..2**16."""
    latent_shapes: tuple[tuple[int, int], ...]
    """Latent (h, w) shapes the model's decompress needs, 0..16 of them."""
    strings: tuple[bytes, ...]
    """Entropy-coded strings in order, 1..16 of them."""
    alpha: bytes | None = None
    """Losslessly coded alpha plane (present exactly when mode is RGBA or LA)."""
    checks: tuple[int, ...] = ()
    """One CRC-32 of the decoded symbols per string (a decoder compares its own)."""
    numerics: str = "exact"
    """How the entropy parameters were computed: one of :data:`NUMERICS`."""
    platform: str = ""
    """For ``"float"`` numerics, the kind of computer that wrote the file (e.g.
    ``cpu-avx512``); empty for ``"exact"``."""

    def __post_init__(self) -> None:
        try:
            pad = tuple(self.pad)
            shapes = tuple(tuple(s) for s in self.latent_shapes)
            strings = tuple(self.strings)
            checks = tuple(self.checks)
        except TypeError as exc:
            raise FormatError(f"invalid stream field: {exc}") from None
        if not all(isinstance(s, (bytes, bytearray, memoryview)) for s in strings):
            raise FormatError("invalid stream field: strings must be bytes")
        strings = tuple(bytes(s) for s in strings)
        alpha = self.alpha
        if alpha is not None:
            if not isinstance(alpha, (bytes, bytearray, memoryview)):
                raise FormatError("invalid stream field: alpha must be bytes or None")
            alpha = bytes(alpha)
        object.__setattr__(self, "pad", pad)
        object.__setattr__(self, "latent_shapes", shapes)
        object.__setattr__(self, "strings", strings)
        object.__setattr__(self, "alpha", alpha)
        object.__setattr__(self, "checks", checks)
        _validate(self)

    @property
    def padded_size(self) -> tuple[int, int]:
        """(height, width) of the padded image the network coded."""
        left, right, top, bottom = self.pad
        return self.height + top + bottom, self.width + left + right

    @property
    def payload_size(self) -> int:
        """Bytes of entropy-coded strings plus alpha."""
        return sum(len(s) for s in self.strings) + len(self.alpha or b"")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_range(name: str, v: object, lo: int, hi: int) -> None:
    if not _is_int(v) or not lo <= v <= hi:  # type: ignore[operator]
        raise FormatError(f"invalid {name} {v!r}: must be an integer in {lo}..{hi}")


def _validate(s: TcmStream) -> None:
    """Check every field of a stream; raise FormatError naming the first problem."""
    if not isinstance(s.model_name, str):
        raise FormatError("invalid model name: must be a string")
    try:
        name_bytes = s.model_name.encode("utf-8")
    except UnicodeEncodeError:
        raise FormatError("invalid model name: not encodable as utf-8") from None
    if not 1 <= len(name_bytes) <= MAX_MODEL_NAME_BYTES:
        raise FormatError(
            f"invalid model name: {len(name_bytes)} bytes, must be 1..{MAX_MODEL_NAME_BYTES}"
        )
    if not s.model_name.isprintable():
        raise FormatError("invalid model name: contains control characters")
    if not isinstance(s.weights_hash, str) or len(s.weights_hash) != 16 or not set(s.weights_hash) <= _HEX:
        raise FormatError(
            f"invalid weights hash {s.weights_hash!r}: must be 16 lowercase hex characters"
        )
    _check_range("quality", s.quality, 0, 255)
    _check_range("width", s.width, 1, MAX_DIM)
    _check_range("height", s.height, 1, MAX_DIM)
    if s.mode not in MODES:
        raise FormatError(f"invalid colour mode {s.mode!r}: must be one of {', '.join(MODES)}")
    if len(s.pad) != 4:
        raise FormatError(f"invalid padding {s.pad!r}: must be (left, right, top, bottom)")
    for side, v in zip(("left", "right", "top", "bottom"), s.pad):
        _check_range(f"{side} padding", v, 0, MAX_PAD)
    if not 0 <= len(s.latent_shapes) <= MAX_LATENT_SHAPES:
        raise FormatError(
            f"invalid latent shapes: {len(s.latent_shapes)} of them, at most {MAX_LATENT_SHAPES}"
        )
    for shape in s.latent_shapes:
        if len(shape) != 2:
            raise FormatError(f"invalid latent shape {shape!r}: must be (height, width)")
        for v in shape:
            _check_range("latent dimension", v, 1, MAX_LATENT_DIM)
    if not 1 <= len(s.strings) <= MAX_STRINGS:
        raise FormatError(
            f"invalid string count {len(s.strings)}: must be 1..{MAX_STRINGS}"
        )
    has_alpha_mode = s.mode in _ALPHA_MODES
    if has_alpha_mode and s.alpha is None:
        raise FormatError(f"mode {s.mode} needs an alpha plane but the stream has none")
    if not has_alpha_mode and s.alpha is not None:
        raise FormatError(f"mode {s.mode} has no transparency but the stream carries an alpha plane")
    if s.alpha is not None and len(s.alpha) == 0:
        raise FormatError("invalid alpha plane: empty")
    for v in (*(len(x) for x in s.strings), len(s.alpha or b"")):
        if v >= 2**32:
            raise FormatError("invalid stream: a string is 4 GiB or larger")
    if len(s.checks) != len(s.strings):
        raise FormatError(f"invalid symbol checks: {len(s.checks)} for {len(s.strings)} strings")
    for check in s.checks:
        _check_range("symbol check", check, 0, 2**32 - 1)
    if s.numerics not in NUMERICS:
        raise FormatError(f"invalid numerics {s.numerics!r}: must be one of {', '.join(NUMERICS)}")
    if not isinstance(s.platform, str) or not s.platform.isascii() or not s.platform.isprintable():
        raise FormatError("invalid platform: must be printable ASCII")
    if (s.numerics == "float") != bool(s.platform) or len(s.platform) > MAX_PLATFORM_BYTES:
        raise FormatError(f"invalid platform {s.platform!r}: float numerics name the platform "
                          f"(1..{MAX_PLATFORM_BYTES} bytes), exact numerics none")


# --------------------------------------------------------------------------- varints


def _varint(v: int) -> bytes:
    if v < 0 or v >= 2**32:
        raise FormatError(f"value {v} does not fit a .tcm varint")
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


class _Truncated(Exception):
    pass


class _Malformed(Exception):
    pass


class _Reader:
    """Cursor over the header; raises _Truncated when it runs out of bytes."""

    def __init__(self, data: bytes, pos: int, end: int) -> None:
        self.data = data
        self.pos = pos
        self.end = end  # bytes past here belong to the CRC / are absent

    def u8(self) -> int:
        if self.pos >= self.end:
            raise _Truncated
        v = self.data[self.pos]
        self.pos += 1
        return v

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise _Truncated
        v = self.data[self.pos : self.pos + n]
        self.pos += n
        return v

    def varint(self) -> int:
        value = 0
        for i in range(_MAX_VARINT_BYTES):
            b = self.u8()
            value |= (b & 0x7F) << (7 * i)
            if not b & 0x80:
                if i > 0 and b == 0:
                    raise _Malformed("non-canonical varint in header")
                if value >= 2**32:
                    raise _Malformed("varint out of range in header")
                return value
        raise _Malformed("varint longer than 5 bytes in header")


# --------------------------------------------------------------------------- pack


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


# --------------------------------------------------------------------------- parse


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP"


def parse(data: bytes | bytearray | memoryview, *, max_pixels: int | None = None) -> TcmStream:
    """Parse and fully validate the bytes of a ``.tcm`` file.

    Raises :class:`FormatError` (one line, saying what is wrong) for anything
    that :func:`pack` would not have produced: wrong magic, unsupported
    version, truncation, trailing bytes, checksum mismatch, out-of-range
    fields.  With ``max_pixels``, a stream declaring more than that many
    original pixels is rejected too.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"parse() needs bytes, got {type(data).__name__}")
    data = bytes(data)
    n = len(data)
    if n == 0:
        raise FormatError("not a .tcm file: it is empty")
    if data[:4] != MAGIC[: min(n, 4)]:
        raise FormatError("not a .tcm file (bad magic bytes)")
    if n <= 4:
        raise FormatError(f"file is truncated: only {n} bytes")
    version = data[4]
    if version != FORMAT_VERSION:
        if version > FORMAT_VERSION:
            raise FormatError(
                f"the file uses .tcm format version {version}, but this tcmcodec reads "
                f"version {FORMAT_VERSION} only; upgrade tcmcodec to decode it"
            )
        if version == 1:
            raise FormatError(
                "the file uses .tcm format version 1, whose probabilities depend on the CPU that "
                "wrote it; this tcmcodec reads version 2: re-encode the original image, or decode "
                "it with tcmcodec 0.1 on that computer"
            )
        raise FormatError(
            f"unsupported .tcm format version {version}; this tcmcodec reads version {FORMAT_VERSION}"
        )
    # name >= 1 byte, numerics, 6 varints, 2 counts, 1 string length, 1 check
    min_size = _FIXED.size + 1 + 1 + 6 + 1 + 1 + 1 + _CHECK.size + _CRC.size
    if n < min_size:
        raise FormatError(
            f"file is truncated: {n} bytes is shorter than the smallest .tcm file ({min_size} bytes)"
        )

    # Structure: read the header (bounded work: every count is one byte), compute
    # the length the file must have, and compare it before anything else.
    malformed: str | None = None
    fields = None
    try:
        fields = _read_header(data, n - _CRC.size)
    except _Truncated:
        raise FormatError(
            f"file is truncated: its {n} bytes end inside the header"
        ) from None
    except _Malformed as exc:
        malformed = str(exc)
    if fields is not None:
        expected = fields["payload_start"] + sum(fields["lengths"]) + fields["alpha_len"] + _CRC.size
        if n < expected:
            raise FormatError(f"file is truncated: expected {expected} bytes, got {n}")
        if n > expected:
            raise FormatError(
                f"file has {n - expected} unexpected trailing byte(s) (expected {expected} bytes, got {n})"
            )
    (stored_crc,) = _CRC.unpack_from(data, n - _CRC.size)
    if zlib.crc32(memoryview(data)[: n - _CRC.size]) != stored_crc:
        raise FormatError("checksum mismatch: the file is corrupted")
    if malformed is not None or fields is None:
        raise FormatError(f"corrupted .tcm file: {malformed}")

    # Semantics (the checksum matched, so these only catch crafted files).
    flags = fields["flags"]
    if flags & ~_KNOWN_FLAGS:
        raise FormatError(
            f"unsupported flags 0x{flags:02x} in a version {FORMAT_VERSION} file (written by a newer tcmcodec?)"
        )
    mode_code = fields["mode"]
    if mode_code >= len(MODES):
        raise FormatError(f"invalid colour mode code {mode_code} (known: 0..{len(MODES) - 1})")
    try:
        name = fields["name"].decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError("invalid model name: not valid utf-8") from None
    if fields["numerics"] >= len(NUMERICS):
        raise FormatError(f"invalid numerics code {fields['numerics']} (known: 0..{len(NUMERICS) - 1})")
    try:
        platform = fields["platform"].decode("ascii")
    except UnicodeDecodeError:
        raise FormatError("invalid platform: not ASCII") from None
    width, height = fields["width"], fields["height"]
    pos = fields["payload_start"]
    strings = []
    for length in fields["lengths"]:
        strings.append(data[pos : pos + length])
        pos += length
    alpha = data[pos : pos + fields["alpha_len"]] if flags & _FLAG_ALPHA else None
    stream = TcmStream(
        model_name=name,
        weights_hash=fields["hash"].hex(),
        quality=fields["quality"],
        width=width,
        height=height,
        mode=MODES[mode_code],
        pad=fields["pad"],
        latent_shapes=fields["shapes"],
        strings=tuple(strings),
        alpha=alpha,
        checks=fields["checks"],
        numerics=NUMERICS[fields["numerics"]],
        platform=platform,
    )
    if max_pixels is not None and width * height > max_pixels:
        raise FormatError(
            f"the stream declares a {width}x{height} image ({_mp(width * height)}), above the "
            f"limit of {_mp(max_pixels)}; raise it with --max-pixels"
        )
    return stream


def _read_header(data: bytes, end: int) -> dict:
    r = _Reader(data, 0, end)
    _magic, _version, flags, mode, quality, hash8, name_len = _FIXED.unpack(r.take(_FIXED.size))
    name = r.take(name_len)
    if name_len == 0:
        raise _Malformed("empty model name")
    numerics = r.u8()
    platform = r.take(r.u8()) if numerics == NUMERICS.index("float") else b""
    width, height = r.varint(), r.varint()
    pad = tuple(r.varint() for _ in range(4))
    n_shapes = r.u8()
    if n_shapes > MAX_LATENT_SHAPES:
        raise _Malformed(f"{n_shapes} latent shapes, at most {MAX_LATENT_SHAPES}")
    shapes = tuple((r.varint(), r.varint()) for _ in range(n_shapes))
    n_strings = r.u8()
    if not 1 <= n_strings <= MAX_STRINGS:
        raise _Malformed(f"string count {n_strings}, must be 1..{MAX_STRINGS}")
    lengths = [r.varint() for _ in range(n_strings)]
    checks = tuple(_CHECK.unpack(r.take(_CHECK.size))[0] for _ in range(n_strings))
    alpha_len = r.varint() if flags & _FLAG_ALPHA else 0
    return {
        "flags": flags,
        "mode": mode,
        "quality": quality,
        "hash": hash8,
        "name": name,
        "numerics": numerics,
        "platform": platform,
        "checks": checks,
        "width": width,
        "height": height,
        "pad": pad,
        "shapes": shapes,
        "lengths": lengths,
        "alpha_len": alpha_len,
        "payload_start": r.pos,
    }


def iter_fields(stream: TcmStream) -> Iterable[tuple[str, object]]:
    """(name, value) pairs describing a stream, for ``tcm info``-style listings."""
    yield "format version", FORMAT_VERSION
    yield "model", stream.model_name
    yield "weights hash", stream.weights_hash
    yield "numerics", stream.numerics + (f" (bound to {stream.platform})" if stream.platform else " (decodes everywhere)")
    yield "quality", stream.quality
    yield "size", f"{stream.width}x{stream.height}"
    yield "mode", stream.mode
    yield "padding (l, r, t, b)", stream.pad
    yield "latent shapes", stream.latent_shapes
    yield "string lengths", tuple(len(s) for s in stream.strings)
    yield "symbol checks", tuple(f"{c:08x}" for c in stream.checks)
    yield "alpha bytes", len(stream.alpha) if stream.alpha is not None else 0
