"""What a state dict's tensor shapes say about the architecture, before any model is built.

A checkpoint's stored config decides how large a model :class:`~tcmcodec.model.TCM` allocates
(every width, depth, window and slice count), while the file only holds tensors of some
shapes. A file of a few megabytes whose config claims ``N = 4096`` or a window of 256 would
make the loader allocate gigabytes before the first shape check. So the architecture is read
from the shapes first (:func:`shape_fields`, which also rebuilds the config of the authors'
checkpoints) and a stored config must agree with it (:func:`check_config_matches_weights`);
the sizes no tensor records (scale levels, windows) have caps.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from torch import Tensor

from tcmcodec.config import TCMConfig
from tcmcodec.errors import ModelNotFoundError

#: the most Gaussian scale levels a stored config may ask for (the table is built at load;
#: the bundled weights use 256, CompressAI's default is 64)
MAX_SCALE_LEVELS = 4096
#: the largest attention window a config may have (the relative-position index of a window
#: holds window**4 entries; the presets use 4 and 8)
MAX_WINDOW = 32
#: key of the first 3x3 convolution of g_a and of g_s, whose outputs are their widths
ANALYSIS_WIDTH_KEY = "g_a.0.conv1.weight"
SYNTHESIS_WIDTH_KEY = "g_s.0.conv.weight"
#: the gain vectors of a variable-rate model: (levels, M)
GAIN_KEY = "gain_y.log_gain"


def _count_blocks(state: Mapping[str, Tensor], pattern: str) -> int:
    regex = re.compile(pattern)
    return len({m.group(1) for k in state if (m := regex.match(k))})


def _attention(state: Mapping[str, Tensor], prefix: str) -> tuple[int, int]:
    """(head size, window) of the window attention under ``prefix``."""
    params = state[f"{prefix}.msa.relative_position_params"]
    heads, span = params.shape[0], params.shape[1]
    dim = state[f"{prefix}.ln1.weight"].shape[0]
    return dim // heads, (span + 1) // 2


def _stage_attention(state: Mapping[str, Tensor], transform: str, depth: int) -> list[tuple[int, int]]:
    """(head size, window) of the first TCM block of each of the three stages of g_a / g_s."""
    return [_attention(state, f"{transform}.{1 + stage * (depth + 1)}.trans_block") for stage in range(3)]


def shape_fields(state: Mapping[str, Tensor]) -> dict[str, Any]:
    """The :class:`TCMConfig` fields the shapes of ``state`` determine (keys as the fields;
    ``analysis_N`` and ``analysis_head_dims`` as g_a's own values, ``rate_levels`` the number
    of gain vectors, ``context_channels`` each slice's input channels).

    Raises :class:`ModelNotFoundError` when a tensor every TCM has is missing."""
    try:
        N = state[SYNTHESIS_WIDTH_KEY].shape[0] // 2 if SYNTHESIS_WIDTH_KEY in state else None
        analysis_N = state[ANALYSIS_WIDTH_KEY].shape[0] // 2
        num_slices = _count_blocks(state, r"cc_mean_transforms\.(\d+)\.0\.weight")
        slice_channels = state["cc_mean_transforms.0.4.weight"].shape[0]
        main_depth = _count_blocks(state, r"g_a\.(\d+)\.conv1_1\.weight") // 3
        hyper_depth = _count_blocks(state, r"h_a\.(\d+)\.conv1_1\.weight")
        fields: dict[str, Any] = {
            "N": analysis_N if N is None else N, "analysis_N": analysis_N,
            "M": slice_channels * num_slices, "num_slices": num_slices,
            "hyper_channels": state["entropy_bottleneck.quantiles"].shape[0],
            "main_depth": main_depth, "hyper_depth": hyper_depth,
            "swatten_width": state["atten_mean.0.0.in_conv.weight"].shape[0],
            "context_widths": (state["cc_mean_transforms.0.0.weight"].shape[0],
                               state["cc_mean_transforms.0.2.weight"].shape[0]),
            "context_channels": tuple(state[f"cc_mean_transforms.{i}.0.weight"].shape[1] for i in range(num_slices)),
            "rate_levels": state[GAIN_KEY].shape[0] if GAIN_KEY in state else 0,
        }
        fields["swatten_head_dim"], fields["swatten_window"] = _attention(
            state, "atten_mean.0.0.non_local_block.block_1")
        if main_depth:
            analysis = _stage_attention(state, "g_a", main_depth)
            fields["analysis_head_dims"] = tuple(head for head, _ in analysis)
            fields["main_window"] = analysis[0][1]
            fields["mlp_ratio"] = state["g_a.1.trans_block.mlp.0.weight"].shape[0] // analysis_N
            if N is not None:  # g_s's stages run the head sizes backwards
                fields["main_head_dims"] = tuple(head for head, _ in reversed(_stage_attention(state, "g_s", main_depth)))
        if hyper_depth:
            fields["hyper_head_dim"], fields["hyper_window"] = _attention(state, "h_a.1.trans_block")
    except (KeyError, IndexError) as exc:
        raise ModelNotFoundError(f"checkpoint is not a TCM model (missing {exc})") from None
    except ZeroDivisionError:
        raise ModelNotFoundError("checkpoint is not a TCM model (an attention with no heads)") from None
    return fields


def _config_value(config: TCMConfig, field: str) -> Any:
    """``config``'s value in the terms of :func:`shape_fields`."""
    if field == "analysis_N":
        return config.analysis_half_width
    if field == "analysis_head_dims":
        return tuple(config.analysis_heads)
    if field == "context_channels":
        return tuple(config.context_channels(i) for i in range(config.num_slices))
    if field == "rate_levels":
        return config.rate_levels
    value = getattr(config, field)
    return tuple(value) if isinstance(value, (list, tuple)) else value


def check_sizes(config: TCMConfig) -> None:
    """Refuse (:class:`ModelNotFoundError`) the sizes no tensor bounds: more than
    :data:`MAX_SCALE_LEVELS` scale levels, an attention window over :data:`MAX_WINDOW`. (A huge
    ``scale_max`` is refused where the tables are built: ``coding.tables.gaussian_tables``.)"""
    if config.scale_levels > MAX_SCALE_LEVELS:
        raise ModelNotFoundError(f"checkpoint's config asks for {config.scale_levels} Gaussian scale levels; "
                                 f"at most {MAX_SCALE_LEVELS} are supported")
    window = max(config.main_window, config.hyper_window, config.swatten_window)
    if window > MAX_WINDOW:
        raise ModelNotFoundError(f"checkpoint's model has an attention window of {window}; at most {MAX_WINDOW} "
                                 "are supported")


def check_config_matches_weights(config: TCMConfig, state: Mapping[str, Tensor]) -> None:
    """Refuse (:class:`ModelNotFoundError`) a stored config that disagrees with the stored
    tensors or fails :func:`check_sizes`, before a model of that config is built."""
    check_sizes(config)
    for field, stored in shape_fields(state).items():
        claimed = _config_value(config, field)
        if claimed != stored:
            raise ModelNotFoundError(f"checkpoint's config does not match its weights: {field} is {claimed} "
                                     f"in the config and {stored} in the weights")
