"""Compatibility with CompressAI, where the optional extra is installed (`make test` runs
this file in a second environment with ``tcmcodec[compressai]``).

Our layers and entropy models are written here, state-dict compatible with CompressAI's:
with the same state dict, each gives CompressAI's values; a whole TCM built from
CompressAI's layers computes what ours computes; and a TCM is usable as a CompressAI
``CompressionModel`` by CompressAI's own evaluation code.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

compressai = pytest.importorskip("compressai", reason="needs the optional extra: pip install 'tcmcodec[compressai]'")

from compressai import entropy_models as theirs_entropy  # noqa: E402
from compressai import layers as theirs_layers  # noqa: E402

from tcmcodec import entropy_models, model as tcm_model  # noqa: E402
from tcmcodec.config import TCMConfig  # noqa: E402
from tcmcodec.layers import gdn, pointwise, residual  # noqa: E402

pytestmark = pytest.mark.compressai

#: (make ours, make CompressAI's, input channels)
LAYER_PAIRS = [
    (lambda: gdn.GDN(6), lambda: theirs_layers.GDN(6), 6),
    (lambda: gdn.GDN(6, inverse=True), lambda: theirs_layers.GDN(6, inverse=True), 6),
    (lambda: residual.ResidualBlock(6, 6), lambda: theirs_layers.ResidualBlock(6, 6), 6),
    (lambda: residual.ResidualBlock(6, 10), lambda: theirs_layers.ResidualBlock(6, 10), 6),
    (lambda: residual.ResidualBlockWithStride(6, 10), lambda: theirs_layers.ResidualBlockWithStride(6, 10), 6),
    (lambda: residual.ResidualBlockUpsample(6, 10), lambda: theirs_layers.ResidualBlockUpsample(6, 10), 6),
    (lambda: residual.GatedAttention(8), lambda: theirs_layers.AttentionBlock(8), 8),
    (lambda: residual.subpel_conv3x3(6, 4, 2), lambda: theirs_layers.subpel_conv3x3(6, 4, 2), 6),
]


def _perturbed(module: torch.nn.Module, seed: int) -> dict:
    """``module``'s state dict with every float parameter moved off its initial value
    (GDN starts as the identity-like γ = 0.1 I; a real checkpoint does not)."""
    torch.manual_seed(seed)
    state = module.state_dict()
    for key, value in state.items():
        if value.is_floating_point() and key.rsplit(".", 1)[-1] not in ("bound", "pedestal", "target"):
            state[key] = value + 0.05 * torch.rand_like(value)
    return state


@pytest.mark.parametrize("index", range(len(LAYER_PAIRS)))
def test_each_layer_gives_compressais_bits_with_the_same_state_dict(index):
    make_ours, make_theirs, channels = LAYER_PAIRS[index]
    ours, theirs = make_ours(), make_theirs()
    assert set(ours.state_dict()) == set(theirs.state_dict())
    state = _perturbed(ours, index)
    ours.load_state_dict(state)
    theirs.load_state_dict(state)
    x = torch.randn(2, channels, 12, 16)
    with torch.no_grad():
        assert torch.equal(ours(x.clone()), theirs(x.clone()))
    # and the same gradients in training (LowerBound's pass-through rule included)
    grads = []
    for module in (ours, theirs):
        module.zero_grad()
        module(x.clone().requires_grad_()).square().sum().backward()
        grads.append({k: p.grad.clone() for k, p in module.named_parameters()})
    for key in grads[0]:
        assert torch.allclose(grads[0][key], grads[1][key], rtol=1e-5, atol=1e-6), key


def test_pointwise_gdn_gives_compressais_gdn_bits_at_inference():
    theirs = theirs_layers.GDN(6, inverse=True)
    theirs.load_state_dict(_perturbed(theirs, 7))
    ours = pointwise.use_pointwise_matmul(torch.nn.Sequential(gdn.GDN(6, inverse=True)))
    ours[0].load_state_dict(theirs.state_dict())
    x = torch.randn(1, 6, 9, 11)
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), rtol=1e-6, atol=1e-7)


def test_entropy_bottleneck_gives_compressais_values_and_aux_loss():
    torch.manual_seed(0)
    ours, theirs = entropy_models.EntropyBottleneck(8), theirs_entropy.EntropyBottleneck(8)
    missing, unexpected = theirs.load_state_dict(ours.state_dict(), strict=False)
    assert set(missing) == {"_offset", "_quantized_cdf", "_cdf_length"} and not unexpected  # their coding tables
    z = 3 * torch.randn(2, 8, 5, 7)
    for training in (False, True):
        torch.manual_seed(1)
        expected = theirs(z, training=training)
        torch.manual_seed(1)
        got = ours(z, training=training)
        assert torch.equal(got[0], expected[0])
        # ours takes the difference on the small side of the cumulative: equal up to rounding
        assert torch.allclose(got[1], expected[1], rtol=1e-5, atol=1e-7)
    assert torch.equal(ours.loss(), theirs.loss())


def test_fitted_quantiles_agree_with_compressais_search():
    torch.manual_seed(3)
    ours, theirs = entropy_models.EntropyBottleneck(4), theirs_entropy.EntropyBottleneck(4)
    state = _perturbed(ours, 3)
    ours.load_state_dict(state)
    theirs.load_state_dict(state, strict=False)
    ours.fit_quantiles()
    theirs._update_quantiles()
    assert torch.allclose(ours.quantiles, theirs.quantiles, rtol=1e-3, atol=2e-3)


def test_gaussian_conditional_gives_compressais_likelihoods():
    ours, theirs = entropy_models.GaussianConditional(), theirs_entropy.GaussianConditional(None)
    assert set(ours.state_dict()) <= set(theirs.state_dict())
    torch.manual_seed(2)
    y, means = 4 * torch.randn(2, 5, 6, 7), torch.randn(2, 5, 6, 7)
    scales = torch.rand(2, 5, 6, 7) * 3
    for training in (False, True):
        torch.manual_seed(4)
        expected = theirs(y, scales, means, training=training)
        torch.manual_seed(4)
        got = ours(y, scales, means, training=training)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


def _with_compressai_layers(model: tcm_model.TCM) -> tcm_model.TCM:
    """A copy of ``model`` whose GDNs, residual blocks and entropy models are CompressAI's
    classes (same parameters)."""
    swaps = {gdn.GDN: theirs_layers.GDN, pointwise.PointwiseGDN: theirs_layers.GDN,
             residual.ResidualBlock: theirs_layers.ResidualBlock,
             residual.ResidualBlockWithStride: theirs_layers.ResidualBlockWithStride,
             residual.ResidualBlockUpsample: theirs_layers.ResidualBlockUpsample}
    other = copy.deepcopy(model)
    for module in other.modules():
        if type(module) in swaps:
            module.__class__ = swaps[type(module)]
    bottleneck = theirs_entropy.EntropyBottleneck(model.config.hyper_channels)
    bottleneck.load_state_dict(model.entropy_bottleneck.state_dict(), strict=False)
    other.entropy_bottleneck = bottleneck
    other.gaussian_conditional = theirs_entropy.GaussianConditional(None)
    return other.eval()


def test_a_tcm_built_from_compressais_layers_computes_what_ours_computes(tiny_model):
    torch.manual_seed(5)
    x = torch.rand(1, 3, 128, 192)
    reference = _with_compressai_layers(tiny_model)
    with torch.no_grad():
        ours, theirs = tiny_model(x), reference(x)
    assert torch.allclose(ours["x_hat"], theirs["x_hat"], atol=1e-5)
    assert torch.allclose(ours["likelihoods"]["y"], theirs["likelihoods"]["y"], rtol=1e-4, atol=1e-7)
    assert torch.allclose(ours["likelihoods"]["z"], theirs["likelihoods"]["z"], rtol=1e-4, atol=1e-7)


def test_scale_table_and_indexes_agree_with_compressais():
    from compressai.models.base import get_scale_table

    model = tcm_model.TCM(TCMConfig())
    assert torch.allclose(model.scale_table().float(), get_scale_table(), rtol=1e-6)
    theirs = theirs_entropy.GaussianConditional(None)
    theirs.update_scale_table(get_scale_table())
    scales = torch.rand(10_000) * 60
    disagree = model.scale_indexes(scales) != theirs.build_indexes(scales)
    assert float(disagree.float().mean()) < 1e-3  # only scales within float32 rounding of an entry


def test_tcm_is_a_compressai_model_that_compressais_evaluation_runs(tiny_model):
    from compressai.models import CompressionModel
    from compressai.utils.eval_model.__main__ import inference

    from tcmcodec.integrations.compressai import as_compressai_model

    model = as_compressai_model(copy.deepcopy(tiny_model))
    assert isinstance(model, CompressionModel) and isinstance(model, tcm_model.TCM)
    assert torch.equal(model.aux_loss(), tiny_model.aux_loss())
    torch.manual_seed(6)
    x = torch.rand(3, 192, 256)
    metrics = inference(model, x)
    with torch.no_grad():
        ours = tiny_model.compress(x[None])
    coded_bytes = len(ours["strings"][0][0]) + len(ours["strings"][1][0])
    assert math.isclose(metrics["bpp"], coded_bytes * 8 / (192 * 256))
    decoded = tiny_model.decompress(ours["strings"], ours["shape"])["x_hat"]
    psnr = -10 * math.log10(float(((decoded - x[None]) ** 2).mean()))
    assert math.isclose(metrics["psnr-rgb"], psnr, abs_tol=0.2)
    # CompressAI's base class methods work on it, e.g. its state-dict round trip
    model.load_state_dict(tiny_model.state_dict())
