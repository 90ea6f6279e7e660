"""The ``tcm`` command line: encode / decode / info / models, user errors, atomic output.

Most runs are in-process (``run_cli``) with the tiny checkpoints; one goes through a real
``python -m tcmcodec`` subprocess to check the exit status and stderr end to end.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tcmcodec import container
from tcmcodec.config import PRESETS

from conftest import PYTHON, REPO, make_model, run_cli

RNG = np.random.default_rng(11)


def write_image(path: Path, height: int = 24, width: int = 40, channels: int = 3) -> Path:
    shape = (height, width, channels) if channels > 1 else (height, width)
    Image.fromarray(RNG.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


def user_error(capsys, status: int) -> str:
    """Assert a clean user error: status 1, one or two lines on stderr, no traceback."""
    err = capsys.readouterr().err
    assert status == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert 1 <= len(lines) <= 2, err
    assert "Traceback" not in err
    return err


def folder_listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture()
def image(tmp_path) -> Path:
    return write_image(tmp_path / "in.png")


@pytest.fixture()
def encoded(tmp_path, image, tiny_checkpoint, capsys) -> Path:
    out = tmp_path / "in.tcm"
    assert run_cli("encode", image, out, "--checkpoint", tiny_checkpoint) == 0
    capsys.readouterr()
    return out


# --------------------------------------------------------------------------- encode


def test_encode_prints_size_bpp_of_the_real_file_and_time(tmp_path, image, tiny_checkpoint, capsys):
    out = tmp_path / "x.tcm"
    assert run_cli("encode", image, out, "--checkpoint", tiny_checkpoint) == 0
    printed = capsys.readouterr().out
    size = out.stat().st_size
    match = re.search(r"(\d+) bytes, ([0-9.]+) bpp .*, ([0-9.]+) s", printed)
    assert match, printed
    assert int(match.group(1)) == size
    assert float(match.group(2)) == pytest.approx(8 * size / (40 * 24), abs=1e-4)
    assert float(match.group(3)) >= 0
    assert container.parse(out.read_bytes()).width == 40


def test_encode_json_line_matches_file(tmp_path, image, tiny_vr_checkpoint, capsys):
    out = tmp_path / "x.tcm"
    assert run_cli("encode", image, out, "--checkpoint", tiny_vr_checkpoint, "-q", "25", "--json") == 0
    info = json.loads(capsys.readouterr().out)
    assert info["bytes"] == out.stat().st_size
    assert info["bpp"] == pytest.approx(8 * out.stat().st_size / (40 * 24))
    assert info["quality"] == 25 == container.parse(out.read_bytes()).quality
    assert (info["width"], info["height"]) == (40, 24)


def test_encode_with_authors_layout_checkpoint_then_decode(tmp_path, encoded, tiny_checkpoint, capsys):
    out = tmp_path / "out.png"
    assert run_cli("decode", encoded, out, "--checkpoint", tiny_checkpoint) == 0
    assert Image.open(out).size == (40, 24)


@pytest.mark.parametrize("ext,fmt", [("png", "PNG"), ("webp", "WEBP"), ("jpg", "JPEG")])
def test_decode_output_format_follows_extension(tmp_path, encoded, tiny_checkpoint, capsys, ext, fmt):
    out = tmp_path / f"out.{ext}"
    assert run_cli("decode", encoded, out, "--checkpoint", tiny_checkpoint) == 0
    with Image.open(out) as im:
        assert im.format == fmt and im.size == (40, 24)
    assert "40x24" in capsys.readouterr().out


def test_decode_png_is_the_api_reconstruction(tmp_path, encoded, tiny_checkpoint):
    import tcmcodec

    out = tmp_path / "out.png"
    assert run_cli("decode", encoded, out, "--checkpoint", tiny_checkpoint) == 0
    expected = tcmcodec.decode(encoded.read_bytes(), model=str(tiny_checkpoint))
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(expected))


def test_variable_rate_checkpoint_roundtrip(tmp_path, image, tiny_vr_checkpoint, capsys):
    out = tmp_path / "vr.tcm"
    assert run_cli("encode", image, out, "--checkpoint", tiny_vr_checkpoint, "--quality", "80") == 0
    assert container.parse(out.read_bytes()).quality == 80
    png = tmp_path / "vr.png"
    assert run_cli("decode", out, png, "--checkpoint", tiny_vr_checkpoint) == 0
    assert Image.open(png).size == (40, 24)


# --------------------------------------------------------------------------- info / models


def test_info_json_describes_the_file(encoded, tiny_model, capsys):
    assert run_cli("info", encoded, "--json") == 0
    info = json.loads(capsys.readouterr().out)
    stream = container.parse(encoded.read_bytes())
    assert info["bytes"] == encoded.stat().st_size
    assert info["bpp"] == pytest.approx(8 * encoded.stat().st_size / (40 * 24))
    assert (info["width"], info["height"], info["mode"]) == (40, 24, "RGB")
    assert info["model"] == "tcm-tiny" and info["weights_hash"] == stream.weights_hash
    assert info["string_bytes"] == [len(s) for s in stream.strings]
    assert info["format_version"] == container.FORMAT_VERSION


def test_info_text_lists_fields(encoded, capsys):
    assert run_cli("info", encoded) == 0
    out = capsys.readouterr().out
    for key in ("model", "weights_hash", "width", "height", "bpp", "quality"):
        assert re.search(rf"^{key}\s", out, re.M), out


def test_models_json_is_a_list_of_entries(capsys):
    assert run_cli("models", "--json") == 0
    entries = json.loads(capsys.readouterr().out)
    assert isinstance(entries, list) and entries
    for entry in entries:
        assert isinstance(entry["name"], str) and entry["name"]
        assert isinstance(entry["default"], bool)
        assert isinstance(entry["qualities"], list)
        assert all(isinstance(q, int) and 0 <= q <= 100 for q in entry["qualities"])
        assert entry["metric"] in ("mse", "ms-ssim")
    assert sum(e["default"] for e in entries) == 1


def test_models_text_names_the_default_and_every_preset(capsys):
    assert run_cli("models") == 0
    out = capsys.readouterr().out
    assert re.search(r"^\* tcm-cpu-mse", out, re.M), out
    for name in PRESETS:  # every preset, with its rates
        assert re.search(rf"^  {name} .*(fixed rate|\d rates)( +\(g_a N=\d+\))?$", out, re.M), out
    assert re.search(r"^  tcm-cpu-wide-ax2 +N=32 .* \(g_a N=64\)$", out, re.M), out


# --------------------------------------------------------------------------- user errors


def test_missing_input_is_a_user_error(tmp_path, tiny_checkpoint, capsys):
    status = run_cli("encode", tmp_path / "nope.png", tmp_path / "x.tcm", "--checkpoint", tiny_checkpoint)
    assert "nope.png" in user_error(capsys, status)
    status = run_cli("decode", tmp_path / "nope.tcm", tmp_path / "x.png", "--checkpoint", tiny_checkpoint)
    assert "nope.tcm" in user_error(capsys, status)
    assert "nope.tcm" in user_error(capsys, run_cli("info", tmp_path / "nope.tcm"))
    assert not (tmp_path / "x.tcm").exists() and not (tmp_path / "x.png").exists()


def test_non_image_input_is_a_user_error(tmp_path, tiny_checkpoint, capsys):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image\n")
    status = run_cli("encode", text, tmp_path / "x.tcm", "--checkpoint", tiny_checkpoint)
    assert "notes.png" in user_error(capsys, status)
    assert not (tmp_path / "x.tcm").exists()


def test_unknown_model_name_is_a_user_error(tmp_path, image, capsys):
    status = run_cli("encode", image, tmp_path / "x.tcm", "--model", "no-such-model")
    assert "no-such-model" in user_error(capsys, status)


def test_bad_checkpoint_file_is_a_user_error(tmp_path, image, encoded, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    status = run_cli("encode", image, tmp_path / "x.tcm", "--checkpoint", bad)
    assert "bad.pt" in user_error(capsys, status)
    status = run_cli("decode", encoded, tmp_path / "x.png", "--checkpoint", bad)
    assert "bad.pt" in user_error(capsys, status)
    assert not (tmp_path / "x.tcm").exists() and not (tmp_path / "x.png").exists()


def test_missing_output_folder_is_a_user_error(tmp_path, image, encoded, tiny_checkpoint, capsys):
    status = run_cli("encode", image, tmp_path / "missing" / "x.tcm", "--checkpoint", tiny_checkpoint)
    assert "missing" in user_error(capsys, status)
    status = run_cli("decode", encoded, tmp_path / "missing" / "x.png", "--checkpoint", tiny_checkpoint)
    assert "missing" in user_error(capsys, status)
    assert not (tmp_path / "missing").exists()


def test_decoding_a_non_tcm_file_is_a_user_error(tmp_path, image, tiny_checkpoint, capsys):
    status = run_cli("decode", image, tmp_path / "x.png", "--checkpoint", tiny_checkpoint)
    assert "not a .tcm file" in user_error(capsys, status)
    assert "not a .tcm file" in user_error(capsys, run_cli("info", image))
    assert not (tmp_path / "x.png").exists()


def test_decoding_a_truncated_file_is_a_user_error(tmp_path, encoded, tiny_checkpoint, capsys):
    cut = tmp_path / "cut.tcm"
    cut.write_bytes(encoded.read_bytes()[:-10])
    status = run_cli("decode", cut, tmp_path / "x.png", "--checkpoint", tiny_checkpoint)
    assert "truncated" in user_error(capsys, status)
    assert not (tmp_path / "x.png").exists()


def test_decoding_with_the_wrong_model_is_a_user_error(tmp_path, encoded, tiny_vr_checkpoint, capsys):
    status = run_cli("decode", encoded, tmp_path / "x.png", "--checkpoint", tiny_vr_checkpoint)
    assert "tcm-tiny" in user_error(capsys, status)
    # without --checkpoint the file's model is not bundled
    assert "tcm-tiny" in user_error(capsys, run_cli("decode", encoded, tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("quality", ["101", "-5", "1e9"])
def test_quality_out_of_range_is_a_user_error(tmp_path, image, tiny_vr_checkpoint, capsys, quality):
    status = run_cli("encode", image, tmp_path / "x.tcm", "--checkpoint", tiny_vr_checkpoint, "--quality", quality)
    assert "quality" in user_error(capsys, status)
    assert not (tmp_path / "x.tcm").exists()


def test_quality_with_fixed_rate_model_is_a_user_error(tmp_path, image, tiny_checkpoint, capsys):
    status = run_cli("encode", image, tmp_path / "x.tcm", "--checkpoint", tiny_checkpoint, "-q", "50")
    assert "quality" in user_error(capsys, status)


def test_output_equal_to_input_is_refused_and_input_unchanged(tmp_path, image, encoded, tiny_checkpoint, capsys):
    before = image.read_bytes()
    status = run_cli("encode", image, image, "--checkpoint", tiny_checkpoint)
    assert "input" in user_error(capsys, status)
    assert image.read_bytes() == before
    tcm_before = encoded.read_bytes()
    status = run_cli("decode", encoded, encoded, "--checkpoint", tiny_checkpoint)
    assert "input" in user_error(capsys, status)
    assert encoded.read_bytes() == tcm_before
    # the same file under another spelling
    status = run_cli("encode", image, tmp_path / "." / image.name, "--checkpoint", tiny_checkpoint)
    user_error(capsys, status)
    assert image.read_bytes() == before


def test_unwritable_output_format_is_a_user_error(tmp_path, encoded, tiny_checkpoint, capsys):
    status = run_cli("decode", encoded, tmp_path / "x.unknownext", "--checkpoint", tiny_checkpoint)
    user_error(capsys, status)
    assert folder_listing(tmp_path) == sorted(["in.png", "in.tcm"])


# --------------------------------------------------------------------------- atomic output


def test_failed_encode_leaves_no_output_and_no_temp_files(tmp_path, image, tiny_checkpoint, capsys):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    status = run_cli("encode", image, out_dir / "x.tcm", "--checkpoint", tiny_checkpoint, "--max-pixels", "100")
    assert "limit" in user_error(capsys, status)
    assert folder_listing(out_dir) == []


def test_failed_commands_leave_existing_output_intact(tmp_path, image, encoded, tiny_checkpoint, capsys):
    target = tmp_path / "existing.tcm"
    target.write_bytes(b"precious")
    status = run_cli("encode", image, target, "--checkpoint", tiny_checkpoint, "--max-pixels", "100")
    user_error(capsys, status)
    assert target.read_bytes() == b"precious"
    png = tmp_path / "existing.png"
    png.write_bytes(b"also precious")
    cut = tmp_path / "cut.tcm"
    cut.write_bytes(encoded.read_bytes()[:-1])
    user_error(capsys, run_cli("decode", cut, png, "--checkpoint", tiny_checkpoint))
    assert png.read_bytes() == b"also precious"
    other = make_model("tcm-tiny", seed=3)
    import tcmcodec

    (tmp_path / "other.tcm").write_bytes(tcmcodec.encode(np.zeros((8, 8, 3), np.uint8), model=other))
    user_error(capsys, run_cli("decode", tmp_path / "other.tcm", png, "--checkpoint", tiny_checkpoint))
    assert png.read_bytes() == b"also precious"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# --------------------------------------------------------------------------- several inputs


def test_several_inputs_to_folder_load_the_model_once(tmp_path, tiny_checkpoint, monkeypatch, capsys):
    import tcmcodec.codec as codec

    sources = [write_image(tmp_path / f"img{i}.png", 16 + i, 20 + i) for i in range(3)]
    calls = []
    real = codec.load_model

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(codec, "load_model", counting)
    out_dir = tmp_path / "coded"
    assert run_cli("encode", *sources, out_dir, "--checkpoint", tiny_checkpoint) == 0
    assert len(calls) == 1
    assert folder_listing(out_dir) == ["img0.tcm", "img1.tcm", "img2.tcm"]
    for i in range(3):
        stream = container.parse((out_dir / f"img{i}.tcm").read_bytes())
        assert (stream.width, stream.height) == (20 + i, 16 + i)

    calls.clear()
    decoded = tmp_path / "decoded"
    assert run_cli("decode", out_dir, decoded, "--checkpoint", tiny_checkpoint) == 0
    assert len(calls) == 1
    assert folder_listing(decoded) == ["img0.png", "img1.png", "img2.png"]
    assert Image.open(decoded / "img2.png").size == (22, 18)


def test_folder_input_encodes_every_image(tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "src"
    src.mkdir()
    write_image(src / "a.png")
    write_image(src / "b.jpg")
    (src / "notes.txt").write_text("not an image")
    assert run_cli("encode", src, tmp_path / "out", "--checkpoint", tiny_checkpoint) == 0
    assert folder_listing(tmp_path / "out") == ["a.tcm", "b.tcm"]
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_two_inputs_with_the_same_output_name_are_refused(tmp_path, tiny_checkpoint, capsys):
    src = tmp_path / "src"
    src.mkdir()
    write_image(src / "a.png")
    write_image(src / "a.jpg")
    status = run_cli("encode", src, tmp_path / "out", "--checkpoint", tiny_checkpoint)
    assert "a.tcm" in user_error(capsys, status)
    assert not (tmp_path / "out").exists()


def test_empty_folder_is_a_user_error(tmp_path, tiny_checkpoint, capsys):
    (tmp_path / "empty").mkdir()
    user_error(capsys, run_cli("encode", tmp_path / "empty", tmp_path / "out", "--checkpoint", tiny_checkpoint))
    user_error(capsys, run_cli("decode", tmp_path / "empty", tmp_path / "out2", "--checkpoint", tiny_checkpoint))


def test_several_inputs_need_an_output_folder(tmp_path, tiny_checkpoint, capsys):
    a, b = write_image(tmp_path / "a.png"), write_image(tmp_path / "b.png")
    status = run_cli("encode", a, b, tmp_path / "out.tcm", "--checkpoint", tiny_checkpoint)
    assert "folder" in user_error(capsys, status)
    assert not (tmp_path / "out.tcm").exists()


# --------------------------------------------------------------------------- real process


def _subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONWARNINGS"] = "ignore"
    return env


def test_real_process_exit_status_and_clean_stderr(tmp_path, image, tiny_checkpoint):
    out = tmp_path / "x.tcm"
    ok = subprocess.run([PYTHON, "-m", "tcmcodec", "encode", str(image), str(out), "--checkpoint",
                         str(tiny_checkpoint), "--threads", "1"],
                        capture_output=True, text=True, env=_subprocess_env(), timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "bpp" in ok.stdout and "Traceback" not in ok.stderr
    assert container.parse(out.read_bytes()).width == 40

    truncated = tmp_path / "cut.tcm"
    truncated.write_bytes(out.read_bytes()[:20])
    bad = subprocess.run([PYTHON, "-m", "tcmcodec", "decode", str(truncated), str(tmp_path / "x.png"),
                          "--checkpoint", str(tiny_checkpoint), "--threads", "1"],
                         capture_output=True, text=True, env=_subprocess_env(), timeout=120)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    assert "truncated" in bad.stderr and len(bad.stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "x.png").exists()


def test_library_errors_give_python_advice_and_the_cli_gives_its_options(tmp_path, capsys):
    """A library user reads what to pass (max_pixels=...); the command line names its option."""
    import numpy as np
    import pytest as _pytest
    from PIL import Image

    from tcmcodec import encode
    from tcmcodec.cli import main
    from tcmcodec.errors import ImageError

    rgb = np.zeros((64, 64, 3), np.uint8)
    with _pytest.raises(ImageError) as caught:
        encode(rgb, None, 10, max_pixels=100)
    assert "max_pixels" in str(caught.value) and "--max-pixels" not in str(caught.value)
    src = tmp_path / "x.png"
    Image.fromarray(rgb).save(src)
    assert main(["encode", str(src), str(tmp_path / "x.tcm"), "--max-pixels", "100"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("raise it with --max-pixels") and "max_pixels" not in err.replace("--max-pixels", "")
