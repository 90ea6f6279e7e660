"""The encode/decode pipeline: image -> pad -> model -> ``.tcm`` container, and back.

Glues :mod:`image_io` (modes, alpha, limits), the model (:mod:`model`), the registry
(:mod:`zoo`, :mod:`checkpoints`) and the file format (:mod:`container`). Decoding checks
that the model offered is the one that wrote the file (name and weights hash).
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from tcmcodec import alpha_plane, container, image_io, image_tensors, zoo
from tcmcodec.checkpoints import load_checkpoint
from tcmcodec.coding.latent_coder import SymbolMismatch, platform_kind
from tcmcodec.coding.range_coder import CorruptStream
from tcmcodec.config import HYPER_LATENT_STRIDE
from tcmcodec.errors import FormatError, ModelMismatchError, ModelNotFoundError, TcmError
from tcmcodec.image_io import DEFAULT_MAX_PIXELS
from tcmcodec.model import TCM
from tcmcodec.runtime import native_bfloat16, tune_allocator
from tcmcodec.tiling import TilePlan, plan_for

ModelLike = str | os.PathLike | TCM | None

_cache: dict[tuple, TCM] = {}
_cache_lock = threading.Lock()


def load_model(name_or_path: str | os.PathLike | None = None, *, device: str | torch.device | None = None) -> TCM:
    """A ready model (eval mode, CDF tables built) from a registry name or a checkpoint path.

    ``None`` gives the default bundled model. Checkpoints may be ours (training or exported)
    or the authors'; see :mod:`tcmcodec.checkpoints`. Registry models are cached.
    """
    dev = str(torch.device(device)) if device is not None else "cpu"
    if name_or_path is None:
        name_or_path = zoo.default_entry().name
    path = Path(str(name_or_path))
    # a checkpoint replaced at the same path is a new model: key on its mtime and size too
    stamp = (path.stat().st_mtime_ns, path.stat().st_size) if path.is_file() else None
    key = (str(name_or_path), dev, stamp)
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    text = str(name_or_path)
    names = {e.name for e in zoo.list_entries()}
    if text in names:
        entry = zoo.get_entry(text)
        if not entry.available:
            raise ModelNotFoundError(
                f"the weights of model {entry.name} are not installed ({entry.weights}); "
                "reinstall tcmcodec or give --checkpoint PATH"
            )
        model = load_checkpoint(entry.path())
        model.model_name = entry.name
    elif Path(text).exists():
        model = load_checkpoint(text)
    else:
        raise ModelNotFoundError(
            f"{text!r} is neither a model name ({', '.join(sorted(names))}) nor an existing checkpoint file"
        )
    model = model.to(dev)
    model.analysis_dtype = default_analysis_dtype(model, dev)
    with _cache_lock:
        _cache[key] = model
    return model


def default_analysis_dtype(model: TCM, device: str | torch.device) -> torch.dtype | None:
    """The precision :func:`load_model` gives the analysis transform's inner layers
    (:attr:`TCM.analysis_dtype`): bfloat16 where ``device`` computes it natively, for models
    coded with the exact numerics (bundled model, all of Kodak: g_a 1.6x faster for +0.09%
    BD-rate; docs/benchmarks.md); float32 elsewhere, and for the authors' checkpoints, whose
    outputs stay those of the authors' code."""
    if model.exact_entropy and native_bfloat16(device):
        return torch.bfloat16
    return None


def model_qualities(model: TCM) -> tuple[int, ...]:
    """Representative qualities of ``model`` (empty for a fixed-rate model)."""
    return zoo.level_qualities(model.rate_levels) if model.rate_levels else ()


def resolve_model(model: ModelLike) -> TCM:
    """A ready model from what the API accepts: a loaded :class:`TCM` (given its identity and
    CDF tables if it lacks them), a registry name, a checkpoint path, or None (the default)."""
    if isinstance(model, TCM):
        if model.weights_hash is None:
            from tcmcodec.checkpoints import weights_hash

            model.weights_hash = weights_hash(model.state_dict(), model.config)
        model.update()  # builds the coding tables unless they are there
        return model.eval()
    return load_model(model)


