"""Codecs as data: a registry of small classes with one interface.

Every codec has

- ``name`` (registry key, e.g. ``"jpeg"``) and ``label`` (display name, e.g. ``"JPEG"``);
- ``available()`` and ``unavailable_reason()`` (``None`` when available, else one line saying
  what is missing, e.g. ``"pillow-heif is not installed"``);
- ``encode(rgb, quality) -> bytes`` with ``rgb`` an ``H x W x 3`` ``uint8`` array; the bytes are
  the complete file, headers included, so ``bpp = 8 * len(bytes) / (H * W)``;
- ``decode(bytes) -> array`` (``H x W x 3`` ``uint8``);
- ``default_qualities``: the sweep used when ``--qualities`` does not name the codec, chosen to
  span about 0.1 to 1.5 bpp on Kodak (see docs/evaluation.md for the measured ranges);
- ``settings``: a dict stored with the results (library and version, chroma subsampling,
  speed/effort preset, what ``quality`` means for this codec).

Encoders run single-threaded where the library allows it, so encode times are comparable.

The meaning of ``quality`` per codec:

=========  ==================================================================================
jpeg       Pillow/libjpeg-turbo quality 1-95, 4:2:0, optimised Huffman tables, baseline
webp       libwebp quality 0-100, ``method=6`` (slowest/best), 4:2:0 (lossy WebP is always 4:2:0)
avif       libavif quality 0-100 (Pillow), aom encoder, ``speed=6``, 4:2:0, 8-bit, full range
jxl        libjxl quality 0-100 (maps to butteraugli distance), ``effort=7``, XYB (no subsampling)
heic       libheif/x265 quality 0-100, 4:2:0, x265 ``preset=slow``, ``tune=ssim`` (libheif defaults)
jpeg2000   OpenJPEG, *target bits per pixel* (``quality_layers=[24 / bpp]``), 9/7 irreversible
           wavelet with the ICT colour transform, raw J2K codestream (no JP2 box)
tcm:NAME   our model; ``quality`` is the model's quality index (``tcmcodec.zoo``);
           ``tcm:NAME+refine=10``: with 10 steps of encoder-side latent refinement
=========  ==================================================================================
"""

from __future__ import annotations

import io
import math
from importlib import metadata
from typing import Any, Sequence

import numpy as np

from tcmcodec.errors import TcmError

Quality = Any  # int for most codecs, float for jpeg2000 (target bpp), None for single-rate models


def _pkg_version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _pil_decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return np.asarray(im.convert("RGB"))


def _pil_image(rgb: np.ndarray):
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(rgb), "RGB")


class Codec:
    """Base class; subclasses set the class attributes and implement the methods."""

    name: str = ""
    label: str = ""
    #: what the quality parameter is, for humans
    quality_meaning: str = "quality"
    default_qualities: tuple = ()
    #: (low, high) integer range for a binary search on quality, or None
    quality_bounds: tuple[int, int] | None = None
    #: whether the file size grows with the quality parameter
    bpp_increases_with_quality: bool = True
    #: our own codecs are drawn differently in plots
    is_learned: bool = False

    def unavailable_reason(self) -> str | None:
        """``None`` if the codec can be used, else one line saying what is missing."""
        return None

    def available(self) -> bool:
        return self.unavailable_reason() is None

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:  # pragma: no cover
        raise NotImplementedError

    def decode(self, data: bytes) -> np.ndarray:
        return _pil_decode(data)

    def prepare(self, quality: Quality) -> None:
        """Called once per quality before timing starts (models load here)."""

    @property
    def settings(self) -> dict:
        return {"codec": self.name, "quality": self.quality_meaning}

    @property
    def description(self) -> str:
        return self.label

    def __repr__(self) -> str:
        return f"<codec {self.name}>"


def _libjpeg_version() -> str:
    from PIL import features

    try:
        if features.check_feature("libjpeg_turbo"):
            return f"libjpeg-turbo {features.version_feature('libjpeg_turbo')}"
    except ValueError:  # pragma: no cover - old Pillow
        pass
    return f"libjpeg {features.version('jpg')}"


