"""Tests of the .tcm container (src/tcmcodec/container.py, docs/format.md)."""

from __future__ import annotations

import dataclasses
import struct
import subprocess
import sys
import time
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcmcodec import container
from tcmcodec.container import FORMAT_VERSION, MAGIC, TcmStream, pack, parse
from tcmcodec.errors import FormatError

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def typical(**overrides) -> TcmStream:
    fields = dict(
        model_name="tcm-s",
        weights_hash="0123456789abcdef",
        quality=3,
        width=768,
        height=512,
        mode="RGB",
        pad=(32, 32, 0, 0),
        latent_shapes=((12, 16),),
        strings=(bytes(range(256)) * 4, b"zstring" * 10),
        alpha=None,
    )
    fields.update(overrides)
    if "checks" not in overrides:
        strings = fields["strings"]
        fields["checks"] = tuple(0x1000 + i for i in range(len(strings))) if isinstance(strings, (tuple, list)) else ()
    return TcmStream(**fields)


# ---------------------------------------------------------------- an independent writer of the documented layout


def varint(v: int) -> bytes:
    out = bytearray()
    while True:
        out.append((v & 0x7F) | (0x80 if v >> 7 else 0))
        v >>= 7
        if not v:
            return bytes(out)


def raw_stream(
    *,
    magic=MAGIC,
    version=FORMAT_VERSION,
    flags=0,
    mode=0,
    quality=0,
    hash8=b"\x01" * 8,
    name=b"tcm-s",
    ints=(16, 16, 0, 0, 0, 0),
    shapes=((1, 1),),
    strings=(b"abc",),
    alpha=None,
    lengths=None,
    n_strings=None,
    numerics=1,
    platform=b"",
    checks=None,
    fix_crc=True,
) -> bytes:
    """Bytes laid out exactly as docs/format.md says, with any field forced."""
    body = magic + bytes([version, flags, mode, quality]) + hash8 + bytes([len(name)]) + name
    body += bytes([numerics]) + (bytes([len(platform)]) + platform if numerics == 0 else b"")
    body += b"".join(varint(v) if isinstance(v, int) else v for v in ints)
    body += bytes([len(shapes)]) + b"".join(varint(h) + varint(w) for h, w in shapes)
    body += bytes([len(strings) if n_strings is None else n_strings])
    body += b"".join(varint(n) for n in (lengths or [len(s) for s in strings]))
    body += b"".join(struct.pack("<I", c) for c in (checks if checks is not None else range(len(strings))))
    if alpha is not None:
        body += varint(len(alpha))
    body += b"".join(strings) + (alpha or b"")
    crc = zlib.crc32(body) if fix_crc else 0
    return body + struct.pack("<I", crc)


# ---------------------------------------------------------------- round trip and layout


def test_pack_then_parse_returns_the_same_stream():
    for s in [
        typical(),
        typical(mode="L", quality=0, latent_shapes=()),
        typical(mode="RGBA", alpha=b"\x00\x80"),
        typical(mode="LA", alpha=b"\x01" * 1000, strings=tuple(bytes([i]) * i for i in range(16))),
        typical(width=1, height=1, pad=(31, 32, 31, 32), strings=(b"",)),
        typical(width=2**20, height=2**20, pad=(2**16,) * 4, latent_shapes=((2**16, 2**16),) * 16, quality=255),
        typical(model_name="é-model-" + "x" * 54),  # 64 utf-8 bytes
    ]:
        data = pack(s)
        assert parse(data) == s
        assert pack(parse(data)) == data


def test_pack_writes_the_documented_byte_layout():
    s = typical(mode="LA", alpha=b"AAA", quality=7, weights_hash="a1b2c3d4e5f60718", checks=(7, 2**32 - 1))
    expected = raw_stream(
        flags=1, mode=3, quality=7, hash8=bytes.fromhex("a1b2c3d4e5f60718"), name=b"tcm-s",
        ints=(768, 512, 32, 32, 0, 0), shapes=((12, 16),), strings=s.strings, alpha=b"AAA", checks=(7, 2**32 - 1),
    )
    data = pack(s)
    assert data == expected
    assert data[:4] == b"\x89TCM" and data[4] == 2 and data[5] == 1 and data[6] == 3 and data[7] == 7
    assert data[8:16] == bytes.fromhex("a1b2c3d4e5f60718") and data[16] == 5 and data[17:22] == b"tcm-s"
    assert data[22] == 1  # exact numerics
    assert struct.unpack("<I", data[-4:])[0] == zlib.crc32(data[:-4])