def _rate(model: TCM, quality: float | None) -> tuple[float | None, int]:
    """The model's rate level for ``quality`` and the quality stored in the file."""
    if not model.rate_levels:
        if quality is not None:
            raise TcmError(f"model {model.model_name} has a single rate: drop the quality option")
        return None, 0
    if quality is None:
        name = getattr(model, "model_name", "")
        try:
            quality = zoo.get_entry(name).default_quality
        except ModelNotFoundError:
            quality = zoo.DEFAULT_QUALITY
    if not 0 <= float(quality) <= zoo.QUALITY_MAX:
        raise TcmError(f"quality must be between 0 and {zoo.QUALITY_MAX}, got {quality}")
    stored = int(round(float(quality)))
    return zoo.quality_to_level(stored, model.rate_levels), stored


@dataclass
class EncodeResult:
    """What :func:`encode_image` produced."""

    data: bytes
    width: int
    height: int
    mode: str
    quality: int
    warnings: list[str] = field(default_factory=list)

    @property
    def bits_per_pixel(self) -> float:
        return 8 * len(self.data) / (self.width * self.height)


#: the entropy-parameter numerics a file can be coded with (``.tcm`` header, docs/format.md)
NUMERICS = container.NUMERICS


def _exact(net: TCM, numerics: str | None) -> bool:
    """Whether to code with the exact numerics: ``numerics`` if given, else the model's default."""
    if numerics is None:
        return net.exact_entropy
    if numerics not in NUMERICS:
        raise TcmError(f"numerics must be one of {', '.join(NUMERICS)}, got {numerics!r}")
    return numerics == "exact"


def encode_image(image: Any, model: ModelLike = None, quality: float | None = None, *,
                 max_pixels: int | None = DEFAULT_MAX_PIXELS, refine: int = 0,
                 refine_lambda: float | None = None, numerics: str | None = None) -> EncodeResult:
    """Encode an image (path, PIL image or uint8 array) to ``.tcm`` bytes, with details.

    ``refine``: steps of encoder-side latent refinement (:mod:`tcmcodec.refine`; slower,
    decoded by the same decoder); ``refine_lambda``: its trade-off (default: the lambda the
    model was trained for at this quality; required for fixed-rate models). ``numerics``:
    ``"exact"`` (the file decodes on every computer) or ``"float"`` (the entropy parameters
    as the networks compute them in float32: the file decodes only on the kind of computer
    that wrote it); default the model's (exact, except for the authors' checkpoints).
    """
    net = resolve_model(model)
    exact = _exact(net, numerics)
    level, stored_quality = _rate(net, quality)
    if refine:
        from tcmcodec.refine import lambda_for_rate

        if refine_lambda is None:
            if level is None:
                raise TcmError(f"model {net.model_name} has a single rate: give the refinement lambda "
                               "(the lambda it was trained for, e.g. --refine-lambda 0.013; "
                               "in tcm eval: tcm:MODEL+refine=STEPS+refine-lambda=0.013)")
            refine_lambda = lambda_for_rate(net.config.rate_lambdas, level)
    prepared = prepare_input(image, net, max_pixels=max_pixels)
    if refine:
        from tcmcodec.refine import refine_latents

        y, z = refine_latents(net, prepared.x, level, refine, lmbda=refine_lambda, valid=prepared.pad)
        out = net.compress_analysis(y, z, level, exact=exact)
    else:
        with torch.inference_mode():
            out = net.compress(prepared.x, level, prepared.tiling, exact=exact)
    return pack_result(net, prepared, out, stored_quality)


