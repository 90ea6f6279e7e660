"""The TCM network (Liu, Sun, Katto, "Learned Image Compression with Mixed
Transformer-CNN Architectures", CVPR 2023), with CompressAI's model contract
(forward / compress / decompress / update / aux_loss) but no dependency on CompressAI
(:mod:`tcmcodec.integrations.compressai` makes it a CompressAI model where that is wanted).

Data path (shapes for an input of (B, 3, H, W), H and W multiples of ``pad_multiple``)::

    x ─g_a─► y (B, M, H/16, W/16) ─h_a─► z (B, hyper, H/64, W/64) ─bottleneck─► ẑ
    ẑ ─h_mean_s / h_scale_s─► hyper means / scales (B, M, H/16, W/16)
    slice loop (i = 0..S-1): [hyper, ŷ_0..ŷ_{i-1}] ─SWAtten─► conv stack ─► μ_i, σ_i
        ŷ_i = Q(y_i - μ_i) + μ_i,  then ŷ_i += lrp_scale * tanh(LRP([support, ŷ_i]))
    ŷ ─g_s─► x̂ (B, 3, H, W)

The slice step is written once (:meth:`TCM._slice_loop`) and shared by :meth:`forward`
(training: noisy likelihoods, straight-through rounding), :meth:`compress` and
:meth:`decompress` (range coding, :mod:`tcmcodec.coding.latent_coder`, with the exact or
the float numerics of :mod:`tcmcodec.exact`), which differ only in how a slice is quantized
(:class:`SliceQuantizer`).
"""

from __future__ import annotations

import contextlib
from typing import Protocol

import torch
from torch import Tensor, nn

from tcmcodec.coding import latent_coder
from tcmcodec.coding.latent_coder import CodingTables
from tcmcodec.coding.tables import scale_table
from tcmcodec.config import LATENT_STRIDE, TCMConfig
from tcmcodec.entropy_models import EntropyBottleneck, GaussianConditional, quantize_ste
from tcmcodec.layers import SWAtten, tcm_stage
from tcmcodec.layers.gain import GainUnits
from tcmcodec.layers.pointwise import use_pointwise_matmul
from tcmcodec.branches import run_branches
from tcmcodec.layers.precision import reduced_precision, run_transform
from tcmcodec.layers.residual import (ResidualBlockUpsample, ResidualBlockWithStride, context_stack, conv3x3,
                                      subpel_conv3x3)
from tcmcodec.tiling import TilePlan, tiled_apply

#: a rate level: a float in [0, levels - 1] or a (B,) tensor of them; None for fixed-rate models
Rate = Tensor | float | None


class SliceQuantizer(Protocol):
    """How one latent slice is quantized, given its predicted mean and scale.

    Called with the slice index, μ_i and σ_i (B, M/S, h, w); returns ŷ_i before the
    latent residual prediction.
    """

    def __call__(self, index: int, mean: Tensor, scale: Tensor) -> Tensor: ...