def _pillow_settings() -> dict:
    import PIL

    return {"library": "Pillow", "pillow": PIL.__version__}


class JpegCodec(Codec):
    name = "jpeg"
    label = "JPEG"
    quality_meaning = "Pillow JPEG quality (1-95)"
    default_qualities = (5, 10, 20, 30, 45, 60, 75, 85, 92)
    quality_bounds = (1, 95)
    subsampling = "4:2:0"

    def unavailable_reason(self) -> str | None:
        from PIL import features

        return None if features.check("jpg") else "Pillow was built without JPEG support"

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        buf = io.BytesIO()
        _pil_image(rgb).save(buf, "JPEG", quality=int(quality), subsampling=self.subsampling, optimize=True)
        return buf.getvalue()

    @property
    def settings(self) -> dict:
        from PIL import features

        return {
            **super().settings,
            **_pillow_settings(),
            "libjpeg": _libjpeg_version(),
            "chroma_subsampling": self.subsampling,
            "optimize_huffman": True,
            "progressive": False,
        }

    @property
    def description(self) -> str:
        import PIL

        return f"JPEG (Pillow {PIL.__version__}, {_libjpeg_version()}), {self.subsampling}, optimize=True"


class WebpCodec(Codec):
    name = "webp"
    label = "WebP"
    quality_meaning = "libwebp quality (0-100)"
    default_qualities = (0, 5, 15, 30, 50, 70, 80, 88)
    quality_bounds = (0, 100)
    method = 6

    def unavailable_reason(self) -> str | None:
        from PIL import features

        return None if features.check("webp") else "Pillow was built without WebP support (libwebp)"

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        buf = io.BytesIO()
        _pil_image(rgb).save(buf, "WEBP", quality=int(quality), method=self.method, lossless=False)
        return buf.getvalue()

    @property
    def settings(self) -> dict:
        from PIL import features

        return {
            **super().settings,
            **_pillow_settings(),
            "libwebp": features.version("webp"),
            "chroma_subsampling": "4:2:0",
            "method": self.method,
        }

    @property
    def description(self) -> str:
        from PIL import features

        return f"WebP (libwebp {features.version('webp')}), method={self.method}, 4:2:0"


class AvifCodec(Codec):
    name = "avif"
    label = "AVIF"
    quality_meaning = "libavif quality (0-100) as exposed by Pillow"
    default_qualities = (8, 18, 30, 42, 52, 60, 68, 76)
    quality_bounds = (0, 100)
    speed = 6
    subsampling = "4:2:0"

    def unavailable_reason(self) -> str | None:
        from PIL import features

        try:
            ok = features.check("avif")
        except ValueError:  # Pillow < 11.2 has no AVIF feature at all
            ok = False
        return None if ok else "Pillow was built without AVIF support (libavif)"

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        buf = io.BytesIO()
        _pil_image(rgb).save(
            buf, "AVIF", quality=int(quality), speed=self.speed, subsampling=self.subsampling, max_threads=1, range="full"
        )
        return buf.getvalue()

    def _codec_versions(self) -> str:
        try:
            from PIL import _avif

            return _avif.codec_versions()
        except Exception:  # pragma: no cover
            return "unknown"

    @property
    def settings(self) -> dict:
        from PIL import features

        return {
            **super().settings,
            **_pillow_settings(),
            "libavif": features.version("avif"),
            "codecs": self._codec_versions(),
            "chroma_subsampling": self.subsampling,
            "speed": self.speed,
            "bit_depth": 8,
            "range": "full",
            "threads": 1,
        }

    @property
    def description(self) -> str:
        from PIL import features

        return f"AVIF (libavif {features.version('avif')}; {self._codec_versions()}), speed={self.speed}, {self.subsampling}"