@dataclass
class PreparedInput:
    """An image made ready for the model: what :func:`image_io.load_image` read, the padding
    (left, right, top, bottom) to the model's multiple, the padded tensor x (1, 3, H', W') on
    the model's device, and the tiling plan for the transforms."""

    loaded: image_io.LoadedImage
    pad: tuple[int, int, int, int]
    x: torch.Tensor
    tiling: TilePlan

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the image itself."""
        height, width = self.loaded.rgb.shape[:2]
        return width, height


def prepare_input(image: Any, net: TCM, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> PreparedInput:
    """Load ``image`` (path, PIL image or uint8 array) and pad it for ``net``."""
    loaded = image_io.load_image(image, max_pixels=max_pixels)
    height, width = loaded.rgb.shape[:2]
    pad = image_tensors.pad_amounts(height, width, net.config.pad_multiple)
    device = next(net.parameters()).device
    tune_allocator((height + pad[2] + pad[3]) * (width + pad[0] + pad[1]))
    x = image_tensors.pad_tensor(image_tensors.to_tensor(loaded.rgb), pad).to(device)
    return PreparedInput(loaded, pad, x, plan_for(net.config.width, net.config.pad_multiple))


def pack_result(net: TCM, prepared: PreparedInput, out: dict, quality: int) -> EncodeResult:
    """The ``.tcm`` file of what :meth:`TCM.compress` returned for ``prepared`` at ``quality``."""
    (y_string,), z_strings = out["strings"][0], out["strings"][1]
    (y_check,), (z_check,) = out["checks"][0], out["checks"][1]
    z_h, z_w = (int(v) for v in out["shape"])
    exact = bool(out["exact"])
    loaded = prepared.loaded
    width, height = prepared.size
    stream = container.TcmStream(
        model_name=net.model_name,
        weights_hash=net.weights_hash,
        quality=quality,
        width=width, height=height, mode=loaded.mode, pad=prepared.pad,
        latent_shapes=((z_h, z_w),),
        strings=(y_string, z_strings[0]),
        alpha=alpha_plane.encode_alpha(loaded.alpha) if loaded.alpha is not None else None,
        checks=(y_check, z_check),
        numerics="exact" if exact else "float",
        platform="" if exact else platform_kind(prepared.x.device),
    )
    return EncodeResult(container.pack(stream), width, height, loaded.mode, quality, list(loaded.warnings))


def encode(image: Any, model: ModelLike = None, quality: float | None = None, *,
           max_pixels: int | None = DEFAULT_MAX_PIXELS, refine: int = 0,
           refine_lambda: float | None = None, numerics: str | None = None) -> bytes:
    """Encode an image to ``.tcm`` bytes.

    Args:
        image: a path, a PIL image, or a uint8 array (H, W), (H, W, 1|3|4).
        model: registry name, checkpoint path, a loaded :class:`TCM`, or None (default model).
        quality: 0..100 for variable-rate models (default: the model's); None for fixed-rate.
        max_pixels: refuse larger images (None: no limit).
        refine: steps of encoder-side latent refinement (0: off); see :func:`encode_image`.
        refine_lambda: its trade-off (default: the model's lambda at this quality).
        numerics: "exact" or "float" (see :func:`encode_image`); default the model's.
    """
    result = encode_image(image, model, quality, max_pixels=max_pixels, refine=refine, refine_lambda=refine_lambda,
                          numerics=numerics)
    for note in result.warnings:
        warnings.warn(note, stacklevel=2)
    return result.data


def read_stream(data: bytes, *, max_pixels: int | None = None) -> container.TcmStream:
    """Parse and sanity-check a ``.tcm`` stream (raises :class:`FormatError`)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise FormatError(f"expected bytes, got {type(data).__name__}")
    return container.parse(bytes(data), max_pixels=max_pixels)


def _model_for(stream: container.TcmStream, model: ModelLike) -> TCM:
    needed = f"model {stream.model_name} (weights {stream.weights_hash})"
    if model is None:
        try:
            entry = zoo.get_entry(stream.model_name)
        except ModelNotFoundError:
            raise ModelMismatchError(
                f"this file was coded with {needed}, which is not bundled",
                python_hint="decode it with model=PATH, a checkpoint of those weights",
                cli_hint="decode it with --checkpoint PATH of those weights") from None
        net = load_model(entry.name)
        if net.weights_hash != stream.weights_hash:
            raise ModelMismatchError(
                f"this file was coded with {needed}, but the installed {entry.name} has other "
                f"weights ({net.weights_hash})",
                python_hint=f"decode it with model=PATH, a checkpoint of weights {stream.weights_hash}",
                cli_hint=f"decode it with --checkpoint PATH of weights {stream.weights_hash}")
        return net
    net = resolve_model(model)
    if net.weights_hash != stream.weights_hash:
        raise ModelMismatchError(
            f"this file was coded with {needed}, but the model given is "
            f"{net.model_name} (weights {net.weights_hash}); decode it with {stream.model_name}"
        )
    return net


@dataclass
class DecodeResult:
    """What :func:`decode_stream_details` produced: the image, and the SHA-256 of the decoded
    y and z symbols (the same on every computer for a file with exact numerics)."""

    image: Image.Image
    symbol_digests: tuple[str, str]


def decode_stream(stream: container.TcmStream, model: ModelLike = None, *,
                  synthesis_dtype: torch.dtype | None = None) -> Image.Image:
    """Decode a parsed stream to a PIL image in the original size and mode."""
    return decode_stream_details(stream, model, synthesis_dtype=synthesis_dtype).image


def decode_stream_details(stream: container.TcmStream, model: ModelLike = None, *,
                          synthesis_dtype: torch.dtype | None = None) -> DecodeResult:
    """:func:`decode_stream`, with what was decoded (:class:`DecodeResult`).

    ``synthesis_dtype``: the precision of g_s's inner layers, None (float32: the decoded
    pixels agree within one level on every computer) or ``torch.bfloat16`` (faster where the
    hardware computes it natively; pixels may differ from float32's by a few levels). Raises
    :class:`FormatError` when the decoded symbols differ from the file's checks."""
    net = _model_for(stream, model)
    multiple = net.config.pad_multiple
    left, right, top, bottom = stream.pad
    padded_w, padded_h = stream.width + left + right, stream.height + top + bottom
    if len(stream.latent_shapes) != 1 or len(stream.strings) != 2:
        raise FormatError("stream layout does not match a TCM model (latent shapes / strings)")
    z_h, z_w = stream.latent_shapes[0]
    if padded_w % multiple or padded_h % multiple or (z_h * HYPER_LATENT_STRIDE, z_w * HYPER_LATENT_STRIDE) != (padded_h, padded_w):
        raise FormatError("stream sizes are inconsistent (padding / latent shape): the file is corrupted")
    if net.rate_levels and stream.quality > zoo.QUALITY_MAX:
        raise FormatError(f"quality {stream.quality} is out of range for {stream.model_name}")
    level = zoo.quality_to_level(stream.quality, net.rate_levels) if net.rate_levels else None
    tiling = plan_for(net.config.width, multiple)
    tune_allocator(padded_h * padded_w)
    exact = stream.numerics == "exact"
    expected = [[stream.checks[0]], [stream.checks[1]]]
    try:
        with torch.inference_mode():
            out = net.decompress([[stream.strings[0]], [stream.strings[1]]], (z_h, z_w), level, tiling,
                                 exact=exact, checks=expected, synthesis_dtype=synthesis_dtype)
    except CorruptStream as exc:  # a SymbolMismatch too
        raise FormatError(_undecodable(stream, next(net.parameters()).device, exc)) from None
    x_hat = image_tensors.crop_tensor(out["x_hat"].cpu(), stream.pad)
    rgb = image_tensors.from_tensor(x_hat)
    alpha = alpha_plane.decode_alpha(stream.alpha, stream.width, stream.height) if stream.alpha is not None else None
    return DecodeResult(image_io.to_pil(rgb, stream.mode, alpha), (out["digests"][0][0], out["digests"][1][0]))


def _undecodable(stream: container.TcmStream, device: torch.device, error: CorruptStream) -> str:
    """What to say when the entropy-coded data does not decode to the encoder's symbols."""
    if stream.numerics == "float":
        here = platform_kind(device)
        if here != stream.platform:
            return (f"this file was coded with float numerics on {stream.platform}, and this computer "
                    f"({here}) computes other probabilities, so it cannot decode it; decode it on that "
                    "kind of computer, or re-encode the image with exact numerics")
    if isinstance(error, SymbolMismatch):
        return f"{error}: the file is damaged or was written by an incompatible tcmcodec"
    return f"entropy-coded data cannot be decoded: {error}"


def decode(data: bytes, model: ModelLike = None, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
           synthesis_dtype: torch.dtype | None = None) -> Image.Image:
    """Decode ``.tcm`` bytes to a PIL image (original size and mode).

    ``model``: None to use the bundled model named in the file, or a name, checkpoint path
    or loaded :class:`TCM`. ``max_pixels``: refuse streams declaring a larger image (checked
    on the header, before any decoding; None: no limit). ``synthesis_dtype``: see
    :func:`decode_stream_details`. Raises :class:`FormatError` for a bad stream and
    :class:`ModelMismatchError` when the file needs another model.
    """
    return decode_stream(read_stream(data, max_pixels=max_pixels), model, synthesis_dtype=synthesis_dtype)
