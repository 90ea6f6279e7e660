"""Parsing the bytes of a ``.tcm`` file, bounds-checked: anything :func:`pack` would not
have written raises :class:`~tcmcodec.errors.FormatError`."""

from __future__ import annotations

import zlib

from tcmcodec.errors import FormatError
from tcmcodec.container.stream import (FORMAT_VERSION, MAGIC, MAX_LATENT_SHAPES, MAX_STRINGS,
                                       MODES, NUMERICS, TcmStream, _CHECK, _CRC, _FIXED,
                                       _FLAG_ALPHA, _KNOWN_FLAGS)
from tcmcodec.container.varints import _Malformed, _Reader, _Truncated


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
            f"limit of {_mp(max_pixels)}", python_hint="pass a larger max_pixels (None: no limit)",
            cli_hint="raise it with --max-pixels")
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
