"""The public encode/decode API (codec.py): inputs, sizes, modes, limits, quality, models.

Tiny random-weight models keep this fast; the reconstructions are noise, so pixel checks
compare against what the model itself produces (bit for bit), never against the input.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tcmcodec
from tcmcodec import container, zoo
from tcmcodec.config import HYPER_LATENT_STRIDE
from tcmcodec.errors import ImageError, ModelMismatchError, TcmError

from conftest import make_model

RNG = np.random.default_rng(7)


def noise(height: int, width: int, channels: int | None = 3) -> np.ndarray:
    shape = (height, width) if channels is None else (height, width, channels)
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def expected_reconstruction(model, rgb: np.ndarray, pad, level=None) -> tuple[np.ndarray, tuple]:
    """What decoding must give: the model's own compress -> decompress on the padded
    tensor, cropped and rounded here without the pipeline's helpers. Also the strings."""
    left, right, top, bottom = pad
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    x = torch.nn.functional.pad(x, (left, right, top, bottom))
    with torch.inference_mode():
        out = model.compress(x, level)
        rec = model.decompress(out["strings"], out["shape"], level)["x_hat"]
    h, w = rgb.shape[:2]
    rec = rec[0, :, top:top + h, left:left + w].clamp(0, 1)
    pixels = torch.round(rec * 255).to(torch.uint8).permute(1, 2, 0).numpy()
    strings = (out["strings"][0][0], out["strings"][1][0])
    return pixels, strings


# --------------------------------------------------------------------------- inputs


def test_encode_accepts_path_pil_and_array_with_identical_bytes(tmp_path, tiny_model):
    rgb = noise(40, 56)
    path = tmp_path / "in.png"
    Image.fromarray(rgb).save(path)
    from_path = tcmcodec.encode(path, model=tiny_model)
    from_str = tcmcodec.encode(str(path), model=tiny_model)
    from_pil = tcmcodec.encode(Image.fromarray(rgb), model=tiny_model)
    from_array = tcmcodec.encode(rgb, model=tiny_model)
    assert isinstance(from_array, bytes)
    assert from_path == from_str == from_pil == from_array
    decoded = tcmcodec.decode(from_array, model=tiny_model)
    assert isinstance(decoded, Image.Image)
    assert decoded.size == (56, 40) and decoded.mode == "RGB"


@pytest.mark.parametrize("width,height", [(1, 1), (1, 7), (7, 1), (13, 200), (129, 130), (256, 384)])
def test_decoded_size_equals_original_and_padding_is_undone(tiny_model, width, height):
    rgb = noise(height, width)
    data = tcmcodec.encode(rgb, model=tiny_model)
    stream = container.parse(data)
    left, right, top, bottom = stream.pad
    multiple = tiny_model.config.pad_multiple
    assert multiple % HYPER_LATENT_STRIDE == 0
    padded_h, padded_w = stream.padded_size
    assert padded_h % multiple == 0 and padded_w % multiple == 0
    assert padded_h - height < multiple and padded_w - width < multiple
    assert abs(left - right) <= 1 and abs(top - bottom) <= 1
    decoded = tcmcodec.decode(data, model=tiny_model)
    assert decoded.size == (width, height)
    # the right region is cropped: bit-identical to the model's own reconstruction
    expected, strings = expected_reconstruction(tiny_model, rgb, stream.pad)
    assert stream.strings == strings
    assert np.array_equal(np.asarray(decoded), expected)


def test_decode_equals_encoder_side_reconstruction_bitwise(tiny_model):
    rgb = noise(129, 130)
    data = tcmcodec.encode(rgb, model=tiny_model)
    stream = container.parse(data)
    expected, _ = expected_reconstruction(tiny_model, rgb, stream.pad)
    first = np.asarray(tcmcodec.decode(data, model=tiny_model))
    again = np.asarray(tcmcodec.decode(data, model=tiny_model))
    assert np.array_equal(first, expected)
    assert np.array_equal(again, expected)


