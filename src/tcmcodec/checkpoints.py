"""Reading checkpoints (ours and the authors') and writing inference exports.

A checkpoint is untrusted input: it is read with ``torch.load(..., weights_only=True)``.
Accepted layouts: a dict with ``state_dict`` (our training checkpoints and the authors'),
a bare state dict, keys prefixed with ``module.`` (DataParallel/DDP), the entropy
bottleneck in CompressAI's older naming (``_matrix0``, ``_bias0``, ``_factor0``) or the
current one, with or without the CDF buffers. The CDF tables are always rebuilt after
loading (``update(force=True)``), so a checkpoint cannot smuggle in malformed tables and
old and new checkpoints code identically.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from tcmcodec.config import PRESETS, SCALE_TABLE_FIELDS, TCMConfig
from tcmcodec.errors import ModelNotFoundError, TcmError
from tcmcodec.model import TCM
from tcmcodec.weights_layout import check_config_matches_weights, check_sizes, shape_fields

#: buffers derived from the parameters by ``update()``; rebuilt on every load
DERIVED_BUFFERS = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")
#: buffers that are constants of the architecture, set when the model is built and never
#: learned: LowerBound bounds (the 1e-9 likelihood floor, the 0.11 scale floor, GDN's), GDN's
#: pedestal, the bottleneck's quantile targets. Not stored, and loading keeps the constructed
#: values (hashed as such): float16 storage turned the likelihood floor into 0 (log2 0 = -inf).
CONSTANT_BUFFERS = ("bound", "pedestal", "scale_bound", "target")
#: what inference files leave out
NOT_STORED = DERIVED_BUFFERS + CONSTANT_BUFFERS


def is_stored(key: str) -> bool:
    """Whether state-dict entry ``key`` belongs in an inference file (not derived, not constant)."""
    return key.rsplit(".", 1)[-1] not in NOT_STORED


def is_constant(key: str) -> bool:
    """Whether state-dict entry ``key`` is one of the :data:`CONSTANT_BUFFERS`."""
    return key.rsplit(".", 1)[-1] in CONSTANT_BUFFERS


#: prefixes that wrappers (DataParallel, DDP, torch.compile) put in front of every key
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
#: format tag of the inference files written by :func:`export_weights`
EXPORT_FORMAT = "tcmcodec-weights-v1"


def read_checkpoint(path: str | os.PathLike, *, mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint file safely (``weights_only=True``) as a dict; ``mmap`` maps the
    tensors instead of reading them (zip-format files only, as ``torch.save`` writes today),
    for a caller that needs the small entries of a large file."""
    path = Path(path)
    if not path.is_file():
        raise ModelNotFoundError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as exc:  # pickle errors, zip errors, refused globals ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelNotFoundError(f"cannot read checkpoint {path}: {first[:200]}") from None
    if not isinstance(data, Mapping):
        raise ModelNotFoundError(f"checkpoint {path} holds a {type(data).__name__}, not a state dict")
    return dict(data)


def extract_state_dict(data: Mapping[str, Any]) -> dict[str, Tensor]:
    """The model state dict of a checkpoint, normalised to our key names.

    A training checkpoint of ours that keeps a moving average of the weights gives the
    average (``ema_state_dict``), the weights validation measured; others ``state_dict``.
    """
    state = data.get("ema_state_dict", data.get("state_dict", data))
    if not isinstance(state, Mapping):
        raise ModelNotFoundError("checkpoint has no state dict")
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, Tensor):
            continue
        for prefix in WRAPPER_PREFIXES:
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    if not any(k.startswith("entropy_bottleneck.") for k in out):
        raise ModelNotFoundError("checkpoint is not a TCM model (no entropy_bottleneck weights)")
    return {_current_bottleneck_name(key): value for key, value in out.items()}


#: the entropy bottleneck's density parameters in CompressAI's naming before 1.2
#: (``_matrix0``, ``_bias0``, ``_factor0``) and the list names that replaced them
_OLD_BOTTLENECK_KEY = re.compile(r"^entropy_bottleneck\._(matrix|bias|factor)(\d+)$")
_BOTTLENECK_LISTS = {"matrix": "matrices", "bias": "biases", "factor": "factors"}


