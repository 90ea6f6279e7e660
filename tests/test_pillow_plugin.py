"""The Pillow plugin registered by ``import tcmcodec``: save, lazy open, decode on load."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import tcmcodec
from tcmcodec import container, pillow_plugin, zoo
from tcmcodec.errors import FormatError, ModelMismatchError

RNG = np.random.default_rng(3)


def noise(height: int, width: int, channels: int = 3) -> np.ndarray:
    return RNG.integers(0, 256, (height, width, channels), dtype=np.uint8)


@pytest.fixture()
def default_model_reset():
    previous = pillow_plugin.set_default_model(None)
    yield
    pillow_plugin.set_default_model(previous)


def test_import_registers_the_tcm_extension():
    Image.init()
    assert Image.registered_extensions()[".tcm"] == "TCM"
    assert "TCM" in Image.OPEN and "TCM" in Image.SAVE
    assert Image.MIME["TCM"] == "image/x-tcm"


def test_save_writes_a_stream_with_the_given_model_and_quality(tmp_path, tiny_vr_model):
    path = tmp_path / "x.tcm"
    rgb = noise(30, 44)
    Image.fromarray(rgb).save(path, quality=35, model=tiny_vr_model)
    stream = container.parse(path.read_bytes())
    assert stream.model_name == "tcm-tiny-vr" and stream.quality == 35
    assert (stream.width, stream.height, stream.mode) == (44, 30, "RGB")
    assert path.read_bytes() == tcmcodec.encode(rgb, model=tiny_vr_model, quality=35)


def test_open_reports_size_and_mode_without_decoding(tmp_path, tiny_vr_model, default_model_reset, monkeypatch):
    path = tmp_path / "x.tcm"
    Image.fromarray(noise(30, 44, 4), "RGBA").save(path, quality=35, model=tiny_vr_model)
    import tcmcodec.codec as codec

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded on open")

    monkeypatch.setattr(codec, "decode_stream", no_decoding)
    with Image.open(path) as im:
        assert im.format == "TCM"
        assert im.size == (44, 30) and im.mode == "RGBA"
        assert im.info["model"] == "tcm-tiny-vr" and im.info["quality"] == 35


def test_load_decodes_with_a_model_set_on_the_image(tmp_path, tiny_vr_model, default_model_reset):
    path = tmp_path / "x.tcm"
    rgba = noise(30, 44, 4)
    Image.fromarray(rgba, "RGBA").save(path, quality=35, model=tiny_vr_model)
    expected = np.asarray(tcmcodec.decode(path.read_bytes(), model=tiny_vr_model))
    with Image.open(path) as im:
        im.info["tcm_model"] = tiny_vr_model
        im.load()
        pixels = np.asarray(im)
    assert pixels.shape == (30, 44, 4)
    assert np.array_equal(pixels, expected)
    assert np.array_equal(pixels[:, :, 3], rgba[:, :, 3])


def test_set_default_model_lets_numpy_decode_directly(tmp_path, tiny_vr_model, default_model_reset):
    path = tmp_path / "x.tcm"
    Image.fromarray(noise(20, 24)).save(path, quality=60, model=tiny_vr_model)
    expected = np.asarray(tcmcodec.decode(path.read_bytes(), model=tiny_vr_model))
    assert pillow_plugin.set_default_model(tiny_vr_model) is None
    assert pillow_plugin.get_default_model() is tiny_vr_model
    assert np.array_equal(np.asarray(Image.open(path)), expected)
    assert Image.open(path).convert("L").size == (24, 20)


def test_set_default_model_accepts_a_checkpoint_path(tmp_path, tiny_model, tiny_checkpoint, default_model_reset):
    path = tmp_path / "x.tcm"
    Image.fromarray(noise(20, 24)).save(path, model=tiny_model)
    pillow_plugin.set_default_model(str(tiny_checkpoint))
    assert np.array_equal(np.asarray(Image.open(path)), np.asarray(tcmcodec.decode(path.read_bytes(), model=tiny_model)))


def test_file_of_another_model_raises_model_mismatch_on_load(tmp_path, tiny_vr_model, default_model_reset):
    path = tmp_path / "x.tcm"
    Image.fromarray(noise(20, 24)).save(path, quality=60, model=tiny_vr_model)
    with Image.open(path) as im:  # the header alone is fine
        assert im.size == (24, 20)
        with pytest.raises(ModelMismatchError, match="tcm-tiny-vr"):
            im.load()


def test_default_model_file_opens_and_decodes_without_a_model(tmp_path, default_model_reset):
    if not zoo.default_entry().available:
        pytest.skip("bundled weights are not installed")
    path = tmp_path / "x.tcm"
    rgb = noise(24, 40)
    Image.fromarray(rgb).save(path)
    assert container.parse(path.read_bytes()).model_name == zoo.default_entry().name
    with Image.open(path) as im:
        pixels = np.asarray(im)
    assert pixels.shape == (24, 40, 3)
    assert np.array_equal(pixels, np.asarray(tcmcodec.decode(path.read_bytes())))


def test_save_emits_conversion_warnings(tmp_path, tiny_model):
    image = Image.fromarray(RNG.integers(0, 65536, (10, 12), dtype=np.uint16))
    image.save(tmp_path / "g16.png")
    with Image.open(tmp_path / "g16.png") as im16:
        with pytest.warns(UserWarning, match="16-bit"):
            im16.save(tmp_path / "g16.tcm", model=tiny_model)
    assert container.parse((tmp_path / "g16.tcm").read_bytes()).mode == "L"


def test_corrupted_tcm_file_raises_format_error_on_open(tmp_path, tiny_model):
    path = tmp_path / "x.tcm"
    Image.fromarray(noise(20, 24)).save(path, model=tiny_model)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(FormatError, match="truncated"):
        Image.open(path)


def test_file_is_closed_after_load(tmp_path, tiny_model, default_model_reset):
    path = tmp_path / "x.tcm"
    Image.fromarray(noise(20, 24)).save(path, model=tiny_model)
    pillow_plugin.set_default_model(tiny_model)
    im = Image.open(path)
    fp = im.fp
    im.load()
    assert fp.closed and im.fp is None
    assert im.copy().size == (24, 20)


def test_save_with_a_size_target_writes_what_encode_to_target_chooses(tmp_path, tiny_vr_model):
    rgb = noise(30, 44)
    sizes = [len(tcmcodec.encode(rgb, model=tiny_vr_model, quality=q)) for q in (0, 100)]
    budget = (sizes[0] + sizes[1]) // 2
    path = tmp_path / "x.tcm"
    Image.fromarray(rgb).save(path, model=tiny_vr_model, target=tcmcodec.Target(max_bytes=budget))
    expected = tcmcodec.encode_to_target(rgb, tcmcodec.Target(max_bytes=budget), tiny_vr_model)
    assert path.read_bytes() == expected.data
    assert len(path.read_bytes()) <= budget


def test_save_warns_when_no_quality_meets_the_target(tmp_path, tiny_vr_model):
    path = tmp_path / "x.tcm"
    with pytest.warns(UserWarning, match="no quality gives at most 1 bytes"):
        Image.fromarray(noise(20, 24)).save(path, model=tiny_vr_model, target=tcmcodec.Target(max_bytes=1))
    assert container.parse(path.read_bytes()).quality == 0


@pytest.mark.parametrize("extra, message", [({"quality": 50}, "either quality or target"),
                                            ({"target": 20000}, "must be a tcmcodec.Target")])
def test_save_refuses_a_target_given_with_a_quality_or_not_as_a_target(tmp_path, tiny_vr_model, extra, message):
    options = {"target": tcmcodec.Target(max_bytes=20000), **extra}
    with pytest.raises(tcmcodec.TcmError, match=message):
        Image.fromarray(noise(20, 24)).save(tmp_path / "x.tcm", model=tiny_vr_model, **options)
