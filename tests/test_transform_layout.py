"""The transforms' memory layout at inference: channels-last on the CPU for our models.

oneDNN's convolutions take channels-last maps without converting them, and the 1x1
convolutions then run as one matrix product over all pixels (``layers/pointwise.py``), so g_s
and g_a run faster; the floats differ from the channels-first computation in the last bits
only. The authors' checkpoints keep the channels-first order of the reference (their g_a's
floats decide which symbols their files hold), and training keeps its own layout.
"""

from __future__ import annotations

import pytest
import torch

from tcmcodec.layers.pointwise import pointwise

from conftest import make_model


def _both_layouts(model, run):
    outputs = []
    for channels_last in (False, True):
        model.channels_last_transforms = channels_last
        with torch.no_grad():
            outputs.append(run())
    return outputs


@pytest.fixture(scope="module")
def model():
    return make_model("tcm-tiny-vr", seed=7)


def test_channels_last_transforms_agree_with_channels_first_within_float_rounding(model):
    x = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(1))
    y_first, y_last = _both_layouts(model, lambda: model.analysis_transform(x))
    x_first, x_last = _both_layouts(model, lambda: model.synthesis(y_first, 1.0))
    for first, last in ((y_first, y_last), (x_first, x_last)):
        assert last.is_contiguous() and last.dtype == torch.float32
        assert float((last - first).abs().max()) <= 1e-5 * max(1.0, float(first.abs().max()))


def test_the_channels_last_synthesis_gives_the_same_bits_with_one_or_two_threads(model):
    """(tests/test_determinism.py decodes the bundled model and tcm-s with 1, 2 and 3 threads
    in separate processes; the tiny widths here differ with 3 threads in either layout.)"""
    model.channels_last_transforms = True
    y = torch.randn(1, model.config.M, 8, 12, generator=torch.Generator().manual_seed(2))
    threads = torch.get_num_threads()
    outputs = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            with torch.no_grad():
                outputs.append(model.synthesis(y, 2.0))
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(outputs[0], other) for other in outputs[1:])


def test_training_keeps_its_layout(model):
    x = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(3))
    model.channels_last_transforms = False
    with torch.no_grad():
        reference = model.analysis_transform(x)
    model.channels_last_transforms = True
    model.train()
    try:
        with torch.no_grad():
            trained = model.analysis_transform(x)
    finally:
        model.eval()
    assert torch.equal(trained, reference)


@pytest.mark.parametrize("batch, bias", [(1, True), (2, True), (1, False)])
def test_a_pointwise_convolution_keeps_a_channels_last_map_channels_last(batch, bias):
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(batch, 24, 9, 13, generator=generator)
    weight = torch.randn(16, 24, 1, 1, generator=generator)
    shift = torch.randn(16, generator=generator) if bias else None
    first = pointwise(x, weight, shift)
    last = pointwise(x.contiguous(memory_format=torch.channels_last), weight, shift)
    assert first.is_contiguous()
    assert last.is_contiguous(memory_format=torch.channels_last) and not last.is_contiguous()
    assert torch.allclose(last, first, atol=1e-5)
    assert torch.allclose(first, torch.nn.functional.conv2d(x, weight, shift), atol=1e-5)
