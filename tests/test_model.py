"""The TCM model: the authors' state-dict layout, the CompressAI contract, and agreement with
a straightforward implementation of the specification."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from reference_tcm import reference_compress, reference_forward, reference_synthesis
from tcmcodec.config import PRESETS, TCMConfig
from tcmcodec.model import TCM

from conftest import make_model

#: the authors' state-dict layouts (key, shape, dtype), from shared/reference
REFERENCE = Path(__file__).parent / "data" / "reference"


def _reference_layout(n: int) -> dict[str, tuple[int, ...]]:
    layout = {}
    for line in (REFERENCE / f"official-state-dict-N{n}.tsv").read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape, _ = line.split("\t")
        layout[key] = tuple(int(v) for v in shape.strip("()").split(",") if v.strip())
    return layout


@pytest.mark.parametrize("preset,n,params", [("tcm-s", 64, 45.18), ("tcm-m", 96, 59.13), ("tcm-l", 128, 76.57)])
def test_presets_have_the_authors_state_dict_layout_and_size(preset, n, params):
    """Every learned tensor and constant buffer, by name and shape; CompressAI's coding
    tables (derived buffers that CompressAI rebuilds on load) are not in our modules: the
    coder builds its own tables."""
    from tcmcodec.checkpoints import DERIVED_BUFFERS

    learned = lambda layout: {k: v for k, v in layout.items() if k.rsplit(".", 1)[-1] not in DERIVED_BUFFERS}
    model = TCM(PRESETS[preset])
    model.update()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == learned(_reference_layout(n))
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, 2) == params


def test_config_rejects_inconsistent_sizes_with_a_precise_message():
    with pytest.raises(ValueError, match="divisible by num_slices"):
        TCMConfig(M=321)
    with pytest.raises(ValueError, match="not divisible by head size"):
        TCMConfig(N=60, main_head_dims=(8, 16, 32))
    with pytest.raises(ValueError, match="ascending"):
        TCMConfig(rate_lambdas=(0.02, 0.01))


def test_config_round_trips_through_a_dict():
    cfg = PRESETS["tcm-cpu"]
    assert TCMConfig.from_dict(cfg.to_dict()) == cfg


def test_pad_multiple_is_128_for_the_papers_windows():
    assert PRESETS["tcm-s"].pad_multiple == 128


def test_forward_follows_the_compressai_contract(tiny_model):
    x = torch.rand(2, 3, 128, 256)
    out = tiny_model(x)
    assert out["x_hat"].shape == x.shape
    assert set(out["likelihoods"]) == {"y", "z"}
    assert out["likelihoods"]["y"].shape == (2, tiny_model.config.M, 8, 16)
    assert out["likelihoods"]["z"].shape == (2, tiny_model.config.hyper_channels, 2, 4)
    with torch.no_grad():
        assert float(tiny_model.aux_loss()) > 0


@pytest.mark.parametrize("size", [(128, 128), (256, 384)])
def test_forward_matches_the_straightforward_reference(tiny_model, size):
    torch.manual_seed(1)
    x = torch.rand(1, 3, *size)
    with torch.no_grad():
        ours = tiny_model(x)
        ref = reference_forward(tiny_model, x)
    assert torch.allclose(ours["x_hat"], ref["x_hat"], atol=1e-4)
    for key in ("y", "z"):
        assert torch.allclose(ours["likelihoods"][key], ref["likelihoods"][key], rtol=1e-4, atol=1e-6)


def _ideal_bytes(model, symbols, scales) -> float:
    """Information content of the y symbols under our Gaussian tables."""
    tables = model.coding_tables().gaussian.tables
    bits = 0.0
    for value, index in zip(symbols, model.scale_indexes(scales).reshape(-1).tolist()):
        pmf = tables.pmfs[index]
        position = value + tables.offsets[index]
        bits -= math.log2(pmf[position if 0 <= position < tables.sizes[index] else -1] / pmf.sum())
    return bits / 8


def test_float_numerics_code_the_reference_symbols_and_decompress_inverts_them(tiny_model):
    """The float entropy path computes what the reference implementation computes: the same
    symbols (so the same ŷ), which the range coder codes within 1% of their information."""
    torch.manual_seed(2)
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        y, z = tiny_model.analysis(x)
    ours = tiny_model.compress_analysis(y, z, keep_y_hat=True, exact=False)
    ref = reference_compress(tiny_model, x)
    assert torch.allclose(ours["y_hat"], ref["y_hat"], atol=1e-5)
    ideal = _ideal_bytes(tiny_model, ref["symbols"], ref["scales"])
    assert 0.99 * ideal - 8 <= len(ours["strings"][0][0]) <= 1.01 * ideal + 8
    out = tiny_model.decompress(ours["strings"], ours["shape"], exact=False)
    assert out["checks"] == ours["checks"]
    assert out["x_hat"].shape == x.shape and float(out["x_hat"].min()) >= 0 and float(out["x_hat"].max()) <= 1
    assert torch.allclose(out["x_hat"], reference_synthesis(tiny_model, ref["y_hat"]), atol=1e-4)


@pytest.mark.slow
def test_tcm_s_matches_the_reference_on_one_image():
    model = make_model("tcm-s")
    torch.manual_seed(3)
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        ours = model(x)
        ref = reference_forward(model, x)
    assert torch.allclose(ours["x_hat"], ref["x_hat"], atol=1e-4)
    bits = lambda out: sum(float(-l.log2().sum()) for l in out["likelihoods"].values())
    assert math.isclose(bits(ours), bits(ref), rel_tol=0.01)


def test_decompress_reproduces_the_encoder_side_latents_for_a_batch(tiny_vr_model):
    torch.manual_seed(4)
    x = torch.rand(2, 3, 128, 128)
    for level in (0.0, 1.3, 2.0):
        enc = tiny_vr_model.compress(x, level)
        assert len(enc["strings"][0]) == 2
        dec = tiny_vr_model.decompress(enc["strings"], enc["shape"], level)["x_hat"]
        single = tiny_vr_model.decompress([enc["strings"][0][1:], enc["strings"][1][1:]], enc["shape"], level)["x_hat"]
        assert torch.allclose(dec[1:], single, atol=1e-5)  # batch size changes float bits only


def test_higher_rate_level_spends_more_bits(tiny_vr_model):
    x = torch.rand(1, 3, 128, 128)
    sizes = [len(tiny_vr_model.compress(x, level)["strings"][0][0]) for level in (0.0, 1.0, 2.0)]
    assert sizes[0] < sizes[1] < sizes[2]


def test_fixed_rate_model_refuses_a_rate(tiny_model):
    with pytest.raises(ValueError, match="fixed rate"):
        tiny_model.compress(torch.rand(1, 3, 128, 128), 1.0)


def test_window_attention_handles_maps_smaller_than_or_not_multiple_of_the_window():
    from tcmcodec.layers.attention import WindowAttention

    torch.manual_seed(0)
    for kind in ("W", "SW"):
        msa = WindowAttention(16, 8, 8, kind)
        for shape in [(1, 3, 5, 16), (2, 8, 12, 16), (1, 10, 17, 16)]:
            out = msa(torch.randn(shape))
            assert out.shape == shape and torch.isfinite(out).all()
    # padding must not change the result where the map is whole: a W window is local
    msa = WindowAttention(16, 8, 8, "W")
    x = torch.randn(1, 8, 16, 16)
    assert torch.allclose(msa(x)[:, :, :8], msa(x[:, :, :8]), atol=1e-6)
    assert torch.allclose(msa(torch.cat([x, x[:, :3]], 1))[:, :8], msa(x), atol=1e-6)


@pytest.mark.parametrize("kind", ["W", "SW"])
@pytest.mark.parametrize("chunk_elements", [None, 3 * 4 * 64**2])
def test_window_attention_equals_the_reference_bit_for_bit(kind, chunk_elements, monkeypatch):
    """Cached masks stored for the masked windows only, and the chunked large-map path,
    give exactly the reference's einsum / -inf masking result."""
    from reference_tcm import reference_window_attention
    from tcmcodec.layers import attention

    if chunk_elements is not None:  # a few windows per chunk: many chunks, some with masks
        monkeypatch.setattr(attention, "SCORE_CHUNK_ELEMENTS", chunk_elements)
    torch.manual_seed(1)
    msa = attention.WindowAttention(32, 8, 8, kind)
    with torch.no_grad():
        msa.relative_position_params.normal_(0, 1)
        for shape in [(1, 32, 48, 32), (2, 16, 24, 32)]:
            x = torch.randn(shape)
            assert torch.equal(msa(x), reference_window_attention(msa, x))
            assert torch.equal(msa(x), reference_window_attention(msa, x))  # cached mask