# --------------------------------------------------------------------------- modes


def test_rgb_pil_image_decodes_as_rgb(tiny_model):
    data = tcmcodec.encode(Image.fromarray(noise(30, 20)), model=tiny_model)
    out = tcmcodec.decode(data, model=tiny_model)
    assert out.mode == "RGB" and out.size == (20, 30)


def test_grey_image_decodes_as_grey(tiny_model):
    grey = noise(25, 33, None)
    for source in (Image.fromarray(grey, "L"), grey):
        out = tcmcodec.decode(tcmcodec.encode(source, model=tiny_model), model=tiny_model)
        assert out.mode == "L" and out.size == (33, 25)


def test_palette_image_decodes_as_rgb(tiny_model):
    pal = Image.fromarray(noise(24, 40)).quantize(16)
    assert pal.mode == "P"
    out = tcmcodec.decode(tcmcodec.encode(pal, model=tiny_model), model=tiny_model)
    assert out.mode == "RGB" and out.size == (40, 24)


def test_palette_with_transparency_keeps_alpha_exactly(tmp_path, tiny_model):
    pal = Image.fromarray(noise(24, 40)).quantize(8)
    pal.info["transparency"] = 3
    path = tmp_path / "pal.png"
    pal.save(path, transparency=3)
    expected_alpha = np.asarray(Image.open(path).convert("RGBA"))[:, :, 3]
    out = tcmcodec.decode(tcmcodec.encode(path, model=tiny_model), model=tiny_model)
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[:, :, 3], expected_alpha)


def test_rgba_alpha_is_restored_exactly(tiny_model):
    rgba = noise(37, 45, 4)
    out = tcmcodec.decode(tcmcodec.encode(rgba, model=tiny_model), model=tiny_model)
    assert out.mode == "RGBA" and out.size == (45, 37)
    assert np.array_equal(np.asarray(out)[:, :, 3], rgba[:, :, 3])


def test_rgba_colour_channels_equal_model_reconstruction(tiny_model):
    rgba = noise(37, 45, 4)
    data = tcmcodec.encode(Image.fromarray(rgba, "RGBA"), model=tiny_model)
    expected, _ = expected_reconstruction(tiny_model, np.ascontiguousarray(rgba[:, :, :3]), container.parse(data).pad)
    assert np.array_equal(np.asarray(tcmcodec.decode(data, model=tiny_model))[:, :, :3], expected)


def test_la_image_decodes_as_la_with_exact_alpha(tiny_model):
    la = noise(21, 34, 2)
    image = Image.fromarray(la, "LA")
    out = tcmcodec.decode(tcmcodec.encode(image, model=tiny_model), model=tiny_model)
    assert out.mode == "LA" and out.size == (34, 21)
    assert np.array_equal(np.asarray(out)[:, :, 1], la[:, :, 1])


def _png_rgb16(path: Path, rgb16: np.ndarray) -> None:
    """Write a 16-bit-per-channel RGB PNG (Pillow cannot create one itself)."""
    h, w, _ = rgb16.shape

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("kind", ["grey16", "rgb16"])
def test_16bit_png_warns_in_encode_and_in_encode_image(tmp_path, tiny_model, kind):
    path = tmp_path / f"{kind}.png"
    if kind == "grey16":
        Image.fromarray(RNG.integers(0, 65536, (20, 30), dtype=np.uint16)).save(path)
        mode = "L"
    else:
        _png_rgb16(path, RNG.integers(0, 65536, (20, 30, 3), dtype=np.uint16))
        mode = "RGB"
    with pytest.warns(UserWarning, match="16-bit"):
        data = tcmcodec.encode(path, model=tiny_model)
    result = tcmcodec.encode_image(path, model=tiny_model)
    assert any("16-bit" in note for note in result.warnings)
    assert result.data == data
    out = tcmcodec.decode(data, model=tiny_model)
    assert out.mode == mode and out.size == (30, 20)