class JxlCodec(Codec):
    name = "jxl"
    label = "JPEG XL"
    quality_meaning = "libjxl quality (0-100, mapped to butteraugli distance by libjxl)"
    default_qualities = (1, 10, 25, 40, 55, 70, 80, 88)
    quality_bounds = (0, 100)
    effort = 7

    def unavailable_reason(self) -> str | None:
        try:
            import pillow_jxl  # noqa: F401  (registers the JXL plugin with Pillow)
        except ImportError:
            return "pillow-jxl-plugin is not installed"
        return None

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        import pillow_jxl  # noqa: F401

        buf = io.BytesIO()
        _pil_image(rgb).save(
            buf, "JXL", quality=float(quality), effort=self.effort, lossless=False, num_threads=1, use_container=False
        )
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        import pillow_jxl  # noqa: F401

        return _pil_decode(data)

    @property
    def settings(self) -> dict:
        return {
            **super().settings,
            "library": "pillow-jxl-plugin (libjxl)",
            "pillow-jxl-plugin": _pkg_version("pillow-jxl-plugin"),
            "chroma_subsampling": "none (XYB)",
            "effort": self.effort,
            "container": False,
            "threads": 1,
        }

    @property
    def description(self) -> str:
        return f"JPEG XL (pillow-jxl-plugin {_pkg_version('pillow-jxl-plugin')}, libjxl), effort={self.effort}"


class HeicCodec(Codec):
    name = "heic"
    label = "HEIC"
    quality_meaning = "libheif quality (0-100), x265 encoder"
    default_qualities = (10, 17, 24, 30, 36, 42, 48, 54)
    quality_bounds = (0, 100)
    chroma = 420
    preset = "slow"
    tune = "ssim"

    def unavailable_reason(self) -> str | None:
        try:
            import pillow_heif
        except ImportError:
            return "pillow-heif is not installed"
        try:
            encoders = pillow_heif.libheif_info().get("encoders", {})
        except Exception:  # pragma: no cover
            encoders = {}
        if encoders and "x265" not in encoders:
            return "libheif in pillow-heif has no x265 (HEVC) encoder"
        return None

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        import pillow_heif

        heif = pillow_heif.from_bytes(mode="RGB", size=(rgb.shape[1], rgb.shape[0]), data=np.ascontiguousarray(rgb).tobytes())
        buf = io.BytesIO()
        heif.save(
            buf,
            format="HEIF",
            quality=int(quality),
            chroma=self.chroma,
            enc_params={"preset": self.preset, "tune": self.tune},
        )
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        import pillow_heif

        heif = pillow_heif.open_heif(io.BytesIO(data), convert_hdr_to_8bit=True)
        return np.asarray(heif.to_pillow().convert("RGB"))

    @property
    def settings(self) -> dict:
        import pillow_heif

        info = pillow_heif.libheif_info()
        return {
            **super().settings,
            "library": "pillow-heif (libheif + x265 / libde265)",
            "pillow-heif": pillow_heif.__version__,
            "libheif": info.get("libheif"),
            "encoder": info.get("HEIF"),
            "chroma_subsampling": "4:2:0",
            "x265_preset": self.preset,
            "x265_tune": self.tune,
        }

    @property
    def description(self) -> str:
        import pillow_heif

        info = pillow_heif.libheif_info()
        return f"HEIC (libheif {info.get('libheif')}, {info.get('HEIF')}), preset={self.preset}, tune={self.tune}, 4:2:0"


class Jpeg2000Codec(Codec):
    name = "jpeg2000"
    label = "JPEG 2000"
    quality_meaning = "target bits per pixel (OpenJPEG rate = 24 / bpp)"
    default_qualities = (0.1, 0.15, 0.25, 0.4, 0.6, 0.8, 1.1, 1.5)
    quality_bounds = None

    def unavailable_reason(self) -> str | None:
        from PIL import features

        return None if features.check("jpg_2000") else "Pillow was built without JPEG 2000 support (OpenJPEG)"

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        target = float(quality)
        if not target > 0:
            raise TcmError(f"jpeg2000 quality is a target bpp and must be > 0, got {quality}")
        buf = io.BytesIO()
        _pil_image(rgb).save(
            buf,
            "JPEG2000",
            quality_mode="rates",
            quality_layers=[24.0 / target],
            irreversible=True,
            mct=1,
            no_jp2=True,
        )
        return buf.getvalue()

    @property
    def settings(self) -> dict:
        from PIL import features

        return {
            **super().settings,
            **_pillow_settings(),
            "openjpeg": features.version("jpg_2000"),
            "chroma_subsampling": "none (4:4:4, ICT colour transform)",
            "wavelet": "9/7 irreversible",
            "container": "J2K codestream",
            "layers": 1,
        }

    @property
    def description(self) -> str:
        from PIL import features

        return f"JPEG 2000 (OpenJPEG {features.version('jpg_2000')}), 9/7, ICT, 4:4:4"