class TCM(nn.Module):
    """TCM image compression model.

    Keeps CompressAI's contract: :meth:`forward` returns ``x_hat`` and ``likelihoods``
    (``y``, ``z``); :meth:`compress` returns ``strings`` (``[y_strings, z_strings]``, one per
    batch element) and ``shape`` (z's height and width); :meth:`decompress` returns
    ``x_hat`` clamped to [0, 1]; :meth:`update` builds the CDF tables; :meth:`aux_loss`.
    """

    def __init__(self, config: TCMConfig | None = None) -> None:
        super().__init__()
        cfg = config or TCMConfig()
        self.config = cfg
        N, C, M = cfg.N, cfg.width, cfg.M
        hd = cfg.main_head_dims
        main = dict(depth=cfg.main_depth, window=cfg.main_window, mlp_ratio=cfg.mlp_ratio)
        hyper = dict(depth=cfg.hyper_depth, head_dim=cfg.hyper_head_dim, window=cfg.hyper_window,
                     mlp_ratio=cfg.mlp_ratio)

        Na, Ca, hda = cfg.analysis_half_width, cfg.analysis_width, cfg.analysis_heads
        self.g_a = nn.Sequential(
            ResidualBlockWithStride(3, Ca, stride=2), *tcm_stage(Na, head_dim=hda[0], **main),
            ResidualBlockWithStride(Ca, Ca, stride=2), *tcm_stage(Na, head_dim=hda[1], **main),
            ResidualBlockWithStride(Ca, Ca, stride=2), *tcm_stage(Na, head_dim=hda[2], **main),
            conv3x3(Ca, M, stride=2),
        )
        self.g_s = nn.Sequential(
            ResidualBlockUpsample(M, C, 2), *tcm_stage(N, head_dim=hd[2], **main),
            ResidualBlockUpsample(C, C, 2), *tcm_stage(N, head_dim=hd[1], **main),
            ResidualBlockUpsample(C, C, 2), *tcm_stage(N, head_dim=hd[0], **main),
            subpel_conv3x3(C, 3, 2),
        )
        self.h_a = nn.Sequential(
            ResidualBlockWithStride(M, C, stride=2), *tcm_stage(N, **hyper),
            conv3x3(C, cfg.hyper_channels, stride=2),
        )
        self.h_mean_s = self._hyper_synthesis()
        self.h_scale_s = self._hyper_synthesis()

        S, K = cfg.num_slices, cfg.slice_channels
        swatten = dict(inner_width=cfg.swatten_width, head_dim=cfg.swatten_head_dim,
                       window=cfg.swatten_window, mlp_ratio=cfg.mlp_ratio)
        self.atten_mean = nn.ModuleList(
            nn.Sequential(SWAtten(cfg.context_channels(i), **swatten)) for i in range(S)
        )
        self.atten_scale = nn.ModuleList(
            nn.Sequential(SWAtten(cfg.context_channels(i), **swatten)) for i in range(S)
        )
        self.cc_mean_transforms = nn.ModuleList(
            context_stack(cfg.context_channels(i), cfg.context_widths, K) for i in range(S)
        )
        self.cc_scale_transforms = nn.ModuleList(
            context_stack(cfg.context_channels(i), cfg.context_widths, K) for i in range(S)
        )
        self.lrp_transforms = nn.ModuleList(
            context_stack(cfg.context_channels(i) + K, cfg.context_widths, K) for i in range(S)
        )
        self.entropy_bottleneck = EntropyBottleneck(cfg.hyper_channels)
        self.gaussian_conditional = GaussianConditional()
        if cfg.variable_rate:
            # quantization step ~ 1/gain and MSE ~ step^2, so gains start at sqrt(lambda)
            mid = cfg.rate_lambdas[len(cfg.rate_lambdas) // 2]
            init = [(lam / mid) ** 0.5 for lam in cfg.rate_lambdas]
            self.gain_y = GainUnits(M, init)
            self.inverse_gain_y = GainUnits(M, [1 / g for g in init])
            self.gain_z = GainUnits(cfg.hyper_channels, init)
            self.inverse_gain_z = GainUnits(cfg.hyper_channels, [1 / g for g in init])
        # bit-exact results whatever the number of threads (see layers/pointwise.py); g_a
        # runs only in the encoder and keeps oneDNN's faster 1x1 convolutions
        for name, module in self.named_children():
            if name != "g_a":
                use_pointwise_matmul(module)
        #: run the mean and scale branches of the entropy model on two cores while coding
        #: with the float numerics
        self.parallel_branches = True
        #: code with the exact (platform-independent) entropy-parameter path by default;
        #: False for weights whose float outputs must match another implementation's
        self.exact_entropy = True
        #: g_a and g_s keep channels-last activations at inference on the CPU (float32 g_a and
        #: g_s 1.13x faster; other last bits); False: the reference's order, as the authors' code
        self.channels_last_transforms = True
        self._coding_tables: CodingTables | None = None
        #: the name ``.tcm`` files record: a zoo name, else the config's (set by the loader)
        self.model_name: str = cfg.name
        #: identity of the weights (:func:`tcmcodec.checkpoints.weights_hash`), which files
        #: record and decoders check; None until a loader or the codec computes it
        self.weights_hash: str | None = None
        #: reduced-precision compute (e.g. torch.bfloat16) for the inner layers of g_a and
        #: g_s, a training option (``tcm train --amp bf16``); None: float32 throughout
        self.transform_dtype: torch.dtype | None = None
        #: precision of g_a's inner layers outside training (None: float32); g_a runs only in
        #: the encoder, so this never changes whether or how a file decodes (see load_model)
        self.analysis_dtype: torch.dtype | None = None
        #: reduced-precision compute for the entropy-parameter networks (h_a, h_s, SWAtten,
        #: the slice transforms) in training mode only (``tcm train --amp bf16-all``); the
        #: means, scales, likelihoods and ŷ stay float32, and coding never uses it
        self.entropy_dtype: torch.dtype | None = None

    def _hyper_synthesis(self) -> nn.Sequential:
        cfg = self.config
        return nn.Sequential(
            ResidualBlockUpsample(cfg.hyper_channels, cfg.width, 2),
            *tcm_stage(cfg.N, cfg.hyper_depth, cfg.hyper_head_dim, cfg.hyper_window, cfg.mlp_ratio),
            subpel_conv3x3(cfg.width, cfg.M, 2),
        )

    # ------------------------------------------------------------------ entropy model
    def scale_table(self) -> Tensor:
        """The Gaussian scale table (L,) float64 of the config, the same bits everywhere."""
        cfg = self.config
        return scale_table(cfg.scale_min, cfg.scale_max, cfg.scale_levels)

    def update(self, scale_table: Tensor | None = None, force: bool = False, update_quantiles: bool = False) -> bool:
        """Build the coder's probability tables (CompressAI contract; see
        :mod:`tcmcodec.coding.tables`). The scale table always comes from the config: a
        ``scale_table`` argument is refused, since the decoder could not know it."""
        if scale_table is not None:
            raise ValueError("the scale table comes from the config (scale_min, scale_max, scale_levels)")
        if self._coding_tables is not None and not force:
            return False
        if update_quantiles:
            self.entropy_bottleneck.fit_quantiles()
        self._coding_tables = latent_coder.build_tables(self)
        return True

    def aux_loss(self) -> Tensor:
        """The entropy bottleneck's auxiliary loss (trains its quantiles only)."""
        return self.entropy_bottleneck.loss()

    def coding_tables(self) -> CodingTables:
        """The tables :meth:`update` built; built now if it has not run since the model was
        made or loaded."""
        if self._coding_tables is None:
            self.update()
        return self._coding_tables

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict``; the coding tables are rebuilt on next use, from
        the new weights."""
        result = nn.Module.load_state_dict(self, state_dict, strict=strict, assign=assign)
        self._coding_tables = None
        return result

    # ------------------------------------------------------------------ rate control
    @property
    def rate_levels(self) -> int:
        """Number of trained rate levels (0 for a fixed-rate model)."""
        return self.config.rate_levels

    def _check_rate(self, rate: Rate) -> Rate:
        if not self.config.variable_rate:
            if rate is not None:
                raise ValueError("this model has a fixed rate: pass rate=None")
            return None
        if rate is None:
            return float(self.rate_levels - 1)
        return rate

    def _check_plan(self, plan: TilePlan) -> None:
        align = self.config.pad_multiple
        if plan.tile % align or plan.halo % align or plan.tile <= 0:
            raise ValueError(f"tile ({plan.tile}) and halo ({plan.halo}) must be multiples of {align}")

    def analysis(self, x: Tensor, rate: Rate = None, tiling: TilePlan | None = None) -> tuple[Tensor, Tensor]:
        """y (B, M, H/16, W/16) and z (B, hyper, H/64, W/64), gained for ``rate``.

        With ``tiling`` (and an image larger than its threshold), g_a runs tile by tile.
        """
        return self.latents(self.analysis_transform(x, tiling), rate)

    def analysis_transform(self, x: Tensor, tiling: TilePlan | None = None) -> Tensor:
        """g_a alone: the ungained y (B, M, H/16, W/16), the same at every rate, so an encoder
        trying several rates (:mod:`tcmcodec.ratecontrol`) runs it once."""
        dtype = self.transform_dtype or (None if self.training else self.analysis_dtype)
        return self._transform(self.g_a, x, dtype, len(self.g_a) - 1, tiling, 1, 1 / LATENT_STRIDE)

    def _transform(self, layers: nn.Sequential, x: Tensor, dtype: torch.dtype | None, full_precision: int,
                   tiling: TilePlan | None, pixels_per_input: int, scale: float) -> Tensor:
        """:func:`run_transform` of g_a or g_s, tile by tile where ``tiling`` applies to the image
        (its tiles and halos in image pixels, ``pixels_per_input`` per input position;
        ``scale`` output positions per input position)."""
        channels_last = self.channels_last_transforms and not self.training

        def transform(part: Tensor) -> Tensor:
            return run_transform(layers, part, dtype, full_precision, channels_last)

        if tiling is None or not tiling.applies(*(pixels_per_input * d for d in x.shape[-2:])):
            return transform(x)
        self._check_plan(tiling)
        return tiled_apply(transform, x, tiling.tile // pixels_per_input, tiling.halo // pixels_per_input, scale)

    def latents(self, y: Tensor, rate: Rate = None) -> tuple[Tensor, Tensor]:
        """What :meth:`analysis` returns, from g_a's output y: y gained for ``rate`` and
        z = h_a(y) gained (B, hyper, H/64, W/64)."""
        if rate is not None:
            y = self.gain_y(y, rate)
        with self._entropy_precision(y):
            z = self._full_precision(self.h_a(y))
        if rate is not None:
            z = self.gain_z(z, rate)
        return y, z

    def synthesis(self, y_hat: Tensor, rate: Rate = None, tiling: TilePlan | None = None,
                  dtype: torch.dtype | None = None) -> Tensor:
        """x̂ (B, 3, H, W) from ŷ (not clamped); tiled like :meth:`analysis`. ``dtype``: the
        precision of g_s's inner layers (None: float32; training uses :attr:`transform_dtype`)."""
        if rate is not None:
            y_hat = self.inverse_gain_y(y_hat, rate)
        return self._transform(self.g_s, y_hat, self.transform_dtype or dtype, 0, tiling, LATENT_STRIDE, LATENT_STRIDE)

    def hyper_parameters(self, z_hat: Tensor, rate: Rate = None, parallel: bool = False) -> tuple[Tensor, Tensor]:
        """Hyper means and scales (B, M, 4h, 4w) from ẑ (B, hyper, h, w)."""
        if rate is not None:
            z_hat = self.inverse_gain_z(z_hat, rate)
        if self.training and self.entropy_dtype is not None:
            with self._entropy_precision(z_hat):
                return self.h_mean_s(z_hat).float(), self.h_scale_s(z_hat).float()
        return run_branches(lambda: self.h_mean_s(z_hat), lambda: self.h_scale_s(z_hat), parallel)

    def _entropy_precision(self, x: Tensor) -> contextlib.AbstractContextManager:
        """Autocast to :attr:`entropy_dtype` in training mode, else nothing."""
        return reduced_precision(x.device.type, self.entropy_dtype if self.training else None)

    def _full_precision(self, x: Tensor) -> Tensor:
        """``x`` in float32 where :meth:`_entropy_precision` reduced it, else unchanged."""
        return x.float() if self.training and self.entropy_dtype is not None else x

    def _slice_loop(self, latent_means: Tensor, latent_scales: Tensor, quantize: SliceQuantizer,
                    parallel: bool = False) -> Tensor:
        """The per-slice step of the channel-wise context model, written once.

        For each slice i: condition on the hyper output and the earlier decoded slices,
        predict μ_i and σ_i through SWAtten and the conv stacks (the mean and scale branches
        on two cores when ``parallel``), let ``quantize`` produce ŷ_i, then add the latent
        residual prediction. Returns ŷ (B, M, h, w).
        """
        cfg = self.config
        decoded: list[Tensor] = []
        for i in range(cfg.num_slices):
            support = decoded[: cfg.support_slices(i)]

            def mean_branch() -> tuple[Tensor, Tensor]:
                mean_support = self.atten_mean[i](torch.cat([latent_means, *support], dim=1))
                return mean_support, self.cc_mean_transforms[i](mean_support)

            def scale_branch() -> Tensor:
                return self.cc_scale_transforms[i](self.atten_scale[i](torch.cat([latent_scales, *support], dim=1)))

            with self._entropy_precision(latent_means):
                (mean_support, mean), scale = run_branches(mean_branch, scale_branch, parallel)
            y_hat_slice = quantize(i, self._full_precision(mean), self._full_precision(scale))
            with self._entropy_precision(latent_means):
                residual = self._full_precision(self.lrp_transforms[i](torch.cat([mean_support, y_hat_slice], dim=1)))
            decoded.append(y_hat_slice + cfg.lrp_scale * torch.tanh(residual))
        return torch.cat(decoded, dim=1)

    # ------------------------------------------------------------------ training
    def forward(self, x: Tensor, rate: Rate = None) -> dict:
        """x (B, 3, H, W) in [0, 1] -> ``x_hat`` (not clamped) and likelihoods of y and z.

        ``rate``: for variable-rate models, the level (float or (B,) tensor); default the
        highest.
        """
        rate = self._check_rate(rate)
        y, z = self.analysis(x, rate)
        return self.forward_latents(y, z, rate)

    def forward_latents(self, y: Tensor, z: Tensor, rate: Rate = None,
                        coded_likelihoods: list[Tensor] | None = None) -> dict:
        """The training path from the analysis output on: y (B, M, h, w) and z (B, hyper,
        h/4, w/4), as :meth:`analysis` returns them, to what :meth:`forward` returns.

        Likelihoods use additive noise in training mode and rounding in eval mode (CompressAI's
        entropy models); the values passed on are rounded with a straight-through gradient.
        Encoder-side refinement (:mod:`tcmcodec.refine`) optimises y and z through it.

        With ``coded_likelihoods`` (a list), the likelihoods the coder codes (rounded z, then
        the rounded y slices; see :meth:`forward_y`) are appended to it, without gradient.
        """
        rate = self._check_rate(rate)
        bottleneck = self.entropy_bottleneck
        _, z_likelihoods = bottleneck(z)
        if coded_likelihoods is not None:
            with torch.no_grad():
                coded_likelihoods.append(bottleneck(z, training=False)[1])
        z_offset = bottleneck._get_medians()
        z_hat = quantize_ste(z - z_offset) + z_offset
        latent_means, latent_scales = self.hyper_parameters(z_hat, rate)
        x_hat, y_likelihoods = self.forward_y(y, latent_means, latent_scales, rate, coded_likelihoods)
        return {"x_hat": x_hat, "likelihoods": {"y": y_likelihoods, "z": z_likelihoods}}

    def forward_y(self, y: Tensor, latent_means: Tensor, latent_scales: Tensor,
                  rate: Rate = None, coded_likelihoods: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """The part of :meth:`forward_latents` after the hyperprior: x̂ (not clamped) and the
        likelihoods of y (B, M, h, w), given the hyper means and scales (B, M, h, w).

        With ``coded_likelihoods`` (a list), the likelihoods of the rounded slices, which the
        coder codes (the noisy ones are the training proxy), are appended to it, without
        gradient: refinement keeps the iterate that codes best.
        """
        y_slices = y.chunk(self.config.num_slices, dim=1)
        likelihoods: list[Tensor] = []
        gc = self.gaussian_conditional

        def noisy(index: int, mean: Tensor, scale: Tensor) -> Tensor:
            _, lik = gc(y_slices[index], scale, mean)
            likelihoods.append(lik)
            y_hat = quantize_ste(y_slices[index] - mean) + mean
            if coded_likelihoods is not None:
                with torch.no_grad():  # y_hat is already rounded: rounding it again changes nothing
                    coded_likelihoods.append(gc(y_hat, scale, mean, training=False)[1])
            return y_hat

        y_hat = self._slice_loop(latent_means, latent_scales, noisy)
        return self.synthesis(y_hat, rate), torch.cat(likelihoods, dim=1)

    # ------------------------------------------------------------------ coding
    def scale_indexes(self, scale: Tensor) -> Tensor:
        """Scale-table index (int64) of each σ (see :func:`latent_coder.scale_indexes`)."""
        return latent_coder.scale_indexes(self, scale)

    def _exact(self, exact: bool | None) -> bool:
        return self.exact_entropy if exact is None else bool(exact)

    @torch.no_grad()
    def compress(self, x: Tensor, rate: Rate = None, tiling: TilePlan | None = None,
                 exact: bool | None = None) -> dict:
        """x (B, 3, H, W) -> {"strings": [y_strings, z_strings], "shape": (h_z, w_z), "checks",
        "exact"}; ``exact`` picks the entropy path's numerics (default :attr:`exact_entropy`)."""
        rate = self._check_rate(rate)
        y, z = self.analysis(x, rate, tiling)
        return self.compress_analysis(y, z, rate, exact=exact)

    @torch.no_grad()
    def compress_analysis(self, y: Tensor, z: Tensor, rate: Rate = None, keep_y_hat: bool = False,
                          exact: bool | None = None) -> dict:
        """Code y and z as :meth:`analysis` returns them (or as an encoder refined them):
        what :meth:`compress` returns; with ``keep_y_hat`` also ``"y_hat"``, the ŷ the decoder
        will rebuild (B, M, h, w), whose :meth:`synthesis` is the decoded image."""
        rate = self._check_rate(rate)
        return latent_coder.encode_latents(self, y, z, rate, self._exact(exact), keep_y_hat)

    @torch.no_grad()
    def decompress(self, strings: list, shape, rate: Rate = None, tiling: TilePlan | None = None,
                   exact: bool | None = None, checks: list[list[int]] | None = None,
                   synthesis_dtype: torch.dtype | None = None) -> dict:
        """Inverse of :meth:`compress`: {"x_hat": (B, 3, H, W) clamped to [0, 1], "checks": the
        CRCs of the decoded symbols ([y, z], to compare with the encoder's), "digests": their
        SHA-256}. Given the encoder's ``checks``, a difference raises
        :class:`~tcmcodec.coding.latent_coder.SymbolMismatch` before the synthesis runs (in
        ``synthesis_dtype``, see :meth:`synthesis`)."""
        rate = self._check_rate(rate)
        y_hat, symbols = latent_coder.decode_latents(self, strings, shape, rate, self._exact(exact), checks)
        x_hat = self.synthesis(y_hat, rate, tiling, synthesis_dtype).clamp_(0, 1)
        return {"x_hat": x_hat, "checks": symbols.checks, "digests": symbols.digests}
