"""Rate control (tcmcodec.ratecontrol, `tcm encode --size/--bpp/--psnr`)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli
from tcmcodec.codec import decode, encode_image, load_model
from tcmcodec.errors import TcmError
from tcmcodec.metrics import psnr
from tcmcodec.ratecontrol import Target, encode_to_target, last_below, parse_size


def photo_like(height: int = 96, width: int = 128, seed: int = 0) -> np.ndarray:
    """Smooth shading, edges and some texture: an image whose size and PSNR grow with quality
    under a trained model."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([128 + 80 * np.sin(xx / 17 + c) * np.cos(yy / 23 - c) for c in range(3)], axis=-1)
    base[height // 3: 2 * height // 3, width // 4: width // 2] += 60
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def bundled():
    return load_model()


# ------------------------------------------------------------------ the search
@pytest.mark.parametrize("name,measure", [
    ("linear", lambda q: 3.0 * q + 7),
    ("concave", lambda q: 25 + 6 * (1 - math.exp(-q / 40))),
    ("steep", lambda q: math.exp(q / 10)),
    ("steps", lambda q: q // 10),
])
def test_last_below_finds_the_same_quality_as_trying_all(name, measure):
    values = [measure(q) for q in range(101)]
    for target in np.linspace(min(values) - 1, max(values) + 1, 57):
        for strict in (False, True):
            calls: list[int] = []

            def counted(q: int) -> float:
                calls.append(q)
                return measure(q)

            expected = max((q for q in range(101) if (values[q] < target if strict else values[q] <= target)),
                           default=-1)
            assert last_below(counted, target, strict=strict) == expected
            assert len(calls) == len(set(calls)), "a quality was measured twice"
            assert len(calls) <= 23


def test_last_below_is_exact_and_bounded_on_random_monotone_measures():
    rng = np.random.default_rng(0)
    for trial in range(300):
        kind = trial % 3  # plateaus and jumps, near-linear, very uneven steps
        steps = (rng.random(101) < 0.1).astype(float) if kind == 0 else rng.exponential(1, 101) ** (1 + 3 * kind)
        values = np.cumsum(steps)
        for target in rng.uniform(values[0] - 1, values[-1] + 1, 5):
            calls: list[int] = []
            found = last_below(lambda q: calls.append(q) or values[q], target)
            assert found == max((q for q in range(101) if values[q] <= target), default=-1)
            assert len(calls) <= 23


def test_last_below_needs_few_trials_for_a_near_linear_measure():
    counts = []
    for target in np.linspace(10, 300, 40):
        calls: list[int] = []
        last_below(lambda q: calls.append(q) or 3.0 * q + 7, target)
        counts.append(len(calls))
    assert max(counts) <= 5  # both ends, one interpolation, at most two neighbours


# ------------------------------------------------------------------ targets
@pytest.mark.parametrize("text,size", [("20000", 20000), ("20k", 20000), ("20kB", 20000), ("20KiB", 20480),
                                       ("1.5M", 1500000), ("2MiB", 2 * 1024**2), (" 300 b ", 300)])
def test_parse_size_reads_bytes_and_units(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "k", "20x", "-5", "0", "0.0001k", "1e3"])
def test_parse_size_refuses_what_is_not_a_size(text):
    with pytest.raises(TcmError):
        parse_size(text)


@pytest.mark.parametrize("kwargs", [{}, {"max_bytes": 10, "min_psnr": 30.0}, {"max_bytes": 0},
                                    {"max_bpp": -1.0}, {"min_psnr": math.nan}, {"max_bytes": 1.5}])
def test_target_needs_exactly_one_positive_value(kwargs):
    with pytest.raises(TcmError):
        Target(**kwargs)


# ------------------------------------------------------------------ encoding
def test_size_budget_gives_the_highest_quality_that_fits(bundled):
    rgb = photo_like()
    sizes = {q: len(encode_image(rgb, bundled, q).data) for q in (30, 70)}
    budget = (sizes[30] + sizes[70]) // 2
    result = encode_to_target(rgb, Target(max_bytes=budget), bundled)
    assert result.met and len(result.data) <= budget
    assert 30 <= result.quality < 70
    assert len(encode_image(rgb, bundled, result.quality + 1).data) > budget
    assert result.data == encode_image(rgb, bundled, result.quality).data  # the same file


def test_bpp_budget_is_the_size_budget_per_pixel(bundled):
    rgb = photo_like()
    height, width = rgb.shape[:2]
    budget = len(encode_image(rgb, bundled, 50).data)
    by_bpp = encode_to_target(rgb, Target(max_bpp=8 * budget / (height * width)), bundled)
    assert by_bpp.quality == encode_to_target(rgb, Target(max_bytes=budget), bundled).quality >= 50


def test_psnr_target_gives_the_lowest_quality_that_reaches_it(bundled):
    rgb = photo_like()
    low, high = (psnr(rgb, np.asarray(decode(encode_image(rgb, bundled, q).data, bundled))) for q in (20, 80))
    goal = (low + high) / 2
    result = encode_to_target(rgb, Target(min_psnr=goal), bundled)
    decoded = np.asarray(decode(result.data, bundled))
    assert result.met and result.psnr == psnr(rgb, decoded) >= goal
    below = np.asarray(decode(encode_image(rgb, bundled, result.quality - 1).data, bundled))
    assert psnr(rgb, below) < goal


def test_grey_image_psnr_is_measured_on_its_one_plane(bundled):
    grey = photo_like()[..., 1]
    result = encode_to_target(grey, Target(min_psnr=20.0), bundled)
    decoded = decode(result.data, bundled)
    assert decoded.mode == "L"
    error = np.mean((grey.astype(np.float64) - np.asarray(decoded)) ** 2)
    assert result.psnr == pytest.approx(10 * math.log10(255**2 / error), abs=1e-9)


def test_unreachable_targets_code_the_nearest_end_and_say_so(bundled):
    rgb = photo_like()
    tiny = encode_to_target(rgb, Target(max_bytes=10), bundled)
    assert (tiny.quality, tiny.met) == (0, False)
    sharp = encode_to_target(rgb, Target(min_psnr=99.0), bundled)
    assert (sharp.quality, sharp.met) == (100, False) and sharp.psnr < 99


def test_fixed_rate_model_refuses_a_target(tiny_model):
    with pytest.raises(TcmError, match="single rate"):
        encode_to_target(photo_like(64, 64), Target(max_bytes=1000), tiny_model)


def test_analysis_transform_once_gives_the_bytes_of_a_full_encode(tiny_vr_model):
    rgb = photo_like(64, 64)
    result = encode_to_target(rgb, Target(max_bpp=100.0), tiny_vr_model)  # everything fits: quality 100
    assert result.quality == 100 and result.data == encode_image(rgb, tiny_vr_model, 100).data


def test_tiled_images_give_the_same_file_and_the_decoded_psnr(monkeypatch, tiny_vr_model):
    from tcmcodec import codec
    from tcmcodec.tiling import TilePlan

    monkeypatch.setattr(codec, "plan_for", lambda width, align: TilePlan(tile=128, halo=128, threshold=0))
    rgb = photo_like(256, 192)
    result = encode_to_target(rgb, Target(min_psnr=1.0), tiny_vr_model)  # random weights: any PSNR
    assert result.data == encode_image(rgb, tiny_vr_model, result.quality).data
    assert result.psnr == psnr(rgb, np.asarray(decode(result.data, tiny_vr_model)))


# ------------------------------------------------------------------ command line
def test_cli_size_writes_a_file_within_the_budget_and_reports_it(tmp_path, capsys):
    src = tmp_path / "photo.png"
    Image.fromarray(photo_like()).save(src)
    dst = tmp_path / "photo.tcm"
    assert run_cli("encode", src, dst, "--size", "1.2k", "--json") == 0
    record = json.loads(capsys.readouterr().out)
    assert record["bytes"] == dst.stat().st_size <= 1200
    assert record["met"] is True and record["target"] == "at most 1200 bytes"


@pytest.mark.parametrize("extra,message", [
    (["--size", "2k", "-q", "50"], "drop -q"),
    (["--psnr", "30", "--refine", "3"], "cannot be combined with --refine"),
    (["--size", "lots"], "is not a size"),
    (["--bpp", "0"], "positive"),
])
def test_cli_refuses_bad_target_options_in_one_line(tmp_path, capsys, extra, message):
    src = tmp_path / "photo.png"
    Image.fromarray(photo_like(32, 32)).save(src)
    assert run_cli("encode", src, tmp_path / "out.tcm", *extra) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out.tcm").exists()


def test_cli_warns_when_the_budget_cannot_be_met(tmp_path, capsys):
    src = tmp_path / "photo.png"
    Image.fromarray(photo_like()).save(src)
    assert run_cli("encode", src, tmp_path / "out.tcm", "--size", "10") == 0
    assert "no quality gives at most 10 bytes; coded at quality 0" in capsys.readouterr().err

