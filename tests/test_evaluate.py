"""Tests of the rate-distortion evaluation (tcmcodec.evaluate, `tcm eval`, `tcm compare`)."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tcmcodec.cli import main as cli_main
from tcmcodec.errors import TcmError
from tcmcodec import metrics
from tcmcodec.evaluate import bdrate, runner
from tcmcodec.evaluate.codecs import JpegCodec, get_codec, parse_qualities

from conftest import KODAK, SHARED

ANCHORS = SHARED / "data" / "anchors" / "compressai-results" / "image" / "kodak"


def _synthetic(h: int, w: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255.0 / w, yy * 255.0 / h, (xx + yy) * 127.0 / (h + w) + 60], -1)
    base += 25 * np.sin(xx / 7.0 + seed)[..., None] + rng.normal(0, 8, (h, w, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


def _small_images(h: int, w: int) -> list[np.ndarray]:
    """Two crops of Kodak images (top-left h x w), or synthetic images when Kodak is missing."""
    names = ["kodim01.png", "kodim23.png"]
    if all((KODAK / n).exists() for n in names):
        return [np.asarray(Image.open(KODAK / n).convert("RGB"))[:h, :w].copy() for n in names]
    return [_synthetic(h, w, s) for s in (1, 2)]


def _write_dataset(folder: Path, images: list[np.ndarray]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, a in enumerate(images):
        p = folder / f"img{i}.png"
        Image.fromarray(a).save(p)
        paths.append(p)
    return paths


@pytest.fixture
def small_dataset(tmp_path) -> list[Path]:
    """2 images of 176x192: large enough for MS-SSIM (>= 161 px)."""
    return _write_dataset(tmp_path / "small", _small_images(176, 192))


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    """2 images of 48x64: too small for MS-SSIM."""
    folder = tmp_path / "tiny"
    _write_dataset(folder, _small_images(48, 64))
    return folder


# --------------------------------------------------------------------------------------------
# metrics


def test_psnr_matches_hand_formula_and_is_inf_for_identical_images():
    a = _synthetic(32, 40, 0)
    b = a.copy()
    b[0, 0, 0] ^= 8
    assert metrics.psnr(a, a) == math.inf
    mse = 64.0 / a.size
    assert metrics.psnr(a, b) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-12)


def test_ms_ssim_is_nan_below_161_pixels_and_one_for_identical_images():
    a = _synthetic(170, 180, 0)
    assert math.isnan(metrics.ms_ssim(a[:160], a[:160]))
    assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)


# --------------------------------------------------------------------------------------------
# runner: JPEG numbers against an independent computation


def test_runner_jpeg_numbers_match_independent_pillow_and_numpy(small_dataset, tmp_path):
    from pytorch_msssim import ms_ssim as ref_ms_ssim
    import torch

    qualities = [15, 60]
    res = runner.run_evaluation(small_dataset, [JpegCodec()], tmp_path / "out", {"jpeg": qualities}, progress=False)
    data = json.loads((tmp_path / "out" / "jpeg.json").read_text())
    assert data == json.loads(json.dumps(res.results["jpeg"]))  # file == returned dict
    rows = {(r["image"], r["quality"]): r for r in data["per_image"]}
    assert len(rows) == 4

    for q_index, q in enumerate(qualities):
        bpps, psnrs = [], []
        for p in small_dataset:
            a = np.asarray(Image.open(p).convert("RGB"))
            buf = io.BytesIO()
            Image.fromarray(a).save(buf, "JPEG", quality=q, subsampling="4:2:0", optimize=True)
            n = len(buf.getvalue())
            rec = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
            bpp = 8.0 * n / (a.shape[0] * a.shape[1])
            mse = np.mean((a.astype(np.float64) - rec.astype(np.float64)) ** 2)
            psnr = 10 * np.log10(255.0**2 / mse)
            t = lambda x: torch.from_numpy(x.astype(np.float32)).permute(2, 0, 1)[None]  # noqa: E731
            msssim = float(ref_ms_ssim(t(a), t(rec), data_range=255))

            row = rows[(p.name, q)]
            assert row["bytes"] == n
            assert row["bpp"] == pytest.approx(bpp, rel=1e-12)
            assert row["psnr-rgb"] == pytest.approx(psnr, abs=1e-9)
            assert row["ms-ssim-rgb"] == pytest.approx(msssim, abs=1e-5)
            assert row["encoding_time"] >= 0 and row["decoding_time"] >= 0
            bpps.append(bpp)
            psnrs.append(psnr)
        # dataset means: qualities are sorted by bpp, here the same order as the qualities
        assert data["results"]["quality"][q_index] == q
        assert data["results"]["bpp"][q_index] == pytest.approx(np.mean(bpps), rel=1e-12)
        assert data["results"]["psnr-rgb"][q_index] == pytest.approx(np.mean(psnrs), abs=1e-9)
    assert data["complete"] is True
    assert data["settings"]["chroma_subsampling"] == "4:2:0"
    assert "pillow" in data["settings"]


def test_process_pool_gives_the_same_sizes_and_psnr_as_serial_run(small_dataset, tmp_path):
    serial = runner.run_evaluation(small_dataset, [JpegCodec()], tmp_path / "a", {"jpeg": [30]}, progress=False)
    pooled = runner.run_evaluation(small_dataset, [JpegCodec()], tmp_path / "b", {"jpeg": [30]}, workers=2, progress=False)
    key = lambda r: r["image"]  # noqa: E731
    s = sorted(serial.results["jpeg"]["per_image"], key=key)
    p = sorted(pooled.results["jpeg"]["per_image"], key=key)
    assert [(r["bytes"], r["psnr-rgb"]) for r in s] == [(r["bytes"], r["psnr-rgb"]) for r in p]


# --------------------------------------------------------------------------------------------
# interrupted runs


class _InterruptingJpeg(JpegCodec):
    """JPEG that behaves like Ctrl-C on its ``stop_at``-th encode."""

    def __init__(self, stop_at: int | None):
        self.stop_at = stop_at
        self.calls = 0

    def encode(self, rgb, quality):
        self.calls += 1
        if self.stop_at is not None and self.calls == self.stop_at:
            raise KeyboardInterrupt
        return super().encode(rgb, quality)


def test_interrupted_run_keeps_finished_rows_and_resume_completes_it(small_dataset, tmp_path):
    out = tmp_path / "out"
    codec = _InterruptingJpeg(stop_at=4)  # 2 images x 3 qualities; dies on the 4th image
    with pytest.raises(KeyboardInterrupt):
        runner.run_evaluation(small_dataset, [codec], out, {"jpeg": [20, 50, 80]}, progress=False)
    rows = [json.loads(line) for line in (out / "jpeg.rows.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    data = json.loads((out / "jpeg.json").read_text())
    assert data["complete"] is False
    assert len(data["per_image"]) == 3
    assert data["results"]["quality"] == [20]  # only the finished quality has a mean
    assert len(data["results"]["bpp"]) == 1

    again = _InterruptingJpeg(stop_at=None)
    res = runner.run_evaluation(small_dataset, [again], out, {"jpeg": [20, 50, 80]}, progress=False, resume=True)
    assert again.calls == 3  # only the missing rows were encoded
    assert res.results["jpeg"]["complete"] is True
    assert res.results["jpeg"]["results"]["quality"] == [20, 50, 80]


# --------------------------------------------------------------------------------------------
# missing libraries


def test_codec_with_missing_library_is_reported_and_skipped(small_dataset, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # import pillow_heif -> ImportError
    heic = get_codec("heic")
    assert not heic.available()
    assert "pillow-heif" in heic.unavailable_reason()
    messages = []
    res = runner.run_evaluation(
        small_dataset, [heic, JpegCodec()], tmp_path / "out", {"jpeg": [50]}, progress=False, log=messages.append
    )
    assert "heic" in res.skipped and "pillow-heif" in res.skipped["heic"]
    assert any("skipping heic" in m for m in messages)
    assert list(res.results) == ["jpeg"]
    assert not (tmp_path / "out" / "heic.json").exists()


def test_eval_cli_reports_missing_codec_and_still_writes_the_others(tiny_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "pillow_jxl", None)
    out = tmp_path / "out"
    rc = cli_main(["eval", str(tiny_dataset), "--codecs", "jpeg,jxl", "--qualities", "jpeg=20,60", "--out", str(out), "--no-progress"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "skipping jxl: pillow-jxl-plugin is not installed" in err
    assert "skipped jxl" in (out / "bdrate.md").read_text()
    assert (out / "jpeg.json").exists() and not (out / "jxl.json").exists()


# --------------------------------------------------------------------------------------------
# BD-rate


RATES = [0.12, 0.25, 0.5, 0.9, 1.5]
PSNRS = [26.0, 29.0, 32.0, 35.0, 38.0]


def test_bd_rate_of_a_curve_against_itself_is_zero():
    v = bdrate.bd_rate(RATES, PSNRS, RATES, PSNRS)
    assert v.ok and v.value == pytest.approx(0.0, abs=1e-9)


def test_bd_rate_with_ten_percent_fewer_bits_at_every_psnr_is_minus_ten_percent():
    v = bdrate.bd_rate(RATES, PSNRS, [0.9 * r for r in RATES], PSNRS)
    assert v.ok and v.value == pytest.approx(-10.0, abs=1e-6)
    worse = bdrate.bd_rate(RATES, PSNRS, [1.25 * r for r in RATES], PSNRS)
    assert worse.value == pytest.approx(25.0, abs=1e-6)


def test_barely_overlapping_curves_are_reported_as_insufficient_overlap():
    test_psnr = [36.5, 38.0, 40.0, 42.0, 44.0]  # overlaps 26..38 on 36.5..38: 1.5 / 18 < 20%
    v = bdrate.bd_rate(RATES, PSNRS, [1.2, 1.6, 2.2, 3.0, 4.0], test_psnr)
    assert not v.ok and v.value is None
    assert v.status == bdrate.INSUFFICIENT_OVERLAP
    assert str(v).startswith("insufficient overlap")
    disjoint = bdrate.bd_rate(RATES, PSNRS, [2, 3, 4], [40, 42, 44])
    assert disjoint.status == bdrate.INSUFFICIENT_OVERLAP
    # the same pair at 30% overlap gives a number
    ok = bdrate.bd_rate(RATES, PSNRS, [0.6, 0.9, 1.5, 2.2], [33.0, 35.0, 38.0, 41.0])
    assert ok.ok and 0.3 < ok.overlap < 0.6


def test_bd_table_marks_the_anchor_and_prints_insufficient_overlap():
    a = bdrate.Curve("A", RATES, PSNRS, None)
    b = bdrate.Curve("B", [1.2, 1.6, 2.2, 3.0, 4.0], [36.5, 38.0, 40.0, 42.0, 44.0], None)
    md = bdrate.format_markdown(bdrate.bd_table([a, b], a), "A")
    assert "| A (anchor) |" in md
    assert "insufficient overlap" in md


@pytest.mark.skipif(not ANCHORS.is_dir(), reason="the CompressAI anchors of ../shared/data are not here")
def test_compressai_anchor_json_is_read_and_vtm_beats_jpeg():
    vtm = bdrate.Curve.from_file(ANCHORS / "vtm.json")
    jpeg = bdrate.Curve.from_file(ANCHORS / "jpeg.json")
    assert vtm.name == "VTM" and vtm.kind == "reference"
    assert len(vtm.bpp) == len(vtm.psnr) == len(vtm.msssim) == 8
    assert 0.0 < min(vtm.msssim) < max(vtm.msssim) < 1.0
    v = bdrate.curve_bd_rate(jpeg, vtm, "psnr")
    assert v.ok and -80.0 < v.value < -40.0
    # a paper curve with MS-SSIM given in dB only
    elic = ANCHORS / "paper-elic2022_ms-ssim.json"
    if elic.exists():
        c = bdrate.Curve.from_file(elic)
        assert c.psnr is None and c.msssim is not None and all(0.8 < m < 1 for m in c.msssim)


# --------------------------------------------------------------------------------------------
# CLI end to end


def test_eval_cli_end_to_end_writes_compressai_json_bdrate_table_and_plot(tiny_dataset, tmp_path, capsys):
    ref = tmp_path / "ref.json"
    ref.write_text(json.dumps({"name": "Ref", "results": {"bpp": [0.3, 0.8, 2.0, 4.0], "psnr-rgb": [27, 31, 36, 41]}}))
    out = tmp_path / "out"
    rc = cli_main(
        [
            "eval", str(tiny_dataset), "--codecs", "jpeg,webp",
            "--qualities", "jpeg=10,30,60,90;webp=10,30,60,90",
            "--reference", str(ref), "--anchor", "jpeg", "--out", str(out), "--no-progress",
        ]
    )  # fmt: skip
    assert rc == 0
    stdout = capsys.readouterr().out
    for name in ("jpeg", "webp"):
        data = json.loads((out / f"{name}.json").read_text())
        assert set(data) >= {"name", "description", "results", "settings", "per_image"}
        res = data["results"]
        assert set(res) >= {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time", "decoding_time", "quality"}
        assert len(res["bpp"]) == 4 and res["bpp"] == sorted(res["bpp"])
        assert res["ms-ssim-rgb"] == [None] * 4  # 48x64 is below MS-SSIM's minimum size
        assert len(data["per_image"]) == 8
    table = (out / "bdrate.md").read_text()
    assert "| JPEG (anchor) |" in table and "| WebP |" in table and "| Ref |" in table
    assert "BD-rate PSNR" in stdout
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_cli_user_errors_are_one_line_and_exit_1(tiny_dataset, tmp_path, capsys):
    assert cli_main(["eval", str(tiny_dataset), "--codecs", "jpeg,nosuch", "--out", str(tmp_path / "o")]) == 1
    assert "unknown codec 'nosuch'" in capsys.readouterr().err
    assert cli_main(["eval", str(tmp_path / "missing"), "--codecs", "jpeg", "--out", str(tmp_path / "o")]) == 1
    assert "dataset not found" in capsys.readouterr().err
    assert cli_main(["eval", str(tiny_dataset), "--codecs", "jpeg", "--anchor", "vtm", "--out", str(tmp_path / "o")]) == 1
    assert "--anchor" in capsys.readouterr().err


def test_qualities_syntax_per_codec_alias_and_bare_list():
    names = ["jpeg", "webp", "jpeg2000", "tcm:foo"]
    q = parse_qualities("jpeg=10,20;j2k=0.25,1;tcm=1,2", names)
    assert q == {"jpeg": [10, 20], "jpeg2000": [0.25, 1], "tcm:foo": [1, 2]}
    assert parse_qualities("5,6", ["webp"]) == {"webp": [5, 6]}
    with pytest.raises(TcmError):
        parse_qualities("5,6", ["webp", "jpeg"])
    with pytest.raises(TcmError):
        parse_qualities("avif=50", ["webp"])
    assert parse_qualities("tcm:checkpoint=/x/y=z.pt=3", ["tcm:checkpoint=/x/y=z.pt"]) == {"tcm:checkpoint=/x/y=z.pt": [3]}


# --------------------------------------------------------------------------------------------
# classical codecs and the TCM adapter


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif", "jxl", "heic", "jpeg2000"])
def test_every_registry_codec_round_trips_and_records_settings(name):
    codec = get_codec(name)
    if not codec.available():
        pytest.skip(codec.unavailable_reason())
    a = _synthetic(40, 56, 3)
    q = codec.default_qualities[len(codec.default_qualities) // 2]
    rec = codec.decode(codec.encode(a, q))
    assert rec.shape == a.shape and rec.dtype == np.uint8
    assert metrics.psnr(a, rec) > 20
    s = codec.settings
    assert s["codec"] == name and "chroma_subsampling" in s and 6 <= len(codec.default_qualities) <= 9


@pytest.mark.parametrize("name", ["jpeg", "webp", "avif", "jxl", "jpeg2000"])
def test_recorded_settings_are_the_options_pillow_is_given(name, monkeypatch):
    """The results record what the encoder was asked for: each recorded option of a Pillow codec
    is the value passed to ``Image.save``, and the quality enters the save options."""
    from PIL import Image as PilImage

    from tcmcodec.evaluate.classical import PillowCodec

    codec = get_codec(name)
    assert isinstance(codec, PillowCodec)
    if not codec.available():
        pytest.skip(codec.unavailable_reason())
    calls = []
    monkeypatch.setattr(PilImage.Image, "save", lambda self, fp, fmt=None, **options: calls.append((fmt, options)))
    codec.encode(_synthetic(16, 16, 3), codec.default_qualities[2])
    (fmt, options), = calls
    assert fmt == codec.format.pil_format
    settings = codec.settings
    for key, option in codec.format.recorded_options.items():
        assert settings[key] == options[option], key
    assert set(codec.format.quality_options(codec.default_qualities[2])) <= set(options)
    assert codec.description.startswith(codec.label + " (")


class _FakeTcmApi:
    """Stands in for tcmcodec.encode/decode/zoo: JPEG underneath, records the calls."""

    def __init__(self):
        self.calls = []

    def encode(self, image, model=None, quality=None):
        self.calls.append(("encode", model, quality))
        buf = io.BytesIO()
        Image.fromarray(np.asarray(image)).save(buf, "JPEG", quality=10 * quality)
        return buf.getvalue()

    def decode(self, data, model=None):
        self.calls.append(("decode", model))
        return Image.open(io.BytesIO(data))


def test_tcm_adapter_calls_the_public_api_with_model_and_quality(monkeypatch, small_dataset, tmp_path):
    import types

    import tcmcodec

    fake = _FakeTcmApi()
    monkeypatch.setattr(tcmcodec, "encode", fake.encode, raising=False)
    monkeypatch.setattr(tcmcodec, "decode", fake.decode, raising=False)
    zoo = types.SimpleNamespace(get_entry=lambda name: types.SimpleNamespace(qualities=[2, 5, 8]))
    monkeypatch.setattr(tcmcodec, "zoo", zoo, raising=False)
    monkeypatch.setitem(sys.modules, "tcmcodec.zoo", zoo)
    codec = get_codec("tcm:fake-model")
    assert codec.available() and codec.is_learned
    assert codec.default_qualities == (2, 5, 8)
    res = runner.run_evaluation(small_dataset, [codec], tmp_path / "out", progress=False)
    data = res.results["tcm:fake-model"]
    assert data["results"]["quality"] == [2, 5, 8] and data["learned"] is True
    assert ("encode", "fake-model", 5) in fake.calls and ("decode", "fake-model") in fake.calls
    assert (tmp_path / "out" / "tcm-fake-model.json").exists()


def test_tcm_spec_with_refinement_encodes_refined_and_names_it(monkeypatch):
    import tcmcodec

    seen = {}

    def encode(image, **kw):
        seen.update(kw)
        return b"x"

    monkeypatch.setattr(tcmcodec, "encode", encode)
    codec = get_codec("tcm:checkpoint=/w/a+b.pt+refine=7")
    assert (codec.checkpoint, codec.refine) == ("/w/a+b.pt", 7)
    assert codec.name == "tcm:checkpoint=/w/a+b.pt+refine=7" and "refined 7" in codec.label
    assert codec.settings["refine_steps"] == 7
    codec._loaded = "model"
    codec.encode(np.zeros((8, 8, 3), np.uint8), 3)
    assert seen == {"model": "model", "refine": 7, "quality": 3}
    assert get_codec("tcm:m").refine == 0 and get_codec("tcm:m").settings["refine_steps"] == 0
    for bad in ("tcm:m+refine=x", "tcm:m+refine=-2", "tcm:m+refine-lambda=0.01",
                "tcm:m+refine=3+refine-lambda=x", "tcm:m+refine=3+refine-lambda=-1"):
        with pytest.raises(TcmError, match="refine"):
            get_codec(bad)


def test_tcm_spec_refinement_lambda_reaches_the_encoder_in_either_order(monkeypatch):
    import tcmcodec

    seen = {}
    monkeypatch.setattr(tcmcodec, "encode", lambda image, **kw: seen.update(kw) or b"x")
    for spec in ("tcm:checkpoint=/w/a+b.pt+refine=7+refine-lambda=0.013",
                 "tcm:checkpoint=/w/a+b.pt+refine-lambda=0.013+refine=7"):
        codec = get_codec(spec)
        assert (codec.checkpoint, codec.refine, codec.refine_lambda) == ("/w/a+b.pt", 7, 0.013)
        assert codec.name == "tcm:checkpoint=/w/a+b.pt+refine=7+refine-lambda=0.013"
        assert "lambda 0.013" in codec.label and codec.settings["refine_lambda"] == 0.013
        codec._loaded = "model"
        codec.encode(np.zeros((8, 8, 3), np.uint8), None)
        assert seen == {"model": "model", "refine": 7, "refine_lambda": 0.013}


def test_tcm_codec_round_trips_with_the_real_api(small_dataset):
    import tcmcodec

    from tcmcodec import zoo

    codec = get_codec(f"tcm:{zoo.default_entry().name}")
    assert codec.available(), codec.unavailable_reason()
    a = np.asarray(Image.open(small_dataset[0]).convert("RGB"))
    q = codec.default_qualities[0]
    row = runner.measure(codec, q, a, "img")
    assert row["bpp"] > 0 and row["psnr-rgb"] > 15


# --------------------------------------------------------------------------------------------
# compare figure


def test_compare_picks_qualities_near_the_target_bpp_and_writes_a_png(small_dataset, tmp_path, capsys):
    out = tmp_path / "cmp.png"
    rc = cli_main(
        ["compare", str(small_dataset[0]), "--model", "none", "--bpp", "0.8", "--codecs", "jpeg,webp", "--crop", "10,20,96,64", "--out", str(out)]
    )
    assert rc == 0 and out.read_bytes()[:4] == b"\x89PNG"
    lines = [line for line in capsys.readouterr().out.splitlines() if "bpp" in line]
    assert len(lines) == 2
    for line in lines:
        bpp = float(line.split("bpp")[0].split()[-1])
        assert 0.5 < bpp < 1.2  # a quality step is coarse on a small image, but the search lands near
    assert cli_main(["compare", str(small_dataset[0]), "--model", "none", "--bpp", "1", "--crop", "0,0,999,10", "--out", str(out)]) == 1


def test_compare_matches_a_bpp_with_any_quality_of_a_variable_rate_tcm(small_dataset):
    from tcmcodec.evaluate.compare import match_bpp

    codec = get_codec("tcm:tcm-cpu-mse")
    assert codec.quality_bounds == (0, 100)
    rgb = np.asarray(Image.open(small_dataset[0]).convert("RGB"))

    def bpp(q: int) -> float:
        return metrics.bpp(len(codec.encode(rgb, q)), *rgb.shape[:2])

    target = (bpp(40) + bpp(60)) / 2
    match = match_bpp(codec, rgb, target)
    assert 40 <= match.quality <= 60 and match.bpp == bpp(match.quality)
    # no neighbouring quality is closer to the target
    assert all(abs(match.bpp - target) <= abs(bpp(q) - target) for q in (match.quality - 1, match.quality + 1))


def test_checkpoint_spec_sweeps_a_variable_rate_models_trained_levels(tiny_vr_checkpoint, tiny_checkpoint):
    from tcmcodec.zoo import level_qualities

    variable = get_codec(f"tcm:checkpoint={tiny_vr_checkpoint}")
    levels = variable._model_object().config.rate_levels
    assert levels > 1 and variable.default_qualities == level_qualities(levels)
    assert get_codec(f"tcm:checkpoint={tiny_checkpoint}").default_qualities == (None,)
