"""Where reduced precision (bfloat16) runs in training: the inner layers of g_a and g_s
(:func:`run_transform`) and, optionally, the entropy-parameter networks
(:func:`reduced_precision`). Coding never uses it: the entropy-parameter path is exact, and
the codec runs g_a and g_s in float32."""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor, nn


def reduced_precision(device_type: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device_type``, or nothing when ``dtype`` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def run_transform(layers: nn.Sequential, x: Tensor, dtype: torch.dtype | None, full_precision: int,
                  channels_last: bool = False) -> Tensor:
    """``layers(x)`` with every layer but ``layers[full_precision]`` under autocast to ``dtype``.

    The full-precision layer is the one next to the latent (g_a's last, g_s's first): y and ŷ
    are quantized with a step of 1/gain, finer than bfloat16's 8 bits resolve at the top
    rates. The output is float32.

    On the CPU the activations after the first layer are channels-last with a ``dtype`` or
    when ``channels_last`` asks for it: oneDNN's convolutions then run without converting
    layouts (bfloat16: a tcm-cpu-wide training step 1.2x faster than bfloat16 alone;
    float32: g_a and g_s at inference 1.13x faster), at the price of other last bits than
    the channels-first computation. The parameters keep their layout, and the output is
    contiguous again.
    """
    if dtype is None and not (channels_last and x.device.type == "cpu"):
        return layers(x)
    layout = torch.channels_last if x.device.type == "cpu" else torch.contiguous_format
    for index, layer in enumerate(layers):
        with reduced_precision(x.device.type, None if index == full_precision else dtype):
            x = layer(x.float() if index == full_precision else x)
        if index == 0:
            x = x.contiguous(memory_format=layout)
    return x.float().contiguous()