def test_8bit_png_gives_no_warning(tmp_path, tiny_model):
    path = tmp_path / "rgb8.png"
    Image.fromarray(noise(20, 30)).save(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        tcmcodec.encode(path, model=tiny_model)
    assert tcmcodec.encode_image(path, model=tiny_model).warnings == []


def test_cmyk_jpeg_decodes_as_rgb(tmp_path, tiny_model):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(noise(24, 32, 4), "CMYK").save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    out = tcmcodec.decode(tcmcodec.encode(path, model=tiny_model), model=tiny_model)
    assert out.mode == "RGB" and out.size == (32, 24)


def test_exif_orientation_6_swaps_width_and_height(tmp_path, tiny_model):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(noise(20, 40)).save(path, exif=exif.tobytes())
    assert Image.open(path).size == (40, 20)
    out = tcmcodec.decode(tcmcodec.encode(path, model=tiny_model), model=tiny_model)
    assert out.size == (20, 40)


# --------------------------------------------------------------------------- limits


@pytest.mark.parametrize("source", ["path", "pil", "array"])
def test_max_pixels_refuses_larger_image(tmp_path, tiny_model, source):
    rgb = noise(11, 10)
    if source == "path":
        image = tmp_path / "big.png"
        Image.fromarray(rgb).save(image)
    else:
        image = Image.fromarray(rgb) if source == "pil" else rgb
    with pytest.raises(ImageError, match="limit"):
        tcmcodec.encode(image, model=tiny_model, max_pixels=100)
    assert tcmcodec.encode(rgb[:10], model=tiny_model, max_pixels=100)  # exactly at the limit


def test_decode_max_pixels_refuses_large_stream(tiny_model):
    data = tcmcodec.encode(noise(11, 10), model=tiny_model)
    with pytest.raises(tcmcodec.FormatError, match="limit"):
        tcmcodec.decode(data, model=tiny_model, max_pixels=100)
    assert tcmcodec.decode(data, model=tiny_model, max_pixels=110).size == (10, 11)


# --------------------------------------------------------------------------- quality


def test_variable_rate_quality_100_gives_more_bytes_than_0(tiny_vr_model):
    rgb = noise(64, 64)
    low = tcmcodec.encode(rgb, model=tiny_vr_model, quality=0)
    high = tcmcodec.encode(rgb, model=tiny_vr_model, quality=100)
    assert len(high) > len(low)
    assert container.parse(low).quality == 0 and container.parse(high).quality == 100


@pytest.mark.parametrize("quality,stored", [(30, 30), (30.4, 30), (100, 100), (0, 0)])
def test_decode_uses_quality_stored_in_file(tiny_vr_model, quality, stored):
    rgb = noise(50, 70)
    data = tcmcodec.encode(rgb, model=tiny_vr_model, quality=quality)
    stream = container.parse(data)
    assert stream.quality == stored
    level = zoo.quality_to_level(stored, tiny_vr_model.rate_levels)
    expected, strings = expected_reconstruction(tiny_vr_model, rgb, stream.pad, level)
    assert stream.strings == strings
    assert np.array_equal(np.asarray(tcmcodec.decode(data, model=tiny_vr_model)), expected)


def test_variable_rate_default_quality_is_stored(tiny_vr_model):
    data = tcmcodec.encode(noise(20, 20), model=tiny_vr_model)
    assert 0 <= container.parse(data).quality <= zoo.QUALITY_MAX
    assert tcmcodec.decode(data, model=tiny_vr_model).size == (20, 20)


def test_fixed_rate_model_refuses_a_quality(tiny_model):
    with pytest.raises(TcmError, match="single rate"):
        tcmcodec.encode(noise(16, 16), model=tiny_model, quality=50)


@pytest.mark.parametrize("quality", [-1, 100.6, 101, float("nan")])
def test_quality_out_of_range_raises(tiny_vr_model, quality):
    with pytest.raises(TcmError, match="quality"):
        tcmcodec.encode(noise(16, 16), model=tiny_vr_model, quality=quality)


# --------------------------------------------------------------------------- models


def test_decoding_with_other_weights_raises_model_mismatch_naming_the_model(tiny_model):
    data = tcmcodec.encode(noise(20, 20), model=tiny_model)
    stream = container.parse(data)
    other = make_model("tcm-tiny", seed=1)
    with pytest.raises(ModelMismatchError) as info:
        tcmcodec.decode(data, model=other)
    message = str(info.value)
    assert "tcm-tiny" in message and stream.weights_hash in message


def test_decoding_non_bundled_model_file_without_model_raises_model_mismatch(tiny_model):
    data = tcmcodec.encode(noise(20, 20), model=tiny_model)
    with pytest.raises(ModelMismatchError, match="tcm-tiny"):
        tcmcodec.decode(data)


def test_decode_with_checkpoint_path_of_the_same_weights(tiny_model, tiny_checkpoint):
    rgb = noise(30, 30)
    data = tcmcodec.encode(rgb, model=tiny_model)
    by_path = tcmcodec.decode(data, model=str(tiny_checkpoint))
    by_model = tcmcodec.decode(data, model=tiny_model)
    assert np.array_equal(np.asarray(by_path), np.asarray(by_model))
    # a checkpoint in the authors' layout codes with the float numerics, naming this computer
    float_file = tcmcodec.encode(rgb, model=tiny_checkpoint)
    stream = tcmcodec.container.parse(float_file)
    assert stream.numerics == "float" and stream.platform.startswith("cpu-")
    assert np.array_equal(np.asarray(tcmcodec.decode(float_file, model=tiny_model)),
                          np.asarray(tcmcodec.decode(float_file, model=str(tiny_checkpoint))))


def test_default_model_file_decodes_with_model_none():
    default = zoo.default_entry()
    if not default.available:
        pytest.skip("bundled weights are not installed")
    data = tcmcodec.encode(noise(24, 40))
    stream = container.parse(data)
    assert stream.model_name == default.name
    out = tcmcodec.decode(data)
    assert out.size == (40, 24) and out.mode == "RGB"
    assert np.array_equal(np.asarray(out), np.asarray(tcmcodec.decode(data, model=default.name)))


def test_load_model_unknown_name_raises(tmp_path):
    with pytest.raises(tcmcodec.ModelNotFoundError, match="neither a model name"):
        tcmcodec.load_model("no-such-model")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(RNG.integers(0, 256, 300, dtype=np.uint8).tobytes())
    with pytest.raises(tcmcodec.ModelNotFoundError, match="cannot read checkpoint"):
        tcmcodec.load_model(bad)


def test_encode_result_reports_size_mode_and_bpp(tiny_model):
    result = tcmcodec.encode_image(noise(10, 20, 4), model=tiny_model)
    assert (result.width, result.height, result.mode) == (20, 10, "RGBA")
    assert result.bits_per_pixel == pytest.approx(8 * len(result.data) / 200)
    assert io.BytesIO(result.data).read(4) == container.MAGIC


@pytest.mark.parametrize("pixels,reuses", [(768 * 512, True), (3840 * 2176, True), (7680 * 4352, False)])
def test_allocator_reuses_freed_memory_up_to_4k_and_maps_large_blocks_beyond(monkeypatch, pixels, reuses):
    from tcmcodec import runtime

    calls: list[tuple[tuple[int, int], ...]] = []
    monkeypatch.setattr(runtime, "_mallopt", lambda *settings: calls.append(settings) or True)
    runtime.tune_allocator(pixels)
    (settings,) = calls
    assert ((runtime._M_MMAP_MAX, 0) in settings) == reuses
