"""Tests of image loading, output images, alpha coding and atomic writes (image_io.py)."""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis.extra import numpy as hnp
from PIL import Image

from tcmcodec import image_io
from tcmcodec.errors import FormatError, ImageError
from tcmcodec.alpha_plane import decode_alpha, encode_alpha
from tcmcodec.image_io import DEFAULT_MAX_PIXELS, atomic_write_bytes, load_image, save_image, to_pil
from tcmcodec.image_tensors import crop_tensor, from_tensor, pad_amounts, pad_tensor, to_tensor

RNG = np.random.default_rng(1234)


def rand(*shape) -> np.ndarray:
    return RNG.integers(0, 256, shape, dtype=np.uint8)


def saved(tmp_path: Path, im: Image.Image, name: str, **params) -> Path:
    path = tmp_path / name
    im.save(path, **params)
    return path


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, raw: bytes | None) -> bytes:
    """A PNG file built by hand (for sizes/bit depths Pillow won't write)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    idat = zlib.compress(raw) if raw is not None else b"\x78\x9c"  # a truncated stream
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def check_contract(img: image_io.LoadedImage, h: int, w: int) -> None:
    assert img.rgb.shape == (h, w, 3) and img.rgb.dtype == np.uint8 and img.rgb.flags.c_contiguous
    if img.mode in ("RGBA", "LA"):
        assert img.alpha is not None and img.alpha.shape == (h, w) and img.alpha.dtype == np.uint8
    else:
        assert img.alpha is None


# ---------------------------------------------------------------- modes


def test_rgb_file_loads_exactly(tmp_path):
    a = rand(5, 7, 3)
    img = load_image(saved(tmp_path, Image.fromarray(a), "x.png"))
    check_contract(img, 5, 7)
    assert img.mode == "RGB" and np.array_equal(img.rgb, a) and img.warnings == []


def test_one_by_one_image_is_supported(tmp_path):
    img = load_image(saved(tmp_path, Image.new("RGB", (1, 1), (1, 2, 3)), "x.png"))
    check_contract(img, 1, 1)
    assert img.rgb.tolist() == [[[1, 2, 3]]]


def test_grey_image_is_replicated_to_three_channels_and_remembered_as_L(tmp_path):
    g = rand(4, 6)
    img = load_image(saved(tmp_path, Image.fromarray(g), "g.png"))
    check_contract(img, 4, 6)
    assert img.mode == "L"
    assert all(np.array_equal(img.rgb[:, :, c], g) for c in range(3))
    assert np.array_equal(np.asarray(to_pil(img.rgb, img.mode, img.alpha)), g)


def test_bilevel_image_becomes_L_with_0_and_255():
    im = Image.fromarray(np.array([[0, 255], [255, 0]], np.uint8)).convert("1")
    img = load_image(im)
    assert img.mode == "L" and img.rgb[:, :, 0].tolist() == [[0, 255], [255, 0]]


def test_palette_image_without_transparency_becomes_rgb(tmp_path):
    rgb = Image.fromarray(rand(6, 6, 3))
    p = rgb.quantize(8)
    img = load_image(saved(tmp_path, p, "p.png"))
    check_contract(img, 6, 6)
    assert img.mode == "RGB" and np.array_equal(img.rgb, np.asarray(p.convert("RGB")))


def test_palette_image_with_transparency_becomes_rgba(tmp_path):
    p = Image.new("P", (3, 2), 0)
    p.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    p.putpixel((1, 1), 1)
    img = load_image(saved(tmp_path, p, "p.png", transparency=0))
    check_contract(img, 2, 3)
    assert img.mode == "RGBA"
    assert img.alpha.tolist() == [[0, 0, 0], [0, 255, 0]]
    assert img.rgb[1, 1].tolist() == [0, 255, 0]


def test_rgba_alpha_is_restored_exactly(tmp_path):
    a = rand(9, 11, 4)
    img = load_image(saved(tmp_path, Image.fromarray(a), "a.png"))
    check_contract(img, 9, 11)
    assert img.mode == "RGBA"
    assert np.array_equal(img.alpha, a[:, :, 3]) and np.array_equal(img.rgb, a[:, :, :3])
    coded = decode_alpha(encode_alpha(img.alpha), 11, 9)
    out = to_pil(img.rgb, img.mode, coded)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out), a)


def test_la_alpha_is_restored_exactly(tmp_path):
    a = rand(5, 4, 2)
    img = load_image(saved(tmp_path, Image.fromarray(a), "la.png"))
    check_contract(img, 5, 4)
    assert img.mode == "LA" and np.array_equal(img.alpha, a[:, :, 1])
    assert np.array_equal(img.rgb[:, :, 2], a[:, :, 0])
    out = to_pil(img.rgb, img.mode, img.alpha)
    assert out.mode == "LA" and np.array_equal(np.asarray(out), a)


def test_grey_png_with_transparent_colour_key_becomes_LA(tmp_path):
    g = np.array([[10, 20], [10, 30]], np.uint8)
    img = load_image(saved(tmp_path, Image.fromarray(g), "k.png", transparency=10))
    assert img.mode == "LA" and img.alpha.tolist() == [[0, 255], [0, 255]]


def test_16bit_grey_png_is_scaled_to_8bit_with_a_warning(tmp_path):
    v = np.array([[0, 257 * 100, 65535, 128]], np.uint16)
    img = load_image(saved(tmp_path, Image.fromarray(v), "d.png"))
    assert img.mode == "L"
    assert img.rgb[:, :, 0].tolist() == [[0, 100, 255, 0]]
    assert any("16-bit" in w for w in img.warnings)


def test_16bit_rgb_png_warns_about_8bit_coding(tmp_path):
    raw = b"".join(b"\x00" + b"\x12\x34" * 3 * 2 for _ in range(2))
    path = tmp_path / "rgb16.png"
    path.write_bytes(png_bytes(2, 2, 16, 2, raw))
    img = load_image(path)
    assert img.mode == "RGB" and any("16-bit" in w for w in img.warnings)


def test_16bit_grey_alpha_png_gives_LA_back(tmp_path):
    raw = b"".join(b"\x00" + bytes([0x80, 0, 0x40, 0]) * 2 for _ in range(2))
    path = tmp_path / "la16.png"
    path.write_bytes(png_bytes(2, 2, 16, 4, raw))
    img = load_image(path)
    assert img.mode == "LA" and img.alpha.tolist() == [[64, 64], [64, 64]]
    assert img.rgb[0, 0].tolist() == [128, 128, 128]


def test_32bit_integer_image_in_16bit_range_is_scaled():
    img = load_image(Image.fromarray(np.array([[0, 65535, 257]], np.int32)))
    assert img.mode == "L" and img.rgb[:, :, 0].tolist() == [[0, 255, 1]] and img.warnings


def test_32bit_integer_image_out_of_range_is_rescaled():
    img = load_image(Image.fromarray(np.array([[-100, 0, 300]], np.int32)))
    assert img.rgb[:, :, 0].tolist() == [[0, 64, 255]] and img.warnings


def test_float_image_in_unit_range_is_scaled_with_a_warning():
    img = load_image(Image.fromarray(np.array([[0.0, 0.5, 1.0, np.nan]], np.float32)))
    assert img.mode == "L" and img.rgb[:, :, 0].tolist() == [[0, 128, 255, 0]]
    assert any("float" in w for w in img.warnings)


def test_cmyk_jpeg_decodes_with_correct_colours(tmp_path):
    im = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    img = load_image(saved(tmp_path, im, "c.jpg", quality=95))
    assert img.mode == "RGB"
    r, g, b = img.rgb[8, 8].astype(int)
    assert r > 240 and g < 15 and b < 15


def test_exif_orientation_is_applied(tmp_path):
    a = np.zeros((16, 32, 3), np.uint8)
    a[:, :16] = (255, 0, 0)  # left half red
    a[:, 16:] = (0, 0, 255)  # right half blue
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    img = load_image(saved(tmp_path, im, "o.jpg", exif=exif.tobytes(), quality=95))
    assert img.rgb.shape == (32, 16, 3)
    top, bottom = img.rgb[4, 8].astype(int), img.rgb[28, 8].astype(int)
    assert top[0] > 200 and top[2] < 60  # the left (red) half is now on top
    assert bottom[2] > 200 and bottom[0] < 60


def test_multi_frame_image_uses_the_first_frame(tmp_path):
    f1, f2 = Image.new("RGB", (4, 4), (255, 0, 0)), Image.new("RGB", (4, 4), (0, 0, 255))
    path = tmp_path / "anim.gif"
    f1.save(path, save_all=True, append_images=[f2])
    img = load_image(path)
    assert img.rgb[0, 0].tolist() == [255, 0, 0]


def test_numpy_inputs_of_every_supported_shape():
    g, rgb, rgba, la = rand(3, 4), rand(3, 4, 3), rand(3, 4, 4), rand(3, 4, 2)
    assert load_image(g).mode == "L" and np.array_equal(load_image(g).rgb[:, :, 1], g)
    assert load_image(g[:, :, None]).mode == "L"
    assert load_image(rgb).mode == "RGB" and np.array_equal(load_image(rgb).rgb, rgb)
    img = load_image(rgba)
    assert img.mode == "RGBA" and np.array_equal(img.alpha, rgba[:, :, 3]) and img.rgb.flags.c_contiguous
    assert load_image(la).mode == "LA"
    check_contract(img, 3, 4)


@pytest.mark.parametrize("bad", [np.zeros((3, 4), np.float32), np.zeros((3, 4, 5), np.uint8), np.zeros((0, 4), np.uint8), np.zeros(5, np.uint8)])
def test_unsupported_numpy_inputs_raise_image_error(bad):
    with pytest.raises(ImageError):
        load_image(bad)


# ---------------------------------------------------------------- limits and errors


def test_pixel_limit_is_checked_from_the_header_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(png_bytes(40000, 30000, 8, 2, None))  # header only: decoding would need 3.6 GB
    start = time.perf_counter()
    with pytest.raises(ImageError, match=r"^image is 40000x30000 \(1200\.0 MP\), above the limit of 268\.4 MP; pass a larger max_pixels \(None: no limit\)$"):
        load_image(path)
    assert time.perf_counter() - start < 1.0
    assert DEFAULT_MAX_PIXELS == 2**28


def test_pixel_limit_can_be_lowered_or_disabled(tmp_path):
    path = saved(tmp_path, Image.new("RGB", (20, 10)), "s.png")
    with pytest.raises(ImageError, match="20x10"):
        load_image(path, max_pixels=199)
    assert load_image(path, max_pixels=200).rgb.shape == (10, 20, 3)
    assert load_image(path, max_pixels=None).rgb.shape == (10, 20, 3)
    with pytest.raises(ImageError, match="above the limit"):
        load_image(rand(20, 10, 3), max_pixels=199)
    with pytest.raises(ImageError, match="above the limit"):
        load_image(Image.new("L", (20, 10)), max_pixels=199)


def test_our_limit_replaces_pillows_lower_one_and_restores_it(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # Pillow would refuse anything above 20 px
    path = saved(tmp_path, Image.new("RGB", (8, 8)), "s.png")
    assert load_image(path).rgb.shape == (8, 8, 3)
    assert Image.MAX_IMAGE_PIXELS == 10


def test_pillow_decompression_bomb_error_becomes_image_error(tmp_path, monkeypatch):
    path = saved(tmp_path, Image.new("RGB", (8, 8)), "s.png")

    def bomb(*args, **kwargs):
        raise Image.DecompressionBombError("Image size (1 pixels) exceeds limit")

    monkeypatch.setattr(Image, "open", bomb)
    with pytest.raises(ImageError, match="too large"):
        load_image(path)


def test_non_image_file_raises_image_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ImageError, match=f"^cannot read image {path}: "):
        load_image(path)


def test_truncated_image_raises_image_error(tmp_path):
    data = (saved(tmp_path, Image.fromarray(rand(64, 64, 3)), "t.png")).read_bytes()
    (tmp_path / "t.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cannot read image"):
        load_image(tmp_path / "t.png")


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_image(tmp_path / "nope.png")


def test_directory_raises_image_error(tmp_path):
    with pytest.raises(ImageError, match="directory"):
        load_image(tmp_path)


# ---------------------------------------------------------------- output images


def test_to_pil_L_uses_the_rounded_channel_mean():
    rgb = np.array([[[10, 11, 11], [0, 0, 1], [255, 254, 254], [30, 60, 90]]], np.uint8)
    out = to_pil(rgb, "L", None)
    assert out.mode == "L" and np.asarray(out).tolist() == [[11, 0, 254, 60]]


def test_to_pil_builds_each_mode():
    rgb, a = rand(2, 3, 3), rand(2, 3)
    assert np.array_equal(np.asarray(to_pil(rgb, "RGB", None)), rgb)
    rgba = to_pil(rgb, "RGBA", a)
    assert rgba.mode == "RGBA" and np.array_equal(np.asarray(rgba)[:, :, 3], a)
    la = to_pil(rgb, "LA", a)
    assert la.mode == "LA" and np.array_equal(np.asarray(la)[:, :, 1], a)


@pytest.mark.parametrize("mode, alpha", [("RGBA", None), ("RGB", np.zeros((2, 3), np.uint8)), ("CMYK", None), ("LA", np.zeros((3, 2), np.uint8))])
def test_to_pil_rejects_inconsistent_arguments(mode, alpha):
    with pytest.raises(ValueError):
        to_pil(rand(2, 3, 3), mode, alpha)


# ---------------------------------------------------------------- alpha coding


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.uint8, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=40)))
def test_alpha_coding_is_lossless(alpha):
    assert np.array_equal(decode_alpha(encode_alpha(alpha), alpha.shape[1], alpha.shape[0]), alpha)


def test_alpha_coding_of_typical_planes_is_lossless_and_compact():
    opaque = np.full((512, 768), 255, np.uint8)
    assert encode_alpha(opaque) == b"\x00\xff"
    mask = (rand(64, 77) > 128).astype(np.uint8) * 200
    gradient = np.tile(np.arange(200, dtype=np.uint8), (50, 1))
    noise = rand(33, 17)
    for plane in (opaque, mask, gradient, noise):
        data = encode_alpha(plane)
        assert np.array_equal(decode_alpha(data, plane.shape[1], plane.shape[0]), plane)
    assert len(encode_alpha(mask)) < 64 * 77 / 6  # binary planes are bit-packed
    assert len(encode_alpha(gradient)) < 100  # smooth planes are differenced


def test_decode_alpha_rejects_wrong_sizes_and_garbage():
    plane = rand(10, 12)
    data = encode_alpha(plane)
    for w, h in [(12, 9), (11, 10), (12, 11), (13, 10)]:
        with pytest.raises(FormatError):
            decode_alpha(data, w, h)
    for bad in [b"", b"\x07", b"\x00", b"\x00\x01\x02", b"\x01garbage", data[:-3], data + b"\x00", b"\x03\x00"]:
        with pytest.raises(FormatError):
            decode_alpha(bad, 12, 10)


def test_decode_alpha_never_inflates_a_bomb():
    bomb = b"\x01" + zlib.compress(bytes(200_000_000))  # ~200 KB that inflates to 200 MB
    start = time.perf_counter()
    with pytest.raises(FormatError, match="more bytes"):
        decode_alpha(bomb, 10, 10)
    assert time.perf_counter() - start < 1.0


# ---------------------------------------------------------------- saving


@pytest.mark.parametrize("name", ["o.png", "o.bmp", "o.tif", "o.tiff", "o.ppm", "O.PNG"])
def test_save_image_picks_a_lossless_format_from_the_extension(tmp_path, name):
    a = rand(5, 6, 3)
    save_image(Image.fromarray(a), tmp_path / name)
    assert np.array_equal(np.asarray(Image.open(tmp_path / name).convert("RGB")), a)
    assert sorted(os.listdir(tmp_path)) == [name]


@pytest.mark.parametrize("name, fmt", [("o.jpg", "JPEG"), ("o.jpeg", "JPEG"), ("o.webp", "WEBP"), ("o.png", "PNG")])
def test_save_image_writes_the_format_of_the_extension(tmp_path, name, fmt):
    save_image(Image.fromarray(rand(8, 8, 3)), tmp_path / name, quality=90)
    assert Image.open(tmp_path / name).format == fmt


def test_save_image_format_argument_overrides_the_extension(tmp_path):
    save_image(Image.new("RGB", (4, 4)), tmp_path / "out.bin", format="png")
    assert Image.open(tmp_path / "out.bin").format == "PNG"


def test_save_image_keeps_alpha_in_png(tmp_path):
    a = rand(4, 5, 4)
    save_image(to_pil(a[:, :, :3], "RGBA", a[:, :, 3]), tmp_path / "a.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "a.png")), a)


def test_unknown_extension_raises_and_leaves_no_file(tmp_path):
    with pytest.raises(ImageError, match="extension '.xyz'"):
        save_image(Image.new("RGB", (4, 4)), tmp_path / "out.xyz")
    with pytest.raises(ImageError, match="no extension"):
        save_image(Image.new("RGB", (4, 4)), tmp_path / "out")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_jpeg_of_an_image_with_alpha_raises_explaining_and_leaves_no_file(tmp_path, mode):
    im = Image.new(mode, (4, 4))
    with pytest.raises(ImageError, match=r"JPEG cannot store transparency.*\.png"):
        save_image(im, tmp_path / "out.jpg")
    assert os.listdir(tmp_path) == []


def test_encoder_failure_leaves_the_existing_target_untouched(tmp_path):
    target = tmp_path / "out.bmp"
    target.write_bytes(b"old")
    with pytest.raises(ImageError, match="cannot write image"):
        save_image(Image.new("LA", (4, 4)), target)  # BMP cannot store LA
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["out.bmp"]


def test_failed_replace_leaves_no_partial_or_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "out.tcm"
    target.write_bytes(b"old")

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(image_io.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(target, b"new contents")
    with pytest.raises(OSError, match="disk full"):
        save_image(Image.new("RGB", (4, 4)), tmp_path / "new.png")
    assert sorted(os.listdir(tmp_path)) == ["out.tcm"] and target.read_bytes() == b"old"


def test_atomic_write_bytes_replaces_the_file_with_normal_permissions(tmp_path):
    target = tmp_path / "x.tcm"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(str(target), b"two")
    assert target.read_bytes() == b"two" and os.listdir(tmp_path) == ["x.tcm"]
    mask = os.umask(0o022)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask


def test_atomic_write_into_a_missing_directory_raises_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        atomic_write_bytes(tmp_path / "missing" / "x.tcm", b"data")


# ---------------------------------------------------------------- padding and tensors


@pytest.mark.parametrize(
    "h, w, m, expected",
    [
        (512, 768, 64, (0, 0, 0, 0)),
        (1, 1, 64, (31, 32, 31, 32)),
        (500, 700, 64, (2, 2, 6, 6)),
        (513, 769, 64, (31, 32, 31, 32)),
        (64, 65, 128, (31, 32, 32, 32)),
        (3, 5, 1, (0, 0, 0, 0)),
    ],
)
def test_pad_amounts_reach_the_next_multiple_split_evenly(h, w, m, expected):
    left, right, top, bottom = pad_amounts(h, w, m)
    assert (left, right, top, bottom) == expected
    assert (w + left + right) % m == 0 and (h + top + bottom) % m == 0


def test_tensor_round_trip_is_exact_for_every_byte_value():
    a = np.arange(256 * 3, dtype=np.int64).reshape(16, 16, 3).astype(np.uint8)
    t = to_tensor(a)
    assert t.shape == (1, 3, 16, 16) and t.dtype == torch.float32
    assert float(t.min()) == 0.0 and float(t.max()) == 1.0
    assert np.array_equal(from_tensor(t), a)


def test_from_tensor_clamps_and_rounds_half_to_even():
    x = torch.tensor([-1.0, 2.0, float("nan"), 0.5 / 255, 1.5 / 255, 2.5 / 255, 0.4 / 255], dtype=torch.float64)
    x = x.view(1, 1, 1, 7).expand(1, 3, 1, 7)
    out = from_tensor(x)[0, :, 0].tolist()
    assert out == [0, 255, 0, 0, 2, 2, 0]
    assert from_tensor(x).flags.c_contiguous


def test_pad_then_crop_restores_the_tensor_and_pads_with_zeros():
    x = torch.rand(1, 3, 5, 7) + 0.5
    p = pad_amounts(5, 7, 4)
    y = pad_tensor(x, p)
    assert y.shape == (1, 3, 8, 8)
    assert float(y[..., : p[2], :].abs().sum()) == 0.0 and float(y[..., :, : p[0]].abs().sum()) == 0.0
    assert torch.equal(crop_tensor(y, p), x)
    with pytest.raises(ValueError):
        crop_tensor(x, (4, 3, 0, 0))