def _current_bottleneck_name(key: str) -> str:
    """``entropy_bottleneck._matrix3`` -> ``entropy_bottleneck.matrices.3``; other keys as they are."""
    match = _OLD_BOTTLENECK_KEY.match(key)
    if match is None:
        return key
    return f"entropy_bottleneck.{_BOTTLENECK_LISTS[match.group(1)]}.{match.group(2)}"


def infer_config(state: Mapping[str, Tensor]) -> TCMConfig:
    """Rebuild the :class:`TCMConfig` from the tensor shapes of a state dict.

    Works for the authors' checkpoints, which carry no configuration.
    """
    fields = shape_fields(state)
    if fields["rate_levels"]:
        raise ModelNotFoundError("variable-rate checkpoint without its config: cannot infer rate_lambdas")
    N, M, num_slices = fields["N"], fields["M"], fields["num_slices"]
    slice_channels = M // num_slices
    max_support = (fields["context_channels"][-1] - M) // slice_channels
    if max_support >= num_slices - 1:  # the last slice sees all others: "all" (the paper's 5)
        max_support = num_slices
    heads = fields.get("main_head_dims", fields.get("analysis_head_dims", TCMConfig.main_head_dims))
    try:
        config = TCMConfig(
            N=N, M=M, hyper_channels=fields["hyper_channels"], num_slices=num_slices,
            max_support_slices=max_support, main_depth=fields["main_depth"],
            main_head_dims=heads, main_window=fields.get("main_window", TCMConfig.main_window),
            hyper_depth=fields["hyper_depth"], hyper_head_dim=fields.get("hyper_head_dim", N),
            hyper_window=fields.get("hyper_window", 4), swatten_width=fields["swatten_width"],
            swatten_head_dim=fields["swatten_head_dim"], swatten_window=fields["swatten_window"],
            context_widths=fields["context_widths"], mlp_ratio=fields.get("mlp_ratio", TCMConfig.mlp_ratio),
        )
    except ValueError as exc:
        raise ModelNotFoundError(f"checkpoint is not a TCM model this package can build ({exc})") from None
    return name_preset(config)


def name_preset(config: TCMConfig) -> TCMConfig:
    """Give ``config`` the name of the preset it equals, if any."""
    for name, preset in PRESETS.items():
        if preset.replace(name=config.name) == config:
            return config.replace(name=name)
    return config


def weights_hash(state: Mapping[str, Tensor], config: TCMConfig) -> str:
    """Short sha256 (16 hex digits) of a model's identity: its learned tensors as stored
    (float values as float32, which float16 storage converts to exactly) and its config
    (all fields but the name, as sorted JSON).

    Nothing computed at load time enters it (derived tables, architecture constants), so
    every computer gets the same hash from the same file. Identifies the weights in
    ``.tcm`` files and exported file names.
    """
    digest = hashlib.sha256()
    settings = {k: v for k, v in config.to_dict().items() if k != "name"}
    digest.update(json.dumps(settings, sort_keys=True).encode())
    for key in sorted(state):
        if not is_stored(key):
            continue
        tensor = state[key].detach().to("cpu").contiguous()
        digest.update(key.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.float().numpy().tobytes() if tensor.is_floating_point() else tensor.numpy().tobytes())
    return digest.hexdigest()[:16]


def model_from_state_dict(state: Mapping[str, Tensor], config: TCMConfig | None = None) -> TCM:
    """A ready :class:`TCM` (eval mode, CDF tables built) from a normalised state dict."""
    if config is None:
        config = infer_config(state)
        check_sizes(config)
    else:  # before the model of that config is built: a config may claim any size
        check_config_matches_weights(config, state)
    model = TCM(config)
    weights = {k: v for k, v in state.items() if is_stored(k)}
    expected = model.state_dict()
    for key, value in weights.items():
        if key in expected and expected[key].shape != value.shape:
            raise ModelNotFoundError(
                f"weight {key} has shape {tuple(value.shape)}, expected {tuple(expected[key].shape)} "
                f"for config {config.name}"
            )
    missing, unexpected = torch.nn.Module.load_state_dict(model, {k: v.float() for k, v in weights.items()}, strict=False)
    missing = [k for k in missing if is_stored(k)]
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise ModelNotFoundError(f"checkpoint does not match the TCM architecture ({detail})")
    try:
        model.update(force=True)
    except ValueError as exc:
        raise ModelNotFoundError(f"checkpoint cannot code: {exc}") from None
    model.eval()
    model.weights_hash = weights_hash(model.state_dict(), config)
    return model


