"""Bad ``.tcm`` streams through ``tcmcodec.decode``: always a clean error, quickly.

What is expected, decided here:

* Any change to the bytes of a valid file (truncation, bit flip, insertion, ...) is caught
  by the container (structure and CRC-32, checked before anything else) and raises
  :class:`FormatError` -- also when the flipped bit is in the model name or weights hash,
  because the checksum is checked first.
* A *crafted* file whose checksum is right (built with ``container.pack``) but whose header
  names other weights raises :class:`ModelMismatchError`; one with sizes that the model
  cannot have produced raises :class:`FormatError`.
* A crafted file with a valid header but garbage entropy-coded strings decodes to other
  symbols than the header's symbol checks (CRC-32) say, or cannot be decoded at all:
  :class:`FormatError` either way, never an image. Those tests run in a subprocess so that
  a crash of the (Rust, bounds-checked) range decoder would fail the test instead of
  killing pytest.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import textwrap
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tcmcodec
from tcmcodec import container
from tcmcodec.errors import FormatError, ModelMismatchError

from conftest import PYTHON, REPO

#: seconds any rejection may take
FAST = 2.0


@pytest.fixture(scope="module")
def valid(tiny_model) -> bytes:
    """A small valid RGBA stream (so the alpha section is covered too)."""
    rng = np.random.default_rng(5)
    rgba = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    data = tcmcodec.encode(rgba, model=tiny_model)
    assert tcmcodec.decode(data, model=tiny_model).size == (30, 20)
    return data


@pytest.fixture(scope="module")
def valid_vr(tiny_vr_model) -> bytes:
    rng = np.random.default_rng(6)
    return tcmcodec.encode(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8), model=tiny_vr_model, quality=40)


def rejected(data: bytes, model, error=FormatError) -> str:
    """Assert ``decode`` raises ``error`` (and nothing else) within FAST seconds."""
    start = time.perf_counter()
    with pytest.raises(error) as info:
        tcmcodec.decode(data, model=model)
    assert time.perf_counter() - start < FAST
    return str(info.value)


def repacked(data: bytes, **changes) -> bytes:
    """A crafted stream: fields changed, checksum recomputed (one symbol check per string)."""
    if "strings" in changes and "checks" not in changes:
        changes["checks"] = (0,) * len(changes["strings"])
    return container.pack(dataclasses.replace(container.parse(data), **changes))


# --------------------------------------------------------------------------- byte damage


def test_truncation_at_every_position_is_a_format_error(valid, tiny_model):
    start = time.perf_counter()
    for cut in range(len(valid)):
        with pytest.raises(FormatError):
            tcmcodec.decode(valid[:cut], model=tiny_model)
    assert time.perf_counter() - start < FAST * 5


def test_single_bit_flips_are_format_errors(valid, tiny_model):
    # every bit of the header and the first/last bytes, then a spread over the payload
    positions = sorted(set(range(min(60, len(valid)))) | set(range(len(valid) - 8, len(valid)))
                       | set(range(0, len(valid), 7)))
    for pos in positions:
        for bit in range(8):
            damaged = bytearray(valid)
            damaged[pos] ^= 1 << bit
            with pytest.raises(FormatError):
                tcmcodec.decode(bytes(damaged), model=tiny_model)


def test_bit_flip_in_name_or_hash_is_a_format_error_not_a_mismatch(valid, tiny_model):
    stream = container.parse(valid)
    hash_at = valid.index(bytes.fromhex(stream.weights_hash))
    name_at = valid.index(stream.model_name.encode())
    for pos in (hash_at, hash_at + 7, name_at, name_at + len(stream.model_name) - 1):
        damaged = bytearray(valid)
        damaged[pos] ^= 0x10
        assert "checksum" in rejected(bytes(damaged), tiny_model)


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 17, 31, 100, 1000, 100_000])
def test_random_bytes_are_format_errors(tiny_model, length):
    rng = np.random.default_rng(length)
    rejected(rng.integers(0, 256, length, dtype=np.uint8).tobytes(), tiny_model)
    rejected(container.MAGIC + rng.integers(0, 256, length, dtype=np.uint8).tobytes(), tiny_model)
    rejected(container.MAGIC + bytes([container.FORMAT_VERSION]) + rng.integers(0, 256, length, dtype=np.uint8).tobytes(),
             tiny_model)


def test_non_bytes_input_is_a_format_error(tiny_model):
    with pytest.raises(FormatError):
        tcmcodec.decode("not bytes", model=tiny_model)  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutations_of_a_valid_stream_are_format_errors(valid, tiny_model, data):
    """Truncations, bit flips, byte overwrites, insertions and deletions -- alone or combined
    -- never get past the container checks, and never raise anything but FormatError."""
    blob = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        kind = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]), label="kind")
        pos = data.draw(st.integers(0, max(0, len(blob) - 1)), label="pos")
        if kind == "flip" and blob:
            blob[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set" and blob:
            value = data.draw(st.integers(0, 255))
            if blob[pos] == value:
                value ^= 0xFF
            blob[pos] = value
        elif kind == "insert":
            blob[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete" and blob:
            del blob[pos:pos + data.draw(st.integers(1, 16))]
        elif kind == "truncate":
            del blob[pos:]
        else:
            blob += data.draw(st.binary(min_size=1, max_size=16))
    if bytes(blob) == valid:
        return
    start = time.perf_counter()
    with pytest.raises(FormatError):
        tcmcodec.decode(bytes(blob), model=tiny_model)
    assert time.perf_counter() - start < FAST


# --------------------------------------------------------------------------- crafted headers (checksum right)


def test_absurd_declared_size_is_a_format_error(valid, tiny_model):
    huge = container.TcmStream(
        model_name="tcm-tiny", weights_hash=container.parse(valid).weights_hash, quality=0,
        width=2**20, height=2**20, mode="RGB", pad=(0, 0, 0, 0),
        latent_shapes=((2**14, 2**14),), strings=(b"\x00", b"\x00"), checks=(0, 0),
    )
    assert "limit" in rejected(container.pack(huge), tiny_model)


def test_absurd_declared_size_without_model_is_a_format_error(valid):
    huge = dataclasses.replace(container.parse(valid), width=2**20, height=2**20, pad=(0, 0, 0, 0),
                               latent_shapes=((2**14, 2**14),))
    rejected(container.pack(huge), None)


@pytest.mark.parametrize("changes", [
    {"latent_shapes": ((1, 2),)},            # latent smaller than the padded image
    {"latent_shapes": ((4, 4),)},            # larger
    {"latent_shapes": ()},                   # none
    {"latent_shapes": ((2, 2), (2, 2))},     # two
    {"pad": (0, 0, 0, 0)},                   # padded size no longer a multiple of 128
    {"pad": (1, 97, 54, 54)},                # split differently but consistent: decodes
    {"width": 31},                           # width changed, padding not
    {"strings": (b"abc",)},                  # one string
    {"strings": (b"abc", b"def", b"ghi")},   # three strings
])
def test_inconsistent_layout_is_a_format_error(valid, tiny_model, changes):
    data = repacked(valid, **changes)
    stream = container.parse(data)
    left, right, top, bottom = stream.pad
    consistent = (len(stream.latent_shapes) == 1 and len(stream.strings) == 2
                  and (stream.latent_shapes[0][0] * 64, stream.latent_shapes[0][1] * 64) == stream.padded_size)
    if consistent:  # e.g. the padding split differently: a valid (if unusual) stream
        assert tcmcodec.decode(data, model=tiny_model).size == (stream.width, stream.height)
    else:
        assert "stream" in rejected(data, tiny_model)


def test_quality_out_of_range_for_variable_rate_model_is_a_format_error(valid_vr, tiny_vr_model):
    for quality in (101, 200, 255):
        assert "quality" in rejected(repacked(valid_vr, quality=quality), tiny_vr_model)


def test_bad_alpha_plane_is_a_format_error(valid, tiny_model):
    for alpha in (b"\x07", b"\x00", b"\x00\x01\x02", b"\x01" + b"not zlib", b"\x02\x78\x9c\x03\x00",
                  b"\x03\x00\xff"):
        assert "alpha" in rejected(repacked(valid, alpha=alpha), tiny_model)


def test_other_weights_hash_is_a_model_mismatch(valid, tiny_model):
    message = rejected(repacked(valid, weights_hash="0123456789abcdef"), tiny_model, ModelMismatchError)
    assert "0123456789abcdef" in message and "tcm-tiny" in message


def test_unknown_model_name_without_model_is_a_model_mismatch(valid):
    message = rejected(repacked(valid, model_name="tcm-nonexistent"), None, ModelMismatchError)
    assert "tcm-nonexistent" in message


def test_bundled_name_with_other_weights_is_a_model_mismatch(valid):
    if not tcmcodec.zoo.default_entry().available:
        pytest.skip("bundled weights are not installed")
    data = repacked(valid, model_name=tcmcodec.zoo.default_entry().name, weights_hash="0000000000000000")
    message = rejected(data, None, ModelMismatchError)
    assert "0000000000000000" in message


# --------------------------------------------------------------------------- garbage entropy-coded strings

GARBAGE_SCRIPT = textwrap.dedent(
    """
    import dataclasses, json, sys, time
    import numpy as np, torch
    torch.set_num_threads(1)
    sys.path.insert(0, sys.argv[1])
    import tcmcodec
    from tcmcodec import container
    from conftest import make_model

    model = make_model(sys.argv[2])
    width, height = int(sys.argv[3]), int(sys.argv[4])
    rng = np.random.default_rng(0)
    data = tcmcodec.encode(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), model=model)
    stream = container.parse(data)
    cases = json.loads(sys.argv[5])
    for y_spec, z_spec in cases:
        def make(spec, original):
            kind, n = spec
            if kind == "keep":
                return original
            if kind == "random":
                return rng.integers(0, 256, n, dtype=np.uint8).tobytes()
            return bytes([{"zeros": 0, "ff": 255, "7f": 127}[kind]]) * n
        crafted = dataclasses.replace(stream, strings=(make(y_spec, stream.strings[0]), make(z_spec, stream.strings[1])))
        assert crafted.strings != stream.strings
        start = time.perf_counter()
        try:
            image = tcmcodec.decode(container.pack(crafted), model=model)
            outcome = ["image", list(image.size)]
        except tcmcodec.FormatError as exc:
            outcome = ["FormatError", str(exc)]
        except Exception as exc:
            outcome = ["other", type(exc).__name__ + ": " + str(exc)]
        print(json.dumps([y_spec, z_spec, outcome, time.perf_counter() - start]), flush=True)
    """
)


def run_garbage(cases, model="tcm-tiny", width=64, height=64, timeout=120):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [PYTHON, "-c", GARBAGE_SCRIPT, str(REPO / "tests"), model, str(width), str(height), json.dumps(cases)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("[")]
    return proc, results


def check_garbage(proc, results, cases):
    assert proc.returncode == 0, f"decoder process died with status {proc.returncode}: {proc.stderr[-2000:]}"
    assert len(results) == len(cases)
    for y_spec, z_spec, outcome, seconds in results:
        assert outcome[0] == "FormatError", (y_spec, z_spec, outcome)
        assert seconds < FAST, (y_spec, z_spec, seconds)


def test_garbage_entropy_strings_are_a_format_error_never_an_image():
    """Valid container, garbage range-coded strings: no crash, no hang, and a FormatError
    (undecodable, or symbols that fail the header's checks) instead of a wrong image."""
    cases = []
    for kind in ("random", "zeros", "ff", "7f"):
        for n in (0, 1, 3, 4, 8, 100, 5000):
            cases.append([[kind, n], ["keep", 0]])
            cases.append([["keep", 0], [kind, n]])
            cases.append([[kind, n], [kind, n]])
    proc, results = run_garbage(cases)
    check_garbage(proc, results, cases)


def test_long_ff_run_in_entropy_string_is_a_quick_format_error():
    """A long run of 0xff bytes decodes to the largest symbols, escapes included (which
    made CompressAI's rANS decoder read past its buffer until the process died with
    SIGSEGV); the range decoder stays in bounds and the symbol check catches it."""
    cases = [[["ff", 600_000], ["keep", 0]], [["keep", 0], ["ff", 600_000]], [["ff", 600_000], ["ff", 600_000]]]
    proc, results = run_garbage(cases, width=128, height=128)
    check_garbage(proc, results, cases)
