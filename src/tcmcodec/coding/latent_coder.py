"""Coding a TCM's latents to strings and back: the hyper-latent z, then y slice by slice.

Data path (per image of a batch; shapes for one image)::

    z (hyper, h, w) ─round(z - median)─► symbols, table = channel ─► z string
    ẑ ─h_mean_s / h_scale_s─► μ_hyper, σ_hyper (M, 4h, 4w)
    slice i: [μ_hyper | σ_hyper, ŷ_<i] ─SWAtten, convs─► μ_i, σ_i
             symbols round(y_i - μ_i), table = scale index of σ_i ─► y string
             ŷ_i = symbols + μ_i, then + LRP

Two numerics for the entropy-parameter networks (h_s, SWAtten, the conv stacks, LRP, the
gains): **exact** (:class:`~tcmcodec.exact.mode.ExactArithmetic`, float64 block floating
point: the same means and scale indexes on every CPU kernel set, thread count and GPU,
so a file decodes everywhere) and **float** (the networks as trained, float32, bit-exact
only on the kind of computer that wrote the file; kept for the authors' checkpoints,
whose reference outputs it reproduces). The probability tables are exact in both.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
from torch import Tensor

from tcmcodec.coding.range_coder import CodingModels, CorruptStream, SymbolDecoder, SymbolEncoder
from tcmcodec.coding.tables import factorized_tables, gaussian_tables, scale_table
from tcmcodec.exact.mode import ExactArithmetic

if TYPE_CHECKING:
    from tcmcodec.model import TCM

#: threads for the float entropy path. Its means and scales must be bit-identical in encoder
#: and decoder, and oneDNN convolutions on small maps give other bits with other thread
#: counts, so the float path always runs with this fixed count (the exact path needs none).
FLOAT_PATH_THREADS = 1


@contextlib.contextmanager
def fixed_threads(count: int) -> Iterator[None]:
    """Run the enclosed torch CPU ops with exactly ``count`` intra-op threads."""
    previous = torch.get_num_threads()
    if previous == count:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class CodingTables:
    """Everything the coder needs besides the networks, built by :meth:`TCM.update`:
    the scale table (L,) float64, the Gaussian and factorized models, z's medians (C,)."""

    scales: Tensor
    gaussian: CodingModels
    factorized: CodingModels
    medians: Tensor


def build_tables(model: "TCM") -> CodingTables:
    cfg = model.config
    scales = scale_table(cfg.scale_min, cfg.scale_max, cfg.scale_levels)
    factorized, medians = factorized_tables(model.entropy_bottleneck)
    return CodingTables(scales, CodingModels(gaussian_tables(scales)), CodingModels(factorized), medians)


def scale_indexes(model: "TCM", scale: Tensor) -> Tensor:
    """Scale-table index (int64) of each σ: after the lower bound σ >= table[0], the number
    of table entries (excluding the last) strictly below σ."""
    table = model.coding_tables().scales[:-1].to(scale.device)
    return torch.bucketize(model.gaussian_conditional.lower_bound_scale(scale).to(torch.float64), table)


@contextlib.contextmanager
def entropy_numerics(exact: bool, parallel: bool) -> Iterator[None]:
    """Where the entropy-parameter networks run: :class:`ExactArithmetic` (any thread count;
    one per branch when the two branches run in parallel), or float32 with
    :data:`FLOAT_PATH_THREADS` threads."""
    threads = 1 if parallel else (torch.get_num_threads() if exact else FLOAT_PATH_THREADS)
    with fixed_threads(threads), (ExactArithmetic() if exact else contextlib.nullcontext()):
        yield


def _z_indexes(channels: int, height: int, width: int) -> np.ndarray:
    return np.repeat(np.arange(channels), height * width)


def encode_latents(model: "TCM", y: Tensor, z: Tensor, rate: float | Tensor | None, exact: bool,
                   keep_y_hat: bool = False) -> dict:
    """Code y (B, M, 4h, 4w) and z (B, hyper, h, w): CompressAI's ``compress`` output plus
    ``"checks"`` ([y CRCs, z CRCs], one per image) and ``"exact"``; ``"y_hat"`` on request."""
    if not (torch.isfinite(y).all() and torch.isfinite(z).all()):
        raise ValueError("the latents are not finite: the weights or the input are broken")
    tables = model.coding_tables()
    medians = tables.medians.to(z.device)[None, :, None, None]
    z_symbols = torch.round(z - medians)
    z_hat = z_symbols + medians
    indexes = _z_indexes(*z.shape[1:])
    z_strings, z_checks = [], []
    for b in range(z.shape[0]):
        encoder = SymbolEncoder()
        encoder.encode(z_symbols[b].reshape(-1).long().cpu().numpy(), indexes, tables.factorized)
        z_strings.append(encoder.finish())
        z_checks.append(encoder.check)

    encoders = [SymbolEncoder() for _ in range(y.shape[0])]
    y_slices = y.chunk(model.config.num_slices, dim=1)

    def to_symbols(index: int, mean: Tensor, scale: Tensor) -> Tensor:
        symbols = torch.round(y_slices[index] - mean)
        table = scale_indexes(model, scale)
        for b, encoder in enumerate(encoders):
            encoder.encode(symbols[b].reshape(-1).long().cpu().numpy(), table[b].reshape(-1).cpu().numpy(),
                           tables.gaussian)
        return symbols + mean

    y_hat = _entropy_path(model, z_hat, rate, exact, to_symbols)
    out = {"strings": [[e.finish() for e in encoders], z_strings], "shape": z.shape[-2:],
           "checks": [[e.check for e in encoders], z_checks], "exact": exact}
    if keep_y_hat:
        out["y_hat"] = y_hat
    return out