def load_learned_state(model: torch.nn.Module, state: Mapping[str, Tensor]) -> None:
    """Load a full state dict (a training checkpoint's) into ``model``, keeping its
    :data:`CONSTANT_BUFFERS` as constructed and ignoring :data:`DERIVED_BUFFERS` (rebuilt
    by ``update``); any other missing or unexpected key is an error."""
    learned = {k: v for k, v in state.items() if is_stored(k)}
    missing, unexpected = model.load_state_dict(learned, strict=False)
    missing = [k for k in missing if is_stored(k)]
    if missing or unexpected:
        raise RuntimeError(f"state does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}")


def load_checkpoint(path: str | os.PathLike) -> TCM:
    """Load any supported checkpoint file (ours or the authors') as a ready model.

    The authors' checkpoints (no config of ours in the file) code with the float entropy
    path by default (``exact_entropy = False``): their bitstreams then follow the reference
    implementation's arithmetic, at the price of decoding only on the kind of computer that
    wrote them; ``exact=True`` codes them portably. Their g_a and g_s keep the reference's
    channels-first arithmetic too (``channels_last_transforms = False``).
    """
    data = read_checkpoint(path)
    state = extract_state_dict(data)
    config = None
    if isinstance(data.get("config"), Mapping):
        try:
            config = TCMConfig.from_dict(data["config"])
        except (TypeError, ValueError) as exc:
            raise ModelNotFoundError(f"checkpoint {path} has an invalid config: {exc}") from None
    model = model_from_state_dict(state, config)
    model.exact_entropy = model.channels_last_transforms = config is not None
    return model


def average_models(models: list[TCM], config: TCMConfig | None = None) -> TCM:
    """One model whose learned weights are the uniform mean of ``models``' (a "model soup",
    Wortsman et al., ICML 2022): for runs branched from one checkpoint, e.g. the same
    fine-tuning on different crops, the mean is often better than each of them.

    All models must have the same config, except for the Gaussian scale table
    (:data:`tcmcodec.config.SCALE_TABLE_FIELDS`: not learned, so e.g. the bundled weights, exported with 256
    entries, average with a training run's). Integer buffers come from the first model; the
    architecture constants and CDF tables are rebuilt as on any load, for ``config`` when
    given (e.g. another scale table), else the models' own. Returns a new model (eval mode)
    with its ``weights_hash`` set.
    """
    if not models:
        raise ValueError("average_models needs at least one model")
    first = models[0]
    for other in models[1:]:
        differ = [f.name for f in dataclasses.fields(first.config) if f.name not in SCALE_TABLE_FIELDS
                  and getattr(first.config, f.name) != getattr(other.config, f.name)]
        if differ:
            raise TcmError(f"cannot average {first.config.name} with {other.config.name} weights (they "
                           f"differ in {', '.join(differ)}): give checkpoints of one model")
    states = [m.state_dict() for m in models]
    mean = {
        key: torch.stack([s[key].float() for s in states]).mean(dim=0) if value.is_floating_point() else value
        for key, value in states[0].items()
        if is_stored(key)
    }
    return model_from_state_dict(mean, config or first.config)


def export_weights(model: TCM, out: str | os.PathLike, *, half: bool = False,
                   extra: Mapping[str, Any] | None = None) -> tuple[Path, str]:
    """Write inference weights: parameters and config only (CDFs rebuilt on load).

    With ``half``, floating tensors are stored as float16 (loaded back as float32).
    If ``out`` is a directory, the file is named ``{config.name}-{hash}.pt``.
    Returns the path written (atomically) and the weights hash a loader will compute.
    """
    state = {
        k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone()
        for k, v in model.state_dict().items()
        if is_stored(k)
    }
    # the hash names what a decoder will compute: the weights as they will be loaded
    digest = weights_hash(state, model.config)
    out = Path(out)
    if out.is_dir():
        out = out / f"{model.config.name}-{digest}.pt"
    payload = {"format": EXPORT_FORMAT, "config": model.config.to_dict(), "weights_hash": digest,
               "state_dict": state, **(dict(extra) if extra else {})}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out, digest
