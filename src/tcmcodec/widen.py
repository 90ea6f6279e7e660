"""Function-preserving widening of a trained TCM (Net2WiderNet; Chen, Goodfellow, Shlens,
"Net2Net: Accelerating Learning via Knowledge Transfer", ICLR 2016).

A model whose transforms are too narrow (the "transform ceiling" of the model card) can be
continued as a wider model instead of being trained again from scratch: every channel of
width C = 2N (g_a, g_s, h_a, h_mean_s, h_scale_s) is duplicated, so the wide network
computes what the narrow one computed and training goes on from there. Widening g_a alone
(``analysis_only``) is meant to give a better encoder for the same decoder: decoding cost,
the decoder's weights and the bitstream syntax stay as they were.

How each layer keeps the function, with channel j of the wide map a copy of channel
``j // 2`` of the narrow one (copies adjacent, so every split of a TCM block into its CNN and
transformer halves, and every concatenation, still falls between channel pairs):

* convolutions and linear layers take the narrow weights at the mapped indices; a doubled
  input dimension halves them, as both copies of an input feed the sum. The two halves of
  each pair get opposite small perturbations (+d, -d): the sum over the pair, hence the
  output, is unchanged, but the copies now receive different gradients (symmetry broken);
* a sub-pixel convolution (conv + PixelShuffle(r)) maps its r^2 outputs per channel as
  blocks, so the shuffled map is again a pairwise duplicate;
* LayerNorm: mean and variance over a map whose channels all appear twice are unchanged;
* GDN: beta is mapped; gamma is mapped on both axes and halved (each input appears twice);
* window attention keeps its number of heads with twice the head size (the wide preset
  must double the head sizes): a head's dot products double, so the query rows are scaled
  by 1/sqrt(2), which with the scale 1/sqrt(d) of the wider head restores every score;
* everything whose shape does not change (entropy model, context model, gains) is copied.

The result matches the narrow model up to float rounding (test: ``test_widen``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tcmcodec.config import TCMConfig
from tcmcodec.errors import TcmError
from tcmcodec.layers.attention import WindowAttention
from tcmcodec.layers.gdn import GDN
from tcmcodec.model import TCM

#: the widening factor (channel duplication)
FACTOR = 2


class WideningError(TcmError, ValueError):
    """The wide configuration is not a doubled copy of the narrow one."""


def _doubled(head_dims: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(FACTOR * d for d in head_dims)


def widened_config(narrow: TCMConfig, name: str | None = None, *, analysis_only: bool = False) -> TCMConfig:
    """``narrow`` with N and every transform head size doubled (heads per layer unchanged).

    ``analysis_only``: only g_a's (``analysis_N``, ``analysis_head_dims``), so the decoder
    and its cost stay as they are and only the encoder grows.
    """
    if analysis_only:
        return narrow.replace(name=name or f"{narrow.name}-ax{FACTOR}",
                              analysis_N=FACTOR * narrow.analysis_half_width,
                              analysis_head_dims=_doubled(narrow.analysis_heads))
    return narrow.replace(
        name=name or f"{narrow.name}-x{FACTOR}", N=FACTOR * narrow.N,
        main_head_dims=_doubled(narrow.main_head_dims), hyper_head_dim=FACTOR * narrow.hyper_head_dim,
        # a separately sized g_a stays separate, doubled with the rest
        analysis_N=narrow.analysis_N and FACTOR * narrow.analysis_N,
        analysis_head_dims=narrow.analysis_head_dims and _doubled(narrow.analysis_head_dims),
    )


def check_widenable(narrow: TCMConfig, wide: TCMConfig) -> None:
    """Raise :class:`WideningError` unless ``wide`` is ``narrow`` with N and head sizes
    doubled, everywhere or in g_a only."""
    candidates = [widened_config(narrow, wide.name, analysis_only=only) for only in (False, True)]
    if wide in candidates:
        return
    expected = candidates[wide.N == narrow.N]
    diff = [f.name for f in narrow.__dataclass_fields__.values()
            if getattr(expected, f.name) != getattr(wide, f.name)]
    raise WideningError(
        f"cannot widen {narrow.name} into {wide.name}: it must equal the narrow config with "
        f"N and the head sizes doubled, everywhere or in g_a only (differs in {', '.join(diff)})"
    )


def _index_map(narrow_size: int, wide_size: int, block: int = 1) -> Tensor:
    """Narrow index of each wide index along one dimension (identity when unchanged).

    ``block`` > 1: the dimension holds ``block`` consecutive entries per channel (a
    sub-pixel convolution's outputs before PixelShuffle); channels are duplicated as blocks.
    """
    if wide_size == narrow_size:
        return torch.arange(wide_size)
    if wide_size != FACTOR * narrow_size:
        raise WideningError(f"a dimension goes from {narrow_size} to {wide_size}, not x{FACTOR}")
    wide = torch.arange(wide_size)
    return (wide // block) // FACTOR * block + wide % block


def _pair_noise(shape: torch.Size, in_dim: int, scale: float, generator: torch.Generator) -> Tensor:
    """+d / -d on the two copies of each input channel (sums over a pair stay zero)."""
    half = list(shape)
    half[in_dim] //= FACTOR
    d = torch.randn(half, generator=generator) * scale
    return torch.stack((d, -d), dim=in_dim + 1).flatten(in_dim, in_dim + 1)


def _widen_affine(wide: nn.Module, narrow: nn.Module, out_block: int, noise: float,
                  generator: torch.Generator) -> None:
    """Conv2d / Linear: weight (out, in, ...) and bias (out,)."""
    w_out, w_in = wide.weight.shape[:2]
    n_out, n_in = narrow.weight.shape[:2]
    rows = _index_map(n_out, w_out, out_block)
    cols = _index_map(n_in, w_in)
    source = narrow.weight.detach().float()
    weight = source[rows][:, cols]
    if w_in != n_in:
        weight /= FACTOR
        spread = noise * source.std().item() / FACTOR
        weight += _pair_noise(weight.shape, 1, spread, generator)
    wide.weight.data.copy_(weight)
    if wide.bias is not None:
        wide.bias.data.copy_(narrow.bias.detach().float()[rows])


def _widen_gdn(wide: GDN, narrow: GDN) -> None:
    if wide.beta.shape == narrow.beta.shape:  # not widened (g_s under analysis_only): a copy
        wide.beta.data.copy_(narrow.beta.detach().float())
        wide.gamma.data.copy_(narrow.gamma.detach().float())
        return
    index = _index_map(narrow.beta.shape[0], wide.beta.shape[0])
    beta = narrow.beta_reparam(narrow.beta.detach().float())[index]
    gamma = narrow.gamma_reparam(narrow.gamma.detach().float())[index][:, index]
    if len(index) != narrow.beta.shape[0]:
        gamma = gamma / FACTOR
    wide.beta.data.copy_(wide.beta_reparam.init(beta))
    wide.gamma.data.copy_(wide.gamma_reparam.init(gamma))


def _pixel_shuffle_blocks(model: nn.Module) -> dict[str, int]:
    """Names of convolutions followed by PixelShuffle(r) in a Sequential, with r^2."""
    blocks = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Sequential):
            children = list(module.named_children())
            for (conv_name, conv), (_, nxt) in zip(children, children[1:]):
                if isinstance(conv, nn.Conv2d) and isinstance(nxt, nn.PixelShuffle):
                    blocks[f"{name}.{conv_name}" if name else conv_name] = nxt.upscale_factor**2
    return blocks


@torch.no_grad()
def widen_model(narrow: TCM, config: TCMConfig | None = None, *, noise: float = 0.05,
                seed: int = 0, analysis_only: bool = False) -> TCM:
    """A TCM of ``config`` (default :func:`widened_config`) computing what ``narrow`` computes.

    Args:
        narrow: the trained model (float32 or not; the result is float32).
        config: the wide configuration; must be ``narrow.config`` with N and the head sizes
            doubled, everywhere or in g_a only (``analysis_N``, ``analysis_head_dims``).
        noise: standard deviation of the symmetry-breaking perturbation of each duplicated
            weight pair, relative to the layer's weight spread (0: exact copies, which
            would stay copies under training).
        seed: seed of that perturbation.
        analysis_only: without ``config``, widen g_a alone (the decoder is copied as it is).
    """
    wide_config = config or widened_config(narrow.config, analysis_only=analysis_only)
    check_widenable(narrow.config, wide_config)
    wide = TCM(wide_config)
    generator = torch.Generator().manual_seed(seed)
    narrow_modules = dict(narrow.named_modules())
    shuffled = _pixel_shuffle_blocks(wide)
    handled: set[str] = set()
    for name, module in wide.named_modules():
        source = narrow_modules[name]
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            _widen_affine(module, source, shuffled.get(name, 1), noise, generator)
        elif isinstance(module, nn.LayerNorm):
            index = _index_map(source.weight.shape[0], module.weight.shape[0])
            module.weight.copy_(source.weight.float()[index])
            module.bias.copy_(source.bias.float()[index])
        elif isinstance(module, GDN):
            _widen_gdn(module, source)
        elif isinstance(module, WindowAttention):
            module.relative_position_params.copy_(source.relative_position_params)
            handled.add(f"{name}.relative_position_params")
            continue
        else:
            continue
        handled.update(f"{name}.{p}" if name else p for p, _ in module.named_parameters(recurse=False))
    for name, module in wide.named_modules():
        if isinstance(module, WindowAttention) and module.head_dim != narrow_modules[name].head_dim:
            # queries: the wider head sums each product twice; 1/sqrt(2) with 1/sqrt(2d)
            # gives back 1/sqrt(d) on the narrow scores
            ratio = module.head_dim / narrow_modules[name].head_dim
            q_rows = slice(0, module.dim)
            factor = math.sqrt(ratio) / FACTOR
            module.embedding_layer.weight[q_rows] *= factor
            module.embedding_layer.bias[q_rows] *= factor
    narrow_params = dict(narrow.named_parameters())
    for name, param in wide.named_parameters():
        if name in handled:
            continue
        if param.shape != narrow_params[name].shape:
            raise WideningError(f"no widening rule for {name} {tuple(narrow_params[name].shape)}"
                                f" -> {tuple(param.shape)}")
        param.copy_(narrow_params[name])
    return wide
