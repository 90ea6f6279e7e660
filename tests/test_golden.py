"""Golden files (tests/data/golden, see tests/golden.py): files written once decode to the
same symbols and, within one level, the same pixels on every computer and every release
that reads their format version."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from PIL import Image

import golden
from tcmcodec import codec, zoo

MANIFEST = json.loads(golden.MANIFEST.read_text())


@pytest.fixture(scope="module")
def tiny():
    return codec.resolve_model(golden.deterministic_model())


def _case(name: str):
    case = MANIFEST[name]
    if case["model"] == "tiny":
        return pytest.param(name, id=name)
    marks = [pytest.mark.slow] if case["image"] == "large" else []
    return pytest.param(name, id=name, marks=marks)


def test_the_deterministic_tiny_model_is_the_one_the_golden_files_were_made_with(tiny):
    assert {c["weights_hash"] for c in MANIFEST.values() if c["model"] == "tiny"} == {tiny.weights_hash}


def test_golden_files_were_made_with_the_installed_bundled_weights():
    installed = codec.load_model(zoo.default_entry().name).weights_hash
    recorded = {c["weights_hash"] for c in MANIFEST.values() if c["model"] == "bundled"}
    assert recorded == {installed}, ("the bundled weights changed: rebuild the bundled-model golden files "
                                     "with `python tests/golden.py --write`")


@pytest.mark.parametrize("name", [_case(name) for name in MANIFEST])
def test_golden_file_decodes_to_its_symbols_and_pixels(name, tiny):
    case = MANIFEST[name]
    data = (golden.GOLDEN / f"{name}.tcm").read_bytes()
    assert hashlib.sha256(data).hexdigest() == case["sha256"]  # the file itself is untouched
    model = tiny if case["model"] == "tiny" else None
    result = codec.decode_stream_details(codec.read_stream(data, max_pixels=None), model)
    assert result.symbol_digests == (case["y_symbols_sha256"], case["z_symbols_sha256"])
    decoded = golden.expected_pixels(result.image, case["block_means"] is not None).astype(np.int16)
    expected = np.asarray(Image.open(golden.GOLDEN / case["expected"])).astype(np.int16)
    assert decoded.shape == expected.shape
    assert int(np.abs(decoded - expected).max()) <= golden.TOLERANCE