def test_float_numerics_name_the_platform_in_the_header():
    s = typical(numerics="float", platform="cpu-avx2/torch-2.14.1")
    data = pack(s)
    assert data[22] == 0 and data[23] == len(s.platform) and data[24 : 24 + data[23]] == b"cpu-avx2/torch-2.14.1"
    assert data == raw_stream(hash8=bytes.fromhex(s.weights_hash), ints=(768, 512, 32, 32, 0, 0), shapes=((12, 16),),
                              quality=3, strings=s.strings, checks=s.checks, numerics=0, platform=b"cpu-avx2/torch-2.14.1")
    assert parse(data) == s


def test_typical_header_overhead_is_small():
    s = typical()  # 768x512, one latent shape, two strings of 1024 and 70 bytes
    overhead = len(pack(s)) - s.payload_size
    # 17 fixed + 5 name + 1 numerics + 8 size/pad + 3 shape + 4 strings + 8 checks + 4 CRC
    assert overhead == container.header_size(s) == 50


def test_parse_accepts_bytearray_and_memoryview():
    data = pack(typical())
    assert parse(bytearray(data)) == parse(memoryview(data)) == typical()


def test_container_does_not_import_torch():
    code = "import sys, tcmcodec.container; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@FUZZ
@given(
    st.builds(
        TcmStream,
        model_name=st.text(
            st.characters(codec="utf-8", categories=("L", "N", "P", "S"), include_characters=" "), min_size=1, max_size=16
        ),
        weights_hash=st.binary(min_size=8, max_size=8).map(bytes.hex),
        quality=st.integers(0, 255),
        width=st.integers(1, 2**20),
        height=st.integers(1, 2**20),
        mode=st.sampled_from(["RGB", "L"]),
        pad=st.tuples(*[st.integers(0, 2**16)] * 4),
        latent_shapes=st.lists(st.tuples(st.integers(1, 2**16), st.integers(1, 2**16)), max_size=16).map(tuple),
        strings=st.just((b"",)),
        checks=st.just((0,)),
    ),
    st.lists(st.tuples(st.binary(max_size=300), st.integers(0, 2**32 - 1)), min_size=1, max_size=16),
    st.one_of(st.just(""), st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=32)),
)
def test_any_valid_stream_round_trips(base, strings, platform):
    s = dataclasses.replace(base, strings=tuple(v for v, _ in strings), checks=tuple(c for _, c in strings),
                            numerics="float" if platform else "exact", platform=platform)
    assert parse(pack(s)) == s


# ---------------------------------------------------------------- corruption


def test_parse_rejects_every_truncation():
    data = pack(typical(mode="RGBA", alpha=b"\x00\x07"))
    for n in range(len(data)):
        with pytest.raises(FormatError, match="truncated|empty|checksum"):
            parse(data[:n])
    with pytest.raises(FormatError, match=f"expected {len(data)} bytes, got {len(data) - 1}"):
        parse(data[:-1])


def test_parse_rejects_trailing_bytes():
    data = pack(typical())
    with pytest.raises(FormatError, match="trailing"):
        parse(data + b"\x00")


def test_parse_detects_every_single_bit_flip():
    data = pack(typical(strings=(b"y" * 40, b"z" * 8), mode="LA", alpha=b"\x00\x09"))
    for i in range(len(data)):
        for bit in range(8):
            bad = bytearray(data)
            bad[i] ^= 1 << bit
            with pytest.raises(FormatError):
                parse(bytes(bad))


def test_checksum_mismatch_message():
    data = bytearray(pack(typical()))
    data[100] ^= 0xFF  # inside the first string
    with pytest.raises(FormatError, match="^checksum mismatch: the file is corrupted$"):
        parse(bytes(data))