#: ``tcm:NAME+refine=STEPS``: encoder-side refinement in an evaluation
REFINE_SUFFIX = "+refine="
#: ``...+refine-lambda=L``: its rate-distortion trade-off (needed for fixed-rate models)
REFINE_LAMBDA_SUFFIX = "+refine-lambda="


class TcmCodec(Codec):
    """Our codec through the public API ``tcmcodec.encode`` / ``tcmcodec.decode``.

    ``tcm:NAME`` uses a model from the zoo (qualities from ``tcmcodec.zoo.get_entry(NAME)``);
    ``tcm:checkpoint=PATH`` loads a checkpoint once with ``tcmcodec.load_model`` (its qualities
    come from the model's ``qualities`` attribute if it has one, else from its trained rate
    levels if it is variable-rate, else a single ``None`` point).
    Model loading happens in :meth:`prepare`, outside the timed region. A ``+refine=STEPS``
    suffix (``tcm:NAME+refine=10``) encodes with that many steps of encoder-side latent
    refinement (:mod:`tcmcodec.refine`); the decoder is the same. ``+refine-lambda=L`` sets
    the refinement's trade-off (default: the model's lambda at each quality; a fixed-rate
    model needs it).
    """

    label = "TCM"
    quality_meaning = "model quality index (tcmcodec.zoo)"
    is_learned = True

    def __init__(self, model: str | None = None, checkpoint: str | None = None, refine: int = 0,
                 refine_lambda: float | None = None):
        if (model is None) == (checkpoint is None):
            raise TcmError("tcm codec needs exactly one of a model name or checkpoint=PATH")
        if refine < 0:
            raise TcmError(f"tcm codec: refine steps must be >= 0, got {refine}")
        if refine_lambda is not None and not (refine and refine_lambda > 0):
            raise TcmError(f"tcm codec: {REFINE_LAMBDA_SUFFIX}L needs {REFINE_SUFFIX}STEPS and "
                           f"a positive L, got {refine_lambda}")
        self.model = model
        self.checkpoint = checkpoint
        self.refine = refine
        self.refine_lambda = refine_lambda
        self.name = f"tcm:{model}" if model is not None else f"tcm:checkpoint={checkpoint}"
        self.label = f"TCM ({model})" if model is not None else f"TCM ({_basename(checkpoint)})"
        if refine:
            self.name += f"{REFINE_SUFFIX}{refine}"
            detail = f"refined {refine}"
            if refine_lambda is not None:
                self.name += f"{REFINE_LAMBDA_SUFFIX}{refine_lambda:g}"
                detail += f" at lambda {refine_lambda:g}"
            self.label = f"{self.label[:-1]}, {detail})"
        self._loaded = None

    def __getstate__(self):  # loaded models are not sent to worker processes
        state = dict(self.__dict__)
        state["_loaded"] = None
        return state

    def unavailable_reason(self) -> str | None:
        try:
            import tcmcodec
        except ImportError as exc:  # pragma: no cover
            return f"tcmcodec cannot be imported: {exc}"
        for attr in ("encode", "decode"):
            if not callable(getattr(tcmcodec, attr, None)):
                return f"tcmcodec.{attr} is not available in this build"
        if self.checkpoint is not None:
            if not callable(getattr(tcmcodec, "load_model", None)):
                return "tcmcodec.load_model is not available in this build"
            import os

            if not os.path.exists(self.checkpoint):
                return f"checkpoint not found: {self.checkpoint}"
        return None

    @property
    def default_qualities(self) -> tuple:  # type: ignore[override]
        from tcmcodec import zoo

        if self.model is not None:
            return tuple(zoo.get_entry(self.model).qualities)
        model = self._model_object()
        qualities = getattr(model, "qualities", None)
        if qualities:
            return tuple(qualities)
        config = getattr(model, "config", None)
        if config is not None and config.variable_rate:  # one point per trained rate level
            return zoo.level_qualities(config.rate_levels)
        return (None,)

    @property
    def quality_bounds(self) -> tuple[int, int] | None:  # type: ignore[override]
        """Every integer quality of a variable-rate model, not only its trained levels (what
        ``tcm compare`` searches to match a bpp); None for a fixed-rate model."""
        from tcmcodec import zoo

        return (0, zoo.QUALITY_MAX) if len(self.default_qualities) > 1 else None

    def _model_object(self):
        if self._loaded is None:
            import tcmcodec

            self._loaded = tcmcodec.load_model(self.checkpoint)
        return self._loaded

    def _model_arg(self):
        return self.model if self.model is not None else self._model_object()

    def _kwargs(self, quality: Quality) -> dict:
        kw: dict = {"model": self._model_arg()}
        if self.refine:
            kw["refine"] = self.refine
        if self.refine_lambda is not None:
            kw["refine_lambda"] = self.refine_lambda
        if quality is not None:
            kw["quality"] = quality
        return kw

    def prepare(self, quality: Quality) -> None:
        # warm-up on a small image: loads weights, builds entropy-coder tables
        warm = np.full((64, 64, 3), 128, np.uint8)
        try:
            self.decode_raw(self.encode(warm, quality))
        except Exception:  # the timed calls will raise a real error if there is one
            pass

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        import tcmcodec

        return bytes(tcmcodec.encode(np.ascontiguousarray(rgb), **self._kwargs(quality)))

    def decode_raw(self, data: bytes):
        import tcmcodec

        return tcmcodec.decode(data, model=self._model_arg())

    def decode(self, data: bytes) -> np.ndarray:
        out = self.decode_raw(data)
        if isinstance(out, np.ndarray):
            return out
        return np.asarray(out.convert("RGB"))

    @property
    def settings(self) -> dict:
        import tcmcodec

        s = {
            **super().settings,
            "library": "tcmcodec",
            "tcmcodec": getattr(tcmcodec, "__version__", None),
            "torch": _pkg_version("torch"),
            "constriction": _pkg_version("constriction"),
        }
        if self.model is not None:
            s["model"] = self.model
        else:
            s["checkpoint"] = self.checkpoint
        s["refine_steps"] = self.refine
        s["refine_lambda"] = self.refine_lambda
        return s

    @property
    def description(self) -> str:
        import tcmcodec

        return f"{self.label}, tcmcodec {getattr(tcmcodec, '__version__', '?')}"