@pytest.mark.parametrize("mlp_chunk_elements", [None, 37 * 64])
def test_tcm_and_swin_blocks_equal_the_plain_computation_bit_for_bit(mlp_chunk_elements, monkeypatch):
    """In-place path outputs (no concatenation), the 2-D transposes back to channels-first
    and the MLP in token chunks (here 26 chunks of 36-37 tokens) change no bit."""
    import reference_tcm
    from tcmcodec.layers import blocks

    if mlp_chunk_elements is not None:
        monkeypatch.setattr(blocks, "MLP_CHUNK_ELEMENTS", mlp_chunk_elements)
    torch.manual_seed(5)
    tcm_block = blocks.ConvTransBlock(16, 8, 8, "SW").eval()
    swin = blocks.SwinBlock(32, 8, 4).eval()
    for shape in [(1, 32, 24, 40), (2, 32, 16, 8)]:
        x = torch.randn(shape)
        with torch.inference_mode():
            ours = tcm_block(x), swin(x)
            with reference_tcm.straightforward_layers():
                plain = tcm_block(x), swin(x)
        assert all(torch.equal(a, b) for a, b in zip(ours, plain))
        assert ours[1].is_contiguous()


def test_scale_indexes_count_the_table_entries_below_each_scale(tiny_model):
    table = tiny_model.scale_table()
    scales = torch.cat([
        torch.rand(4000, dtype=torch.float64) * 300,          # the whole range and beyond
        table, table.nextafter(torch.tensor(0.0, dtype=torch.float64)),  # on and just below entries
        table.nextafter(torch.tensor(1e9, dtype=torch.float64)),         # just above entries
        torch.tensor([0.0, -1.0, 1e-9, float("inf")], dtype=torch.float64),
    ])
    bounded = scales.clamp(min=float(tiny_model.gaussian_conditional.lower_bound_scale.bound))
    expected = (bounded[:, None] > table[None, :-1]).sum(1)
    assert torch.equal(tiny_model.scale_indexes(scales.reshape(1, -1, 1, 1)).reshape(-1), expected)


