"""Widening a trained model (Net2WiderNet): the wide model computes what the narrow one did,
its duplicated channels are free to diverge in training, and bad requests are refused."""

from __future__ import annotations

import pytest
import torch

from tcmcodec.checkpoints import load_checkpoint
from tcmcodec.config import PRESETS, get_preset
from tcmcodec.model import TCM
from tcmcodec.widen import WideningError, widen_model, widened_config

from conftest import make_model, run_cli


def _trained_like(preset: str = "tcm-tiny-vr") -> TCM:
    """A random model moved off its initialisation (GDN, LayerNorm, biases not at defaults)."""
    model = make_model(preset, seed=3)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn(param.shape, generator=generator))
    return model


def test_widened_model_gives_the_narrow_models_outputs():
    narrow = _trained_like()
    wide = widen_model(narrow, noise=0.1).eval()
    assert wide.config.N == 2 * narrow.config.N
    x = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for level in (0.0, 1.5):
            expected, got = narrow(x, level), wide(x, level)
            torch.testing.assert_close(got["x_hat"], expected["x_hat"], atol=2e-5, rtol=0)
            for key in ("y", "z"):
                torch.testing.assert_close(got["likelihoods"][key], expected["likelihoods"][key],
                                           atol=2e-5, rtol=1e-4)


def test_duplicated_channels_differ_so_training_can_separate_them():
    narrow = _trained_like()
    wide = widen_model(narrow, noise=0.1)
    weight = wide.g_s[1].conv1_1.weight  # 1x1 conv whose input width doubled
    assert not torch.equal(weight[:, 0::2], weight[:, 1::2])
    exact = widen_model(narrow, noise=0.0)
    weight = exact.g_s[1].conv1_1.weight
    assert torch.equal(weight[:, 0::2], weight[:, 1::2])
    assert torch.equal(weight[0::2], weight[1::2])  # outputs duplicated too


def test_widening_requires_doubled_width_and_head_sizes():
    narrow = make_model("tcm-tiny-vr")
    with pytest.raises(WideningError, match="N and the head sizes doubled"):
        widen_model(narrow, narrow.config.replace(N=2 * narrow.config.N))
    with pytest.raises(WideningError, match="differs in M"):
        widen_model(narrow, widened_config(narrow.config).replace(M=80))


def test_bundled_wide_preset_is_the_widened_cpu_preset():
    assert widened_config(PRESETS["tcm-cpu"], "tcm-cpu-wide") == PRESETS["tcm-cpu-wide"]


def test_cli_widen_writes_weights_that_load_and_match(tmp_path, tiny_vr_checkpoint, capsys):
    out = tmp_path / "wide.pt"
    assert run_cli("widen", tiny_vr_checkpoint, out) == 0
    assert "N=16" in capsys.readouterr().out
    wide = load_checkpoint(out)
    assert wide.config == widened_config(get_preset("tcm-tiny-vr"), wide.config.name)
    narrow = load_checkpoint(tiny_vr_checkpoint)
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(wide.g_a(x), narrow.g_a(x), atol=2e-5, rtol=0)


def test_cli_widen_into_an_unrelated_preset_is_one_line_error(tmp_path, tiny_vr_checkpoint, capsys):
    assert run_cli("widen", tiny_vr_checkpoint, tmp_path / "x.pt", "--model", "tcm-s") == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot widen tcm-tiny-vr into tcm-s" in err
    assert not (tmp_path / "x.pt").exists()


def test_widening_fp16_weights_gives_float32_and_leaves_the_narrow_model_alone():
    narrow = _trained_like().half()
    wide = widen_model(narrow)
    assert {p.dtype for p in wide.parameters()} == {torch.float32}
    assert {p.dtype for p in narrow.parameters()} == {torch.float16}


def test_analysis_only_widening_keeps_outputs_and_leaves_the_decoder_untouched():
    narrow = _trained_like()
    wide = widen_model(narrow, noise=0.1, analysis_only=True).eval()
    assert (wide.config.N, wide.config.analysis_half_width) == (narrow.config.N, 2 * narrow.config.N)
    assert wide.g_a[0].conv1.weight.shape[0] == 2 * narrow.g_a[0].conv1.weight.shape[0]
    wide_params = dict(wide.named_parameters())
    for key, value in narrow.named_parameters():
        if not key.startswith("g_a."):
            assert torch.equal(wide_params[key], value), key
    x = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for level in (0.0, 1.5):
            expected, got = narrow(x, level), wide(x, level)
            torch.testing.assert_close(got["x_hat"], expected["x_hat"], atol=2e-5, rtol=0)


def test_analysis_only_widening_twice_and_then_everywhere_are_allowed():
    narrow = make_model("tcm-tiny-vr")
    once = widened_config(narrow.config, analysis_only=True)
    twice = widened_config(once, analysis_only=True)
    assert twice.analysis_half_width == 4 * narrow.config.N and twice.N == narrow.config.N
    everywhere = widened_config(once)
    assert (everywhere.N, everywhere.analysis_half_width) == (2 * narrow.config.N, 4 * narrow.config.N)
    with pytest.raises(WideningError, match="differs in analysis_N"):
        widen_model(narrow, once.replace(analysis_N=4 * narrow.config.N))


def test_analysis_width_must_fit_its_heads():
    with pytest.raises(ValueError, match="analysis_N / analysis_head_dims"):
        get_preset("tcm-tiny-vr").replace(analysis_N=12)


def test_wide_encoder_preset_is_the_bundled_preset_widened_in_g_a():
    assert widened_config(PRESETS["tcm-cpu-wide"], "tcm-cpu-wide-ax2", analysis_only=True) == PRESETS["tcm-cpu-wide-ax2"]


def test_cli_widen_analysis_only_writes_a_model_with_the_same_decoder(tmp_path, tiny_vr_checkpoint, capsys):
    out = tmp_path / "wide-encoder.pt"
    assert run_cli("widen", tiny_vr_checkpoint, out, "--analysis-only") == 0
    assert "g_a N=16" in capsys.readouterr().out
    wide, narrow = load_checkpoint(out), load_checkpoint(tiny_vr_checkpoint)
    assert wide.config.name == "tcm-tiny-vr-ax2" and wide.config.N == narrow.config.N
    y = torch.rand(1, narrow.config.M, 4, 4, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(wide.g_s(y), narrow.g_s(y), atol=0, rtol=0)