def test_parse_rejects_bad_magic():
    with pytest.raises(FormatError, match=r"not a \.tcm file \(bad magic bytes\)"):
        parse(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(FormatError, match="bad magic"):
        parse(b"x")


def test_version_1_files_are_refused_with_what_to_do():
    data = bytearray(pack(typical()))
    data[4] = 1
    with pytest.raises(FormatError, match=r"version 1, whose probabilities depend on the CPU.*re-encode") as info:
        parse(bytes(data))
    assert "\n" not in str(info.value)


def test_parse_rejects_newer_version_naming_the_supported_one():
    data = bytearray(pack(typical()))
    data[4] = FORMAT_VERSION + 1
    with pytest.raises(FormatError, match=r"version 3.*reads version 2 only.*upgrade tcmcodec"):
        parse(bytes(data))
    data[4] = 0
    with pytest.raises(FormatError, match="unsupported .tcm format version 0"):
        parse(bytes(data))


@FUZZ
@given(st.binary(max_size=400))
def test_parse_raises_only_format_error_on_random_bytes(data):
    with pytest.raises(FormatError):
        parse(data)


@FUZZ
@given(st.binary(max_size=400))
def test_parse_raises_only_format_error_on_random_bytes_after_a_valid_prefix(tail):
    with pytest.raises(FormatError):
        parse(MAGIC + bytes([FORMAT_VERSION]) + tail)


VALID = pack(typical(strings=(b"y" * 30, b"z" * 5), mode="RGBA", alpha=b"\x00\x09"))


@FUZZ
@given(st.data())
def test_parse_rejects_random_corruptions_and_truncations(data):
    blob = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 8))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= data.draw(st.integers(1, 255))
    blob = blob[: data.draw(st.integers(0, len(blob)))]
    with pytest.raises(FormatError):
        parse(bytes(blob))


@FUZZ
@given(st.data())
def test_parse_is_canonical_even_when_corruption_keeps_a_valid_checksum(data):
    """Mutate the header and fix up the CRC: parse either rejects it with
    FormatError or accepts exactly what pack() would have written."""
    body = bytearray(VALID[:-4])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(5, 40))  # the header region
        body[i] = data.draw(st.integers(0, 255))
    blob = bytes(body) + struct.pack("<I", zlib.crc32(body))
    try:
        s = parse(blob)
    except FormatError:
        return
    assert pack(s) == blob


def test_parse_is_fast_on_large_random_input():
    blob = MAGIC + bytes([1]) + bytes(range(256)) * 40000  # ~10 MB
    start = time.perf_counter()
    with pytest.raises(FormatError):
        parse(blob)
    assert time.perf_counter() - start < 1.0


# ---------------------------------------------------------------- crafted headers with a valid checksum


def test_absurd_width_with_valid_checksum_is_rejected():
    blob = raw_stream(ints=(2**30, 16, 0, 0, 0, 0))
    with pytest.raises(FormatError, match=r"invalid width 1073741824: must be an integer in 1\.\.1048576"):
        parse(blob)


