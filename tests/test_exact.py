"""The exact entropy-parameter arithmetic (src/tcmcodec/exact): accuracy, exactness of the
block floating-point sums, the allowlist, and independence from threads and batching."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tcmcodec.exact import elementary
from tcmcodec.exact.mode import ExactArithmetic
from tcmcodec.exact.reductions import (
    EXACT_BITS,
    InexactOperation,
    exact_conv2d,
    exact_layer_norm,
    exact_linear,
    exact_matmul,
    exact_softmax,
    to_grid,
)

mpmath = pytest.importorskip("mpmath")


def _float64(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def test_elementary_functions_are_accurate_to_a_few_ulps():
    mpmath.mp.dps = 30
    x = torch.linspace(-700, 700, 4001, dtype=torch.float64)
    exp_ref = _float64([float(mpmath.exp(v)) for v in x.tolist()])
    assert float(((elementary.exp(x) - exp_ref).abs() / exp_ref).max()) < 1e-15
    positive = torch.logspace(-300, 300, 2001, dtype=torch.float64)
    log_ref = _float64([float(mpmath.log(v)) for v in positive.tolist()])
    assert float((elementary.log(positive) - log_ref).abs().max()) < 1e-13
    u = torch.linspace(-6, 20, 2601, dtype=torch.float64)
    erfc_ref = _float64([float(mpmath.erfc(v)) for v in u.tolist()])
    assert float(((elementary.erfc(u) - erfc_ref).abs() / erfc_ref).max()) < 1e-13  # relative, tails included
    g = torch.linspace(-12, 12, 5001, dtype=torch.float64)
    for ours, ref in [(elementary.gelu, F.gelu), (elementary.tanh, torch.tanh), (elementary.sigmoid, torch.sigmoid),
                      (elementary.softplus, F.softplus)]:
        assert float((ours(g) - ref(g)).abs().max()) < 1e-14


def test_interpolated_gelu_and_softmax_exponential_stay_within_their_stated_errors():
    x = torch.linspace(-12, 12, 200001, dtype=torch.float64)
    assert float((elementary.fast_gelu(x) - elementary.gelu(x)).abs().max()) < 1.2e-8
    t = torch.linspace(-36, 0, 200001, dtype=torch.float64)
    assert float(((elementary.fast_exp_nonpositive(t) - elementary.exp(t)) / elementary.exp(t)).abs().max()) < 3e-8


def test_elementary_edge_cases():
    assert elementary.exp(_float64([-1e6, 0.0])).tolist() == [0.0, 1.0]
    logs = elementary.log(_float64([0.0, -1.0, 1.0]))
    assert logs[0] == -math.inf and math.isnan(logs[1]) and logs[2] == 0.0
    assert elementary.erfc(_float64([0.0, 40.0, -40.0])).tolist() == pytest.approx([1.0, 0.0, 2.0], abs=2e-15)
    assert torch.equal(elementary.power_of_two(_float64([0, 10, -10])), _float64([1.0, 1024.0, 2.0**-10]))


@pytest.mark.parametrize("bits", [8, 20, 24])
def test_to_grid_gives_integers_within_the_bit_budget_on_one_power_of_two_step_per_group(bits):
    torch.manual_seed(0)
    x = torch.randn(3, 5, 7) * torch.tensor([1e-3, 1.0, 1e4])[:, None, None]
    n, step = to_grid(x, (1, 2), bits)
    assert n.dtype == step.dtype == torch.float64 and step.shape == (3, 1, 1)
    assert torch.equal(n, n.round()) and float(n.abs().max()) <= 2**bits
    mantissa, _ = torch.frexp(step)
    assert torch.all(mantissa == 0.5)  # powers of two
    assert torch.allclose(n * step, x.double(), rtol=0, atol=float(x.abs().max()) * 2.0**-bits)


def _integer_conv(n_x: torch.Tensor, n_w: torch.Tensor, padding: int) -> torch.Tensor:
    """The convolution of integer-valued tensors in int64 arithmetic (the exact answer)."""
    cols = F.unfold(n_x, n_w.shape[-1], padding=padding).to(torch.int64)
    out = n_w.reshape(n_w.shape[0], -1).to(torch.int64) @ cols
    return out.reshape(n_x.shape[0], n_w.shape[0], *n_x.shape[-2:])


def test_exact_convolution_equals_integer_arithmetic_and_the_float_convolution():
    torch.manual_seed(1)
    x, w, b = torch.randn(2, 288, 6, 10), torch.randn(64, 288, 3, 3) * 0.05, torch.randn(64)
    out = exact_conv2d(x, w, b, 1, 1)
    # rebuild it from the grids in int64: every sum in the float64 kernel was exact
    from tcmcodec.exact.reductions import WEIGHT_BITS, operand_bits

    n_x, g_x = to_grid(x, (1, 2, 3), operand_bits(288 * 9, WEIGHT_BITS))
    n_w, g_w = to_grid(w, (1, 2, 3), WEIGHT_BITS)
    exact = _integer_conv(n_x, n_w, 1)
    assert float(exact.abs().max()) < 2**EXACT_BITS
    rebuilt = (exact.double() * (g_x * g_w.reshape(1, -1, 1, 1)) + b.double().reshape(1, -1, 1, 1)).float()
    assert torch.equal(out, rebuilt)
    assert torch.allclose(out, F.conv2d(x, w, b, padding=1), atol=1e-4)


def test_exact_reductions_match_the_float_ones():
    torch.manual_seed(2)
    x = torch.randn(4, 9, 32)
    w, b = torch.randn(48, 32) / 6, torch.randn(48)
    assert torch.allclose(exact_linear(x, w, b), F.linear(x, w, b), atol=1e-5)
    q, k = torch.randn(2, 3, 64, 16), torch.randn(2, 3, 64, 16)
    assert torch.allclose(exact_matmul(q, k.transpose(-2, -1)), q @ k.transpose(-2, -1), atol=1e-5)
    scores = torch.randn(2, 3, 64, 64) * 4
    soft = exact_softmax(scores, -1)
    assert torch.allclose(soft, torch.softmax(scores, -1), atol=2e-7)
    assert torch.allclose(soft.double().sum(-1), torch.ones(2, 3, 64, dtype=torch.float64), atol=1e-6)
    weight, bias = torch.randn(32), torch.randn(32)
    assert torch.allclose(exact_layer_norm(x, (32,), weight, bias), F.layer_norm(x, (32,), weight, bias), atol=1e-5)


def test_exact_results_do_not_depend_on_the_summation_order():
    torch.manual_seed(3)
    x, w = torch.randn(1, 64, 8, 8), torch.randn(32, 64, 3, 3)
    forward = exact_conv2d(x, w, None, 1, 1)
    # the same sums with the input channels (and so the products) in the opposite order
    backward = exact_conv2d(x.flip(1), w.flip(1), None, 1, 1)
    assert torch.equal(forward, backward)
    a, m = torch.randn(5, 100), torch.randn(100, 7)
    assert torch.equal(exact_matmul(a, m), exact_matmul(a.flip(1), m.flip(0)))


def test_operations_without_an_exact_form_are_refused_inside_the_mode():
    x = torch.randn(4, 4)
    with ExactArithmetic():
        assert torch.equal(x.reshape(16).reshape(4, 4), x)  # data movement is fine
        for op in (lambda: torch.erf(x), lambda: x.sum(), lambda: torch.lerp(x, x, 0.5),
                   lambda: F.gelu(x, approximate="tanh"), lambda: x ** 3):
            with pytest.raises(InexactOperation):
                op()


def test_add_with_alpha_is_split_into_a_product_and_a_sum():
    x, y = torch.randn(100), torch.randn(100)
    with ExactArithmetic():
        out = torch.add(x, y, alpha=0.3)
    assert torch.equal(out, x + y * 0.3)


def test_exact_coding_is_independent_of_threads_and_batch_composition(tiny_vr_model):
    torch.manual_seed(4)
    x = torch.rand(2, 3, 128, 128)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = tiny_vr_model.compress(x, 1.3, exact=True)
        torch.set_num_threads(2)
        two = tiny_vr_model.compress(x, 1.3, exact=True)
    finally:
        torch.set_num_threads(previous)
    assert one["strings"] == two["strings"] and one["checks"] == two["checks"]
    single = tiny_vr_model.compress(x[1:], 1.3, exact=True)
    assert single["strings"][0][0] == one["strings"][0][1] and single["strings"][1][0] == one["strings"][1][1]
    dec = tiny_vr_model.decompress([one["strings"][0][1:], one["strings"][1][1:]], one["shape"], 1.3, exact=True)
    assert dec["checks"] == [one["checks"][0][1:], one["checks"][1][1:]]


def test_exact_and_float_numerics_code_the_same_image_at_the_same_rate(tiny_vr_model):
    torch.manual_seed(5)
    x = torch.rand(1, 3, 256, 256)
    exact = tiny_vr_model.compress(x, 2.0, exact=True)
    floating = tiny_vr_model.compress(x, 2.0, exact=False)
    size = lambda out: sum(len(s) for strings in out["strings"] for s in strings)
    assert abs(size(exact) - size(floating)) <= 0.01 * size(floating) + 8
    a = tiny_vr_model.decompress(exact["strings"], exact["shape"], 2.0, exact=True)["x_hat"]
    b = tiny_vr_model.decompress(floating["strings"], floating["shape"], 2.0, exact=False)["x_hat"]
    assert float((a - b).abs().mean()) < 2e-3
