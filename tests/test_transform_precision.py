"""The transforms' precision: bfloat16 for g_a where the hardware has it, for g_s on request.

g_a runs only when encoding, so its precision may change which latents are coded but never
whether or how a file decodes. ``TCM.analysis_dtype`` sets it outside training;
``load_model`` picks bfloat16 where the CPU or GPU computes it natively, for models coded
with the exact numerics; ``tcm encode --analysis-precision`` overrides the choice. g_s stays
float32 unless a decode asks for bfloat16 (``synthesis_dtype``, ``tcm decode
--synthesis-precision``): the symbols are the same, the pixels close.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tcmcodec import codec, container, runtime
from tcmcodec.codec import decode_stream_details, read_stream
from tcmcodec.tiling import TilePlan

from conftest import make_model, run_cli


def _image(height: int, width: int, seed: int = 3) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    smooth = 128 + 60 * np.sin(xx / 9.0)[..., None] * np.cos(yy / 7.0)[..., None]
    noise = np.random.default_rng(seed).normal(0, 6, (height, width, 3))
    return np.clip(smooth + noise, 0, 255).astype(np.uint8)


def test_the_analysis_precision_applies_to_g_a_outside_training_only():
    model = make_model("tcm-tiny-vr", seed=5)
    model.channels_last_transforms = False  # training's layout: float32 compares bit for bit
    x = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y_float = model.analysis_transform(x)
        model.analysis_dtype = torch.bfloat16
        y_reduced = model.analysis_transform(x)
        tiles = TilePlan(tile=128, halo=128, threshold=0)
        y_tiled = model.analysis_transform(x, tiles)  # tile by tile in the same precision
        model.train()
        y_training = model.analysis_transform(x)
    assert y_reduced.dtype == y_tiled.dtype == torch.float32
    assert 0 < float((y_reduced - y_float).abs().max()) < 0.02 * float(y_float.abs().max())
    assert float((y_tiled - y_reduced).abs().max()) < 0.02 * float(y_float.abs().max())
    assert torch.equal(y_training, y_float)  # training has its own switch (transform_dtype)


def test_a_file_encoded_with_a_bfloat16_analysis_decodes_on_the_float32_decoder():
    model = make_model("tcm-tiny-vr", seed=6)
    rgb = _image(64, 96)
    plain = codec.encode_image(rgb, model, quality=80)
    model.analysis_dtype = torch.bfloat16
    reduced = codec.encode_image(rgb, model, quality=80)
    model.analysis_dtype = None
    assert container.parse(reduced.data).numerics == "exact"
    # the decoder checks the symbols it read against the encoder's (a mismatch raises)
    images = [np.asarray(codec.decode(result.data, model), dtype=np.float64) for result in (plain, reduced)]
    errors = [float(np.mean((image - rgb) ** 2)) for image in images]
    assert abs(errors[1] - errors[0]) < 0.05 * errors[0]
    assert abs(len(reduced.data) - len(plain.data)) < 0.05 * len(plain.data)


@pytest.mark.parametrize("flags, exact, expected", [
    ({"avx512f", "avx512_bf16"}, True, torch.bfloat16),
    ({"avx512f", "amx_bf16"}, True, torch.bfloat16),
    ({"avx2", "avx512f"}, True, None),  # bfloat16 would be emulated: slower than float32
    ({"avx512f", "avx512_bf16"}, False, None),  # float numerics: the authors' outputs
])
def test_load_model_gives_g_a_bfloat16_only_where_native_and_exact(monkeypatch, flags, exact, expected):
    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: frozenset(flags))
    model = make_model("tcm-tiny", seed=1)
    model.exact_entropy = exact
    assert codec.default_analysis_dtype(model, "cpu") is expected


@pytest.mark.parametrize("max_isa, allowed", [
    ("", True), ("ALL", True), ("avx512_core_bf16", True), ("AVX512_CORE_AMX", True),
    ("AVX2", False), ("SSE41", False), ("AVX512_CORE", False), ("AVX512_CORE_VNNI", False),
])
def test_a_onednn_isa_limit_below_bfloat16_rules_native_bfloat16_out(monkeypatch, max_isa, allowed):
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", max_isa)
    assert runtime.native_bfloat16("cpu") is allowed


@pytest.mark.parametrize("choice", ["float32", "bfloat16"])
def test_encode_analysis_precision_option_codes_decodable_files_and_leaves_the_model_as_loaded(
        tmp_path, tiny_vr_checkpoint, choice):
    from PIL import Image

    source = tmp_path / "in.png"
    Image.fromarray(_image(48, 80)).save(source)
    loaded = codec.load_model(tiny_vr_checkpoint)
    before = loaded.analysis_dtype
    assert run_cli("encode", source, tmp_path / "out.tcm", "--checkpoint", tiny_vr_checkpoint,
                   "--analysis-precision", choice) == 0
    assert loaded.analysis_dtype is before
    assert run_cli("decode", tmp_path / "out.tcm", tmp_path / "out.png", "--checkpoint", tiny_vr_checkpoint) == 0
    assert Image.open(tmp_path / "out.png").size == (80, 48)


def test_a_bfloat16_synthesis_is_asked_for_and_decodes_the_same_symbols_to_close_pixels():
    model = make_model("tcm-tiny-vr", seed=7)
    data = codec.encode_image(_image(64, 96), model, quality=60).data
    stream = read_stream(data)
    plain = decode_stream_details(stream, model)
    reduced = decode_stream_details(stream, model, synthesis_dtype=torch.bfloat16)
    assert reduced.symbol_digests == plain.symbol_digests
    assert np.array_equal(np.asarray(codec.decode(data, model)), np.asarray(plain.image))  # float32 by default
    difference = np.abs(np.asarray(reduced.image, dtype=np.int16) - np.asarray(plain.image, dtype=np.int16))
    assert 0 < difference.max() <= 8


def test_decode_synthesis_precision_option_writes_the_image(tmp_path, tiny_vr_checkpoint):
    from PIL import Image

    source = tmp_path / "in.png"
    Image.fromarray(_image(48, 80)).save(source)
    assert run_cli("encode", source, tmp_path / "in.tcm", "--checkpoint", tiny_vr_checkpoint) == 0
    for choice in ("float32", "bfloat16"):
        out = tmp_path / f"{choice}.png"
        assert run_cli("decode", tmp_path / "in.tcm", out, "--checkpoint", tiny_vr_checkpoint,
                       "--synthesis-precision", choice) == 0
        assert Image.open(out).size == (80, 48)


def test_evaluation_results_record_the_analysis_precision_this_machine_used(tiny_vr_checkpoint):
    from tcmcodec.evaluate.codecs import get_codec

    loaded = codec.load_model(tiny_vr_checkpoint)
    expected = "bfloat16" if loaded.analysis_dtype is torch.bfloat16 else "float32"
    assert get_codec(f"tcm:checkpoint={tiny_vr_checkpoint}").settings["analysis_precision"] == expected
    assert get_codec("tcm:checkpoint=/no/such/weights.pt").settings["analysis_precision"] is None