def test_absurd_string_length_claim_is_rejected_without_allocating():
    blob = raw_stream(strings=(b"abc",), lengths=[2**32 - 1])
    start = time.perf_counter()
    with pytest.raises(FormatError, match=r"truncated: expected 429496\d+ bytes"):
        parse(blob)
    assert time.perf_counter() - start < 0.1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(ints=(0, 16, 0, 0, 0, 0)), "invalid width 0"),
        (dict(ints=(16, 2**20 + 1, 0, 0, 0, 0)), "invalid height"),
        (dict(ints=(16, 16, 2**16 + 1, 0, 0, 0)), "invalid left padding"),
        (dict(shapes=((0, 4),)), "invalid latent dimension 0"),
        (dict(shapes=((4, 2**16 + 1),)), "invalid latent dimension"),
        (dict(shapes=((1, 1),) * 17), "17 latent shapes"),
        (dict(strings=(), n_strings=0), "string count 0"),
        (dict(strings=(b"a",) * 17), "string count 17"),
        (dict(mode=4), "invalid colour mode code 4"),
        (dict(flags=0x80), "unsupported flags 0x80"),
        (dict(mode=2), "mode RGBA needs an alpha plane"),
        (dict(mode=0, flags=1, alpha=b"\x00\x01"), "mode RGB has no transparency"),
        (dict(mode=2, flags=1, alpha=b""), "alpha plane: empty"),
        (dict(name=b""), "empty model name"),
        (dict(name=b"\xff\xfe"), "not valid utf-8"),
        (dict(name=b"x" * 65), "65 bytes"),
        (dict(name=b"a\nb"), "control characters"),
        (dict(ints=(b"\x90\x00", 16, 0, 0, 0, 0)), "non-canonical varint"),
        (dict(ints=(b"\x80\x80\x80\x80\x80\x01", 16, 0, 0, 0, 0)), "varint longer than 5 bytes"),
        (dict(ints=(b"\xff\xff\xff\xff\x1f", 16, 0, 0, 0, 0)), "varint out of range"),
        (dict(numerics=2), "invalid numerics code 2"),
        (dict(numerics=0, platform=b""), "float numerics name the platform"),
        (dict(numerics=0, platform=b"cpu\x01"), "printable ASCII"),
        (dict(numerics=0, platform=b"cpu\xff"), "not ASCII"),
    ],
)
def test_each_invalid_field_is_rejected_with_a_message_naming_it(kwargs, message):
    with pytest.raises(FormatError, match=message):
        parse(raw_stream(**kwargs))


def test_max_pixels_limit_rejects_large_declared_images():
    data = pack(typical(width=40000, height=30000))
    assert parse(data, max_pixels=None).width == 40000
    with pytest.raises(FormatError, match=r"40000x30000 image \(1200\.0 MP\), above the limit of 268\.4 MP"):
        parse(data, max_pixels=2**28)
    assert parse(data, max_pixels=1_200_000_000).height == 30000


def test_errors_are_one_line():
    for blob in [b"", b"junk", pack(typical())[:50], raw_stream(ints=(2**30, 1, 0, 0, 0, 0)), raw_stream(mode=9)]:
        with pytest.raises(FormatError) as info:
            parse(blob)
        assert "\n" not in str(info.value) and str(info.value)


# ---------------------------------------------------------------- constructing streams


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(weights_hash="0123456789ABCDEF"), "16 lowercase hex"),
        (dict(weights_hash="0123"), "16 lowercase hex"),
        (dict(model_name=""), "model name"),
        (dict(model_name="m" * 65), "model name"),
        (dict(mode="CMYK"), "colour mode"),
        (dict(pad=(1, 2, 3)), "padding"),
        (dict(pad=(-1, 0, 0, 0)), "left padding"),
        (dict(quality=256), "quality"),
        (dict(quality=True), "quality"),
        (dict(width=1.5), "width"),
        (dict(strings=()), "string count"),
        (dict(strings=("text",)), "bytes"),
        (dict(latent_shapes=((1, 2, 3),)), "latent shape"),
        (dict(mode="RGBA"), "needs an alpha plane"),
        (dict(alpha=b"\x00"), "no transparency"),
        (dict(checks=(1,)), "1 for 2 strings"),
        (dict(checks=(1, 2**32)), "symbol check"),
        (dict(numerics="fast"), "numerics"),
        (dict(numerics="float"), "platform"),
        (dict(platform="cpu-avx2"), "platform"),
        (dict(numerics="float", platform="x" * 33), "platform"),
    ],
)
def test_invalid_streams_cannot_be_constructed(overrides, message):
    with pytest.raises(FormatError, match=message):
        typical(**overrides)


def test_stream_fields_are_normalised_to_tuples_and_bytes():
    s = typical(pad=[1, 2, 3, 4], latent_shapes=[[5, 6]], strings=[bytearray(b"ab")])
    assert s.pad == (1, 2, 3, 4) and s.latent_shapes == ((5, 6),) and s.strings == (b"ab",)
    assert s.padded_size == (512 + 7, 768 + 3)
    hash(s)
