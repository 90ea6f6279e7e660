"""Model configuration: one frozen dataclass and the named presets.

Every width, depth, window, head size and slice count of the TCM network comes from
:class:`TCMConfig`; the model code holds no literal channel counts. Presets ``tcm-s``,
``tcm-m`` and ``tcm-l`` reproduce the authors' small / medium / large models (N = 64 / 96 / 128,
M = 320; Liu, Sun, Katto, CVPR 2023, Sec. 4.1), whose checkpoints load into them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping

#: downsampling factor of the analysis transform g_a (four stride-2 stages)
LATENT_STRIDE = 16
#: downsampling factor of the hyper-latent z (two more stride-2 stages in h_a)
HYPER_LATENT_STRIDE = 64


#: fields that may be None (off) instead of their type
_OPTIONAL_FIELDS = ("analysis_N", "analysis_head_dims")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked_value(name: str, default: Any, value: Any) -> Any:
    """``value`` for field ``name`` from a stored dict, in the field's type (lists become
    tuples); ValueError naming the field when it has another type. Stored configs come from
    checkpoint files, which may be anything."""
    if value is None and name in _OPTIONAL_FIELDS:
        return None
    if name in ("main_head_dims", "context_widths", "rate_lambdas", "analysis_head_dims"):
        kind = _is_number if name == "rate_lambdas" else _is_integer
        if isinstance(value, (list, tuple)) and all(kind(item) for item in value):
            return tuple(value)
    elif isinstance(default, str) or name == "name":
        if isinstance(value, str):
            return value
    elif isinstance(default, float):
        if _is_number(value):
            return float(value)
    elif _is_integer(value):
        return value
    raise ValueError(f"TCMConfig.{name} has the wrong type: {value!r}")


@dataclass(frozen=True)
class TCMConfig:
    """Hyper-parameters of a TCM network.

    Attributes:
        name: preset name (informative; identity of weights is their hash).
        N: half the channel width of the main and hyper transforms (C = 2N); the CNN and
            transformer paths of a TCM block each get N channels.
        M: channels of the latent y (at 1/16 of the image).
        hyper_channels: channels of the hyper-latent z (at 1/64).
        num_slices: the channel slices y is split into for the channel-wise context model.
        max_support_slices: how many earlier slices each slice sees (-1: all of them).
        main_depth: TCM blocks per stage of g_a and g_s.
        main_head_dims: head size of the three TCM stages of g_a (g_s uses them reversed).
        main_window: attention window of g_a and g_s.
        hyper_depth: TCM blocks in h_a, h_mean_s and h_scale_s.
        hyper_head_dim: head size of the hyper transforms' TCM blocks.
        hyper_window: attention window of the hyper transforms.
        swatten_width: inner width of the SWAtten modules of the entropy model.
        swatten_head_dim: head size of SWAtten's Swin blocks.
        swatten_window: attention window of SWAtten.
        context_widths: hidden widths of the mean / scale / LRP conv stacks.
        lrp_scale: amplitude of the latent residual prediction, ``lrp_scale * tanh(r)``.
        scale_min, scale_max, scale_levels: the Gaussian scale table (CompressAI's default).
        mlp_ratio: width of the transformer MLP relative to its input.
        analysis_N: N of the analysis transform g_a alone (None: N). A wider g_a can be a better
            encoder at the cost of encoding time only: the decoder, its speed and the bitstream
            syntax stay those of N (``tcm widen --analysis-only`` makes one from trained
            weights). The paper's models use N throughout.
        analysis_head_dims: head sizes of g_a's three stages (None: ``main_head_dims``).
        rate_lambdas: empty for a fixed-rate model (the paper's). Otherwise the model is
            variable-rate with gain units (Cui et al., "Asymmetric Gained Deep Image
            Compression with Continuous Rate Adaptation", CVPR 2021): one learned gain
            vector per listed rate-distortion trade-off lambda (ascending), interpolated
            for continuous qualities in between.
    """

    name: str = "custom"
    N: int = 64
    M: int = 320
    hyper_channels: int = 192
    num_slices: int = 5
    max_support_slices: int = 5
    main_depth: int = 2
    main_head_dims: tuple[int, int, int] = (8, 16, 32)
    main_window: int = 8
    hyper_depth: int = 2
    hyper_head_dim: int = 32
    hyper_window: int = 4
    swatten_width: int = 128
    swatten_head_dim: int = 16
    swatten_window: int = 8
    context_widths: tuple[int, int] = (224, 128)
    lrp_scale: float = 0.5
    scale_min: float = 0.11
    scale_max: float = 256.0
    scale_levels: int = 64
    mlp_ratio: int = 4
    rate_lambdas: tuple[float, ...] = ()
    analysis_N: int | None = None
    analysis_head_dims: tuple[int, int, int] | None = None

    def __post_init__(self) -> None:
        positive = {
            "N": self.N, "M": self.M, "hyper_channels": self.hyper_channels,
            "num_slices": self.num_slices, "main_window": self.main_window,
            "hyper_window": self.hyper_window, "swatten_width": self.swatten_width,
            "swatten_window": self.swatten_window, "scale_levels": self.scale_levels,
            "mlp_ratio": self.mlp_ratio,
        }
        for key, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TCMConfig.{key} must be a positive integer, got {value!r}")
        for key in ("main_depth", "hyper_depth"):
            if getattr(self, key) < 0:
                raise ValueError(f"TCMConfig.{key} must be >= 0, got {getattr(self, key)}")
        if self.M % self.num_slices:
            raise ValueError(
                f"TCMConfig.M={self.M} must be divisible by num_slices={self.num_slices}"
            )
        if len(self.main_head_dims) != 3:
            raise ValueError(f"TCMConfig.main_head_dims needs 3 entries, got {self.main_head_dims}")
        heads = (*self.main_head_dims, *(self.analysis_head_dims or ()), self.hyper_head_dim, self.swatten_head_dim)
        if not all(isinstance(head, int) and head >= 1 for head in heads):
            raise ValueError(f"TCMConfig head sizes must be positive integers, got {heads}")
        for head_dim in self.main_head_dims:
            if self.N % head_dim:
                raise ValueError(f"TCMConfig.N={self.N} is not divisible by head size {head_dim}")
        if self.analysis_N is not None and (not isinstance(self.analysis_N, int) or self.analysis_N < 1):
            raise ValueError(f"TCMConfig.analysis_N must be a positive integer or None, got {self.analysis_N!r}")
        if self.analysis_head_dims is not None and len(self.analysis_head_dims) != 3:
            raise ValueError(f"TCMConfig.analysis_head_dims needs 3 entries, got {self.analysis_head_dims}")
        for head_dim in self.analysis_heads:
            if self.analysis_half_width % head_dim:
                raise ValueError(f"TCMConfig: g_a's N={self.analysis_half_width} is not divisible by "
                                 f"its head size {head_dim} (analysis_N / analysis_head_dims)")
        if self.N % self.hyper_head_dim:
            raise ValueError(
                f"TCMConfig.N={self.N} is not divisible by hyper_head_dim={self.hyper_head_dim}"
            )
        if self.swatten_width % self.swatten_head_dim:
            raise ValueError(
                f"TCMConfig.swatten_width={self.swatten_width} is not divisible by "
                f"swatten_head_dim={self.swatten_head_dim}"
            )
        if self.swatten_width % 2:
            raise ValueError("TCMConfig.swatten_width must be even (AttentionBlock halves it)")
        for window in (self.main_window, self.hyper_window, self.swatten_window):
            if window % 2:
                raise ValueError(f"attention windows must be even (shifted by half), got {window}")
        if len(self.context_widths) != 2 or min(self.context_widths) < 1:
            raise ValueError(f"TCMConfig.context_widths needs 2 positive widths, got {self.context_widths}")
        if any(b <= a for a, b in zip(self.rate_lambdas, self.rate_lambdas[1:])) or any(
            lam <= 0 for lam in self.rate_lambdas
        ):
            raise ValueError(f"TCMConfig.rate_lambdas must be positive and ascending, got {self.rate_lambdas}")
        if len(self.rate_lambdas) == 1:
            raise ValueError("TCMConfig.rate_lambdas needs at least 2 entries (or none for a fixed-rate model)")
        if not 0 < self.scale_min < self.scale_max:
            raise ValueError("TCMConfig needs 0 < scale_min < scale_max")

    # ----------------------------------------------------------------- derived sizes
    @property
    def width(self) -> int:
        """C = 2N, the channel width of the main and hyper transforms."""
        return 2 * self.N

    @property
    def analysis_half_width(self) -> int:
        """N of g_a: ``analysis_N``, or N."""
        return self.N if self.analysis_N is None else self.analysis_N

    @property
    def analysis_width(self) -> int:
        """C_a = 2 N_a, the channel width of the analysis transform g_a (C unless widened)."""
        return 2 * self.analysis_half_width

    @property
    def analysis_heads(self) -> tuple[int, int, int]:
        """Head sizes of g_a's three stages: ``analysis_head_dims``, or ``main_head_dims``."""
        return self.main_head_dims if self.analysis_head_dims is None else self.analysis_head_dims

    @property
    def slice_channels(self) -> int:
        """Channels of one latent slice, M / num_slices."""
        return self.M // self.num_slices

    def support_slices(self, index: int) -> int:
        """How many decoded slices slice ``index`` is conditioned on."""
        if self.max_support_slices < 0:
            return index
        return min(index, self.max_support_slices)

    def context_channels(self, index: int) -> int:
        """Input channels c_i of slice ``index``'s mean/scale networks: M + slice * support."""
        return self.M + self.slice_channels * self.support_slices(index)

    @property
    def rate_levels(self) -> int:
        """Number of gain vectors (0 for a fixed-rate model)."""
        return len(self.rate_lambdas)

    @property
    def variable_rate(self) -> bool:
        return self.rate_levels > 0

    @property
    def pad_multiple(self) -> int:
        """Image sides are padded to a multiple of this so every attention window is whole.

        Windows of g_a/g_s sit at 1/2, 1/4, 1/8; SWAtten at 1/16; the hyper blocks at 1/32;
        z itself at 1/64. For the paper's sizes this is 128.
        """
        needs = [HYPER_LATENT_STRIDE, LATENT_STRIDE * self.swatten_window,
                 (HYPER_LATENT_STRIDE // 2) * self.hyper_window]
        needs += [(2 ** level) * self.main_window for level in (1, 2, 3)]
        return math.lcm(*needs)

    # ----------------------------------------------------------------- (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TCMConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown TCMConfig fields: {sorted(unknown)}")
        kwargs = dict(data)
        for field in dataclasses.fields(cls):
            if field.name in kwargs:
                kwargs[field.name] = _checked_value(field.name, field.default, kwargs[field.name])
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "TCMConfig":
        return dataclasses.replace(self, **changes)


#: the fields that only shape the Gaussian scale table (not learned: every load rebuilds it),
#: so weights that differ in them alone are the same network (``tcm export`` averages them)
SCALE_TABLE_FIELDS = ("scale_min", "scale_max", "scale_levels")


#: sized for training on 2 CPU cores; variable rate; the starting point of tcm-cpu-wide.
#: ~1 s per training step (batch 8 x 128^2, one core), 4.9 M parameters. Eight lambdas
#: (older weights with six, from 0.0025, still load through their stored config): the two
#: lowest reach down towards 0.1 bpp on Kodak.
_TCM_CPU = TCMConfig(
    name="tcm-cpu", N=16, M=160, hyper_channels=64, main_head_dims=(8, 8, 8),
    hyper_head_dim=8, swatten_width=32, swatten_head_dim=8, context_widths=(64, 48),
    rate_lambdas=(0.0004, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08),
)
#: tcm-cpu with twice the transform width (C=64 instead of 32 in g_a, g_s and the hyper
#: transforms; heads twice as wide, entropy model unchanged), for the transform ceiling
#: that caps tcm-cpu near 29.6 dB on Kodak (model card). Made from trained tcm-cpu weights
#: by `tcm widen` (function-preserving, tcmcodec.widen), then trained on. The bundled
#: default model uses it (7.36 M parameters, 15.1 MB in fp16).
_TCM_CPU_WIDE = dataclasses.replace(_TCM_CPU, name="tcm-cpu-wide", N=32, main_head_dims=(16, 16, 16),
                                    hyper_head_dim=16)
#: minimal widths, same architecture: for fast tests
_TCM_TINY = TCMConfig(
    name="tcm-tiny", N=8, M=40, hyper_channels=16, main_head_dims=(4, 4, 8),
    hyper_head_dim=8, swatten_width=16, swatten_head_dim=8, context_widths=(16, 16),
)

PRESETS: dict[str, TCMConfig] = {
    # the authors' three models (45.18 M / 59.13 M / 76.57 M parameters)
    "tcm-s": TCMConfig(name="tcm-s", N=64),
    "tcm-m": TCMConfig(name="tcm-m", N=96),
    "tcm-l": TCMConfig(name="tcm-l", N=128),
    "tcm-cpu": _TCM_CPU,
    "tcm-cpu-wide": _TCM_CPU_WIDE,
    # tcm-cpu-wide with a twice as wide analysis transform g_a (C_a = 128): a better encoder
    # for the same decoder (same decoding cost). Made from trained tcm-cpu-wide weights by
    # `tcm widen --analysis-only`. Against the bundled line on the same batches it was
    # slightly behind per step (−4.1% against −4.3% validation BD-rate at 750 steps) at
    # half the steps per CPU-hour, so not used; kept for a GPU (model card).
    "tcm-cpu-wide-ax2": dataclasses.replace(_TCM_CPU_WIDE, name="tcm-cpu-wide-ax2", analysis_N=64,
                                            analysis_head_dims=(32, 32, 32)),
    "tcm-tiny": _TCM_TINY,
    "tcm-tiny-vr": dataclasses.replace(_TCM_TINY, name="tcm-tiny-vr", rate_lambdas=(0.004, 0.016, 0.064)),
}


def get_preset(name: str) -> TCMConfig:
    """The preset called ``name``; raises KeyError listing the known presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise KeyError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None
