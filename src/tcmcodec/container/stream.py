"""What a ``.tcm`` file holds (:class:`TcmStream`), the format's constants and limits,
and the checks every stream passes before it is packed or after it is parsed."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterable

from tcmcodec.errors import FormatError

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