def _basename(path: str | None) -> str:
    import os

    return os.path.basename(path or "")


#: the classical codecs, by registry key
REGISTRY: dict[str, type[Codec]] = {
    c.name: c for c in (JpegCodec, WebpCodec, AvifCodec, JxlCodec, HeicCodec, Jpeg2000Codec)
}

#: other spellings accepted on the command line
ALIASES: dict[str, str] = {
    "jpg": "jpeg",
    "jpegxl": "jxl",
    "jpeg-xl": "jxl",
    "heif": "heic",
    "j2k": "jpeg2000",
    "jp2": "jpeg2000",
    "jpeg-2000": "jpeg2000",
}

#: the default ``--codecs`` list of ``tcm eval``
DEFAULT_CODECS = ("jpeg", "webp", "avif", "jxl", "heic", "jpeg2000")


def _refinement_suffixes(spec: str, rest: str) -> tuple[str, int, float | None]:
    """Split ``+refine=STEPS`` and ``+refine-lambda=L`` (either order, each at most once)
    off the end of a ``tcm:`` spec; returns (the rest, steps, lambda or None)."""
    options: dict[str, str] = {}  # suffix -> its value
    while True:
        head, sep, tail = rest.rpartition("+")
        key, eq, value = tail.partition("=")
        suffix = f"+{key}="
        if not sep or not eq or suffix not in (REFINE_SUFFIX, REFINE_LAMBDA_SUFFIX) or suffix in options:
            break
        options[suffix], rest = value, head
    try:
        refine = int(options.get(REFINE_SUFFIX, 0))
        refine_lambda = float(options[REFINE_LAMBDA_SUFFIX]) if REFINE_LAMBDA_SUFFIX in options else None
    except ValueError:
        raise TcmError(f"bad refinement in {spec!r}: use {REFINE_SUFFIX}STEPS and optionally "
                       f"{REFINE_LAMBDA_SUFFIX}L, e.g. tcm:MODEL{REFINE_SUFFIX}25"
                       f"{REFINE_LAMBDA_SUFFIX}0.013") from None
    return rest, refine, refine_lambda