@dataclass(frozen=True)
class DecodedSymbols:
    """What the decoder read, per string kind ([y, z], one entry per image): the CRC-32 of
    the symbols (compare with the encoder's) and their SHA-256 (for golden files)."""

    checks: list[list[int]]
    digests: list[list[str]]


class SymbolMismatch(CorruptStream):
    """The decoded symbols differ from the encoder's (their checks differ)."""


def decode_latents(model: "TCM", strings: list, shape: tuple[int, int], rate: float | Tensor | None,
                   exact: bool, expected_checks: list[list[int]] | None = None) -> tuple[Tensor, DecodedSymbols]:
    """ŷ (B, M, 4h, 4w) float32 from the strings of :func:`encode_latents`, and what was
    decoded (:class:`DecodedSymbols`).

    With ``expected_checks`` ([y CRCs, z CRCs], as the encoder reported them), raises
    :class:`SymbolMismatch` as soon as a check differs: after z, before the entropy
    parameters are computed, or after y. Raises :class:`~tcmcodec.coding.range_coder.CorruptStream`
    for undecodable data."""
    y_strings, z_strings = strings[0], strings[1]
    if len(y_strings) != len(z_strings):
        raise ValueError(f"{len(y_strings)} y strings for {len(z_strings)} z strings")
    tables = model.coding_tables()
    device = next(model.parameters()).device
    channels = model.config.hyper_channels
    height, width = (int(v) for v in shape)
    indexes = _z_indexes(channels, height, width)
    z_rows, z_decoders = [], []
    for string in z_strings:
        decoder = SymbolDecoder(string)
        z_rows.append(torch.from_numpy(decoder.decode(indexes, tables.factorized)).reshape(channels, height, width))
        z_decoders.append(decoder)
    if expected_checks is not None and [d.check for d in z_decoders] != list(expected_checks[1]):
        raise SymbolMismatch("the decoded hyper-latent symbols differ from the encoder's")
    z_hat = torch.stack(z_rows).to(device=device, dtype=torch.float32) + tables.medians.to(device)[None, :, None, None]

    decoders = [SymbolDecoder(string) for string in y_strings]

    def from_stream(index: int, mean: Tensor, scale: Tensor) -> Tensor:
        table = scale_indexes(model, scale)
        rows = [torch.from_numpy(d.decode(table[b].reshape(-1).cpu().numpy(), tables.gaussian))
                for b, d in enumerate(decoders)]
        return torch.stack(rows).reshape(mean.shape).to(device=mean.device, dtype=mean.dtype) + mean

    y_hat = _entropy_path(model, z_hat, rate, exact, from_stream)
    if expected_checks is not None and [d.check for d in decoders] != list(expected_checks[0]):
        raise SymbolMismatch("the decoded latent symbols differ from the encoder's")
    kinds = (decoders, z_decoders)
    return y_hat, DecodedSymbols([[d.check for d in kind] for kind in kinds], [[d.digest for d in kind] for kind in kinds])


def _entropy_path(model: "TCM", z_hat: Tensor, rate: float | Tensor | None, exact: bool, quantize) -> Tensor:
    """Hyper synthesis and the slice loop under the chosen numerics; ŷ as float32."""
    # the float path runs its branches on two cores (one thread each: its bits depend on the
    # thread count); the exact one is faster with all threads on one branch at a time (its
    # Python-side work would contend for the interpreter), and a GPU gains nothing from it
    parallel = (not exact and model.parallel_branches and torch.get_num_threads() > 1
                and z_hat.device.type == "cpu")
    with torch.no_grad(), entropy_numerics(exact, parallel):
        means, scales = model.hyper_parameters(z_hat, rate, parallel)
        y_hat = model._slice_loop(means, scales, quantize, parallel)
    return y_hat.float()


def platform_kind(device: torch.device | str = "cpu") -> str:
    """The kind of computer the float numerics are bound to, as a ``.tcm`` header names it:
    the CPU kernel set (or CUDA with its compute capability) and the PyTorch release."""
    device = torch.device(device)
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        kind = f"cuda-sm{major}{minor}"
    else:
        kind = f"{device.type}-{torch.backends.cpu.get_cpu_capability().lower()}"
    return f"{kind}/torch-{torch.__version__.split('+')[0]}"