def test_coding_tables_follow_the_weights_after_update_and_load(tiny_model):
    model = make_model("tcm-tiny", seed=11)
    first = model.coding_tables()
    assert model.coding_tables() is first  # built once
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["entropy_bottleneck.quantiles"][:, 0, 2] += 3.0  # wider hyper-latent tables
    model.load_state_dict(state)
    rebuilt = model.coding_tables()
    assert rebuilt is not first and (rebuilt.factorized.tables.sizes > first.factorized.tables.sizes).all()
    model.update(force=True)
    assert model.coding_tables() is not rebuilt


def test_straight_through_rounding_passes_gradients(tiny_model):
    model = make_model("tcm-tiny", seed=5).train()
    x = torch.rand(1, 3, 128, 128, requires_grad=True)
    out = model(x)
    out["x_hat"].sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0


def test_reduced_precision_transforms_keep_the_layers_next_to_the_latent_in_float32():
    model = make_model("tcm-tiny-vr", seed=4).eval()
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        y, _ = model.analysis(x, 1.0)
        y_hat = torch.round(y)
        x_hat = model.synthesis(y_hat, 1.0)
    seen: dict[str, torch.dtype] = {}

    def record(name):
        return lambda module, inputs, output: seen.update({name + ".in": inputs[0].dtype, name + ".out": output.dtype})

    hooks = [model.g_a[-1].register_forward_hook(record("g_a.last")),
             model.g_a[0].register_forward_hook(record("g_a.first")),
             model.g_s[0].register_forward_hook(record("g_s.first")),
             model.g_s[-1].register_forward_hook(record("g_s.last"))]
    model.transform_dtype = torch.bfloat16
    try:
        with torch.no_grad():
            y_reduced, _ = model.analysis(x, 1.0)
            x_hat_reduced = model.synthesis(y_hat, 1.0)
    finally:
        model.transform_dtype = None
        for hook in hooks:
            hook.remove()
    assert seen["g_a.last.in"] == seen["g_a.last.out"] == torch.float32  # y
    assert seen["g_s.first.in"] == seen["g_s.first.out"] == torch.float32  # ŷ
    assert seen["g_a.first.out"] == seen["g_s.last.out"] == torch.bfloat16  # the inner layers
    assert y_reduced.dtype == x_hat_reduced.dtype == torch.float32
    # bfloat16 keeps 8 bits: within ~1% of float32, and not equal to it
    assert 0 < float((y_reduced - y).abs().max()) < 0.02 * float(y.abs().max())
    assert 0 < float((x_hat_reduced - x_hat).abs().max()) < 0.05
    with torch.no_grad():  # and the switch leaves no trace
        assert torch.equal(model.synthesis(y_hat, 1.0), x_hat)


