"""Encoder-side latent refinement: it lowers the coded rate-distortion cost, changes neither
the model nor the format, and refuses what it cannot do."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import tcmcodec
from tcmcodec.codec import read_stream
from tcmcodec.errors import TcmError
from tcmcodec import refine
from tcmcodec.refine import lambda_for_rate, refine_latents, refinement_dtype
from tcmcodec.metrics import PIXEL_RANGE

from conftest import make_model, run_cli


def _image(height: int = 128, width: int = 128) -> torch.Tensor:
    """A smooth test image (1, 3, H, W) in [0, 1]."""
    yy, xx = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    return torch.stack([0.5 + 0.4 * torch.sin(6 * xx), 0.5 + 0.4 * torch.cos(5 * yy), xx * yy])[None]


def _coded_cost(model, y, z, rate, x, lmbda) -> float:
    """bits/pixel + lambda * 255^2 * MSE with rounding (eval mode): what coding y, z costs."""
    with torch.no_grad():
        out = model.forward_latents(y, z, rate)
    bits = sum(-lik.log2().sum() for lik in out["likelihoods"].values())
    mse = (out["x_hat"].clamp(0, 1) - x).square().mean()
    return float(bits / (x.shape[-2] * x.shape[-1]) + lmbda * PIXEL_RANGE**2 * mse)


@pytest.mark.parametrize("transform_dtype", [None, torch.bfloat16], ids=["float32", "bfloat16"])
def test_refinement_lowers_the_coded_rate_distortion_cost(transform_dtype):
    model = tcmcodec.load_model(None)  # the bundled weights: a random model has little to gain
    noise = 0.05 * torch.randn(1, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    x = (_image() + noise).clamp(0, 1)
    rate = 4.0
    lmbda = lambda_for_rate(model.config.rate_lambdas, rate)
    torch.manual_seed(0)
    y0, z0 = refine_latents(model, x, rate, 0, lmbda=lmbda)
    y, z = refine_latents(model, x, rate, 20, lmbda=lmbda, transform_dtype=transform_dtype)
    assert not torch.equal(z, z0)  # the side information moves with y
    before = _coded_cost(model, y0, z0, rate, x, lmbda)
    after = _coded_cost(model, y, z, rate, x, lmbda)
    assert after < 0.98 * before, (before, after)  # measured: 4.2-4.3% lower (y alone: 3.3%)


def test_refinement_never_returns_latents_that_code_worse_than_the_analysis():
    model = tcmcodec.load_model(None)
    x = _image()
    rate = 5.0
    lmbda = lambda_for_rate(model.config.rate_lambdas, rate)
    y0, z0 = refine_latents(model, x, rate, 0, lmbda=lmbda)
    plain = _coded_cost(model, y0, z0, rate, x, lmbda)
    for lr in (1e-2, 3.0):  # a step size that wrecks every iterate returns the analysis' latents
        y, z = refine_latents(model, x, rate, 6, lmbda=lmbda, lr=lr)
        assert _coded_cost(model, y, z, rate, x, lmbda) <= plain + 1e-6
    assert torch.equal(y, y0)


def test_the_kept_iterate_is_measured_with_the_likelihoods_the_coder_codes(tiny_vr_model):
    x, rate = _image(), 1.0
    with torch.no_grad():
        y, z = tiny_vr_model.analysis(x, rate)
        y = y + 0.3 * torch.randn_like(y)  # not on the grid, as during a search
        z = z + 0.3 * torch.randn_like(z)
        coded: list[torch.Tensor] = []
        tiny_vr_model.train()  # the search's noisy proxies ...
        tiny_vr_model.forward_latents(y, z, rate, coded)
        tiny_vr_model.eval()  # ... and what the coder codes: rounded z, rounded y
        coding = tiny_vr_model.forward_latents(y, z, rate)["likelihoods"]
    assert len(coded) == 1 + tiny_vr_model.config.num_slices
    torch.testing.assert_close(coded[0], coding["z"])
    torch.testing.assert_close(torch.cat(coded[1:], dim=1), coding["y"])


def test_refinement_leaves_the_weights_and_modes_of_the_model_alone(tiny_vr_model):
    before = {k: v.clone() for k, v in tiny_vr_model.state_dict().items()}
    refine_latents(tiny_vr_model, _image(), 2.0, 3, lmbda=0.064)
    assert not tiny_vr_model.training and not any(m.training for m in tiny_vr_model.modules())
    assert all(torch.equal(before[k], v) for k, v in tiny_vr_model.state_dict().items())
    assert all(p.grad is None for p in tiny_vr_model.parameters())


def test_refinement_restores_the_precision_the_model_had(tiny_vr_model):
    for kept in (None, torch.bfloat16):  # inference, and a model in bfloat16 training
        tiny_vr_model.transform_dtype = kept
        refine_latents(tiny_vr_model, _image(), 1.0, 2, lmbda=0.016, transform_dtype=torch.bfloat16)
        assert tiny_vr_model.transform_dtype is kept
    tiny_vr_model.transform_dtype = None


def test_refinement_uses_bfloat16_only_where_the_cpu_has_it_natively(monkeypatch):
    cpu = torch.device("cpu")
    from tcmcodec import runtime

    monkeypatch.setattr(runtime, "_cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    assert refinement_dtype(cpu) is None
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert refinement_dtype(cpu) is torch.bfloat16
    monkeypatch.setattr(runtime, "_cpu_flags", lambda: frozenset())  # a flags line without bf16
    assert refinement_dtype(cpu) is None


def test_a_refined_file_decodes_with_the_plain_decoder_after_plain_encodes():
    model = make_model("tcm-tiny-vr")  # fresh: its cached window layouts come from inference mode
    rgb = (255 * _image(48, 80)[0].permute(1, 2, 0).numpy()).round().astype(np.uint8)
    plain = tcmcodec.encode(rgb, model, 50)
    refined = tcmcodec.encode(rgb, model, 50, refine=5)
    assert refined != plain
    assert read_stream(refined).quality == 50
    out = np.asarray(tcmcodec.decode(refined, model=model).convert("RGB"))
    assert out.shape == rgb.shape


def test_lambda_for_rate_interpolates_the_table_in_log_lambda():
    table = (0.001, 0.01, 0.1)
    assert lambda_for_rate(table, 0) == pytest.approx(0.001)
    assert lambda_for_rate(table, 2) == pytest.approx(0.1)
    assert lambda_for_rate(table, 0.5) == pytest.approx(math.sqrt(0.001 * 0.01))
    with pytest.raises(TcmError, match="outside"):
        lambda_for_rate(table, 2.5)
    with pytest.raises(TcmError, match="fixed-rate"):
        lambda_for_rate((), 0)


def test_a_fixed_rate_model_needs_an_explicit_refinement_lambda(tiny_model):
    rgb = np.full((32, 32, 3), 100, np.uint8)
    with pytest.raises(TcmError, match="single rate: give the refinement lambda"):
        tcmcodec.encode(rgb, tiny_model, refine=2)
    assert tcmcodec.decode(tcmcodec.encode(rgb, tiny_model, refine=2, refine_lambda=0.013), model=tiny_model)


def test_cli_refuses_a_negative_refinement_with_one_line(tmp_path, capsys, tiny_vr_checkpoint):
    from PIL import Image

    src = tmp_path / "a.png"
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(src)
    assert run_cli("encode", src, tmp_path / "a.tcm", "--checkpoint", tiny_vr_checkpoint, "--refine", "-2") == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--refine" in err[0]
    assert run_cli("encode", src, tmp_path / "b.tcm", "--checkpoint", tiny_vr_checkpoint, "--refine", "2") == 0
    assert run_cli("decode", tmp_path / "b.tcm", tmp_path / "b.png", "--checkpoint", tiny_vr_checkpoint) == 0


def test_non_finite_latents_are_refused_before_entropy_coding(tiny_vr_model):
    y, z = refine_latents(tiny_vr_model, _image(), 1.0, 0, lmbda=0.016)
    y[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="not finite"):
        tiny_vr_model.compress_analysis(y, z, 1.0)