def get_codec(spec: str) -> Codec:
    """A codec from a command-line spec: ``jpeg``, ``webp``, ..., ``tcm:NAME``, ``tcm:checkpoint=PATH``."""
    spec = spec.strip()
    key = spec.lower()
    if key == "tcm" or key.startswith("tcm:"):
        rest = spec[4:] if len(spec) > 3 else ""
        if not rest:
            raise TcmError("tcm needs a model: use tcm:MODEL or tcm:checkpoint=PATH")
        rest, refine, refine_lambda = _refinement_suffixes(spec, rest)
        if rest.startswith("checkpoint="):
            return TcmCodec(checkpoint=rest[len("checkpoint=") :], refine=refine, refine_lambda=refine_lambda)
        return TcmCodec(model=rest, refine=refine, refine_lambda=refine_lambda)
    key = ALIASES.get(key, key)
    if key not in REGISTRY:
        known = ", ".join(sorted(REGISTRY)) + ", tcm:MODEL, tcm:checkpoint=PATH (+refine=STEPS, +refine-lambda=L)"
        raise TcmError(f"unknown codec {spec!r} (known: {known})")
    return REGISTRY[key]()


def parse_codec_list(text: str) -> list[str]:
    """Split ``--codecs`` on commas, keeping ``tcm:checkpoint=PATH`` intact."""
    items = [s.strip() for s in text.split(",")]
    return [s for s in items if s]


def _parse_quality(text: str) -> Quality:
    text = text.strip()
    if text.lower() in ("none", "-"):
        return None
    try:
        return int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise TcmError(f"bad quality value {text!r}") from None
        if not math.isfinite(value):
            raise TcmError(f"bad quality value {text!r}")
        return value


def parse_qualities(text: str | None, codec_names: Sequence[str]) -> dict[str, list[Quality]]:
    """Parse ``--qualities``.

    Syntax: ``CODEC=Q1,Q2,...`` items separated by ``;``, e.g. ``jpeg=10,30,50;webp=20,60``.
    ``CODEC`` is a registry key or alias (``tcm`` matches every ``tcm:...`` codec, a full
    ``tcm:NAME`` only that one). The value list is split at the *last* ``=`` so
    ``tcm:checkpoint=PATH=1,2`` works. A bare list without ``CODEC=`` is allowed when exactly
    one codec is evaluated. Codecs not named keep their default sweep.
    """
    out: dict[str, list[Quality]] = {}
    if not text:
        return out
    for item in text.split(";"):
        item = item.strip()
        if not item:
            continue
        if "=" in item:
            key, values = item.rsplit("=", 1)
            key = key.strip()
        else:
            if len(codec_names) != 1:
                raise TcmError("--qualities without CODEC= needs exactly one codec; use e.g. jpeg=10,30,50;webp=20,60")
            key, values = codec_names[0], item
        qs = [_parse_quality(v) for v in values.split(",") if v.strip()]
        if not qs:
            raise TcmError(f"--qualities: no values for {key!r}")
        lowered = key.lower()
        matched = [
            n
            for n in codec_names
            if n == key
            or ALIASES.get(lowered, lowered) == n
            or (lowered == "tcm" and n.startswith("tcm:"))
        ]
        if not matched:
            raise TcmError(f"--qualities names {key!r}, which is not in --codecs ({', '.join(codec_names)})")
        for n in matched:
            out[n] = qs
    return out