def test_tiled_transforms_match_a_whole_image_pass_within_float_noise(tiny_vr_model):
    from tcmcodec.tiling import TilePlan

    torch.manual_seed(6)
    x = torch.rand(1, 3, 384, 512)
    plan = TilePlan(tile=128, halo=128, threshold=0)
    with torch.no_grad():
        y_whole, z_whole = tiny_vr_model.analysis(x, 1.0)
        y_tiled, z_tiled = tiny_vr_model.analysis(x, 1.0, plan)
        x_whole = tiny_vr_model.synthesis(y_whole, 1.0)
        x_tiled = tiny_vr_model.synthesis(y_whole, 1.0, plan)
    assert torch.allclose(y_tiled, y_whole, atol=1e-4)
    assert torch.allclose(x_tiled, x_whole, atol=1e-3)
    # without a halo the tiles really are independent: the halo is what removes seams
    with torch.no_grad():
        x_seams = tiny_vr_model.synthesis(y_whole, 1.0, TilePlan(tile=128, halo=0, threshold=0))
    assert float((x_seams - x_whole).abs().max()) > 1e-3


def test_tiling_policy_gives_narrow_models_larger_tiles_and_keeps_alignment():
    from tcmcodec.tiling import plan_for

    wide, narrow = plan_for(256, 128), plan_for(32, 128)
    assert narrow.tile > wide.tile and narrow.threshold > wide.threshold
    for plan in (wide, narrow, plan_for(128, 128)):
        assert plan.tile % 128 == 0 and plan.halo % 128 == 0
    assert plan_for(128, 128).tile == 768 and plan_for(32, 128).tile == 1024  # tcm-s; bundled (capped)
    assert not plan_for(128, 128).applies(1152, 1920)  # 1920x1080 (padded) is coded whole
    assert plan_for(128, 128).applies(2176, 3840)


def test_tiled_transform_returns_free_memory_after_every_tile(monkeypatch):
    from tcmcodec import tiling

    released: list[int] = []
    monkeypatch.setattr(tiling, "release_free_memory", lambda: released.append(1) or True)
    out = tiling.tiled_apply(lambda t: t * 2, torch.ones(1, 1, 300, 200), tile=100, halo=10, scale=1.0)
    assert torch.equal(out, torch.full((1, 1, 300, 200), 2.0))
    assert len(released) == 3 * 2


def test_release_free_memory_is_a_no_op_when_allocator_tuning_is_switched_off(monkeypatch):
    from tcmcodec import runtime

    monkeypatch.setenv(runtime.ENV_SWITCH, "0")
    assert runtime.release_free_memory() is False and runtime.reuse_freed_memory() is False


def test_gain_units_interpolate_geometrically_between_trained_levels():
    from tcmcodec.layers.gain import GainUnits

    units = GainUnits(3, [0.5, 2.0, 4.0])
    x = torch.ones(1, 3, 1, 1)
    assert torch.allclose(units(x, 0.0), torch.full_like(x, 0.5))
    assert torch.allclose(units(x, 0.5), torch.full_like(x, 1.0))  # sqrt(0.5 * 2)
    assert torch.allclose(units(x, 2.0), torch.full_like(x, 4.0))
    per_sample = units(torch.ones(2, 3, 1, 1), torch.tensor([0.0, 2.0]))
    assert torch.allclose(per_sample[:, 0, 0, 0], torch.tensor([0.5, 4.0]))


def test_resampled_gains_interpolate_in_log_lambda_and_refuse_mismatched_tables():
    from tcmcodec.layers.gain import resample_log_gains

    log_gain = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    out = resample_log_gains(log_gain, [0.01, 0.04], [0.02, 0.04, 0.08])
    assert torch.allclose(out, torch.tensor([[1.0, 2.0], [2.0, 3.0], [3.0, 4.0]]))
    with pytest.raises(ValueError, match="one log-gain row per lambda"):
        resample_log_gains(log_gain, [0.01, 0.02, 0.04], [0.02])


def test_entropy_bottleneck_never_reads_tensor_values_on_the_host():
    """A host read is a GPU synchronisation on CUDA: the training forward pass has none."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from tcmcodec.entropy_models import EntropyBottleneck

    class HostReads(TorchDispatchMode):
        count = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.count += func is torch.ops.aten._local_scalar_dense.default
            return func(*args, **(kwargs or {}))

    torch.manual_seed(0)
    bottleneck = EntropyBottleneck(8)
    z = 3 * torch.randn(2, 8, 5, 7)
    for training in (False, True):
        with HostReads() as reads:
            z_hat, likelihoods = bottleneck(z, training=training)
        assert reads.count == 0
        assert z_hat.shape == likelihoods.shape == z.shape
        assert float(likelihoods.min()) > 0 and float(likelihoods.max()) <= 1
