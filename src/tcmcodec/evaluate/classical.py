"""The classical codecs compared against: JPEG, WebP, AVIF, JPEG XL, HEIC and JPEG 2000.

The codecs that Pillow (or a Pillow plugin) writes are data: one :class:`PillowFormat` row each
states the save options, how the quality parameter enters them, the library versions and the
settings recorded with the results, and the one-line description, so a setting is written
once. :class:`PillowCodec` runs any row. HEIC goes through pillow-heif's own API
(:class:`HeicCodec`). See :mod:`tcmcodec.evaluate.codecs` for the registry.
"""

from __future__ import annotations

import importlib
import io
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from tcmcodec.errors import TcmError
from tcmcodec.evaluate.codec_base import Codec, Quality, _pil_decode, _pil_image, _pkg_version

#: OpenJPEG's compression ratio is relative to 24-bit RGB: ratio = 24 / target bpp
RGB_BITS_PER_PIXEL = 24.0


def _pillow_feature(name: str) -> bool:
    """Whether Pillow was built with ``name`` (False where this Pillow does not know it)."""
    from PIL import features

    try:
        return bool(features.check(name))
    except ValueError:  # e.g. Pillow < 11.2 has no AVIF feature at all
        return False


def _pillow_version(feature: str) -> str | None:
    from PIL import features

    return features.version(feature)


def _pillow_library(**versions: Callable[[], Any]) -> Callable[[], dict[str, Any]]:
    """Recorded library entries for a codec that Pillow itself writes: Pillow's version and,
    per settings key, the version of the library under it."""

    def entries() -> dict[str, Any]:
        import PIL

        return {"library": "Pillow", "pillow": PIL.__version__, **{key: get() for key, get in versions.items()}}

    return entries


def _libjpeg_version() -> str:
    from PIL import features

    try:
        if features.check_feature("libjpeg_turbo"):
            return f"libjpeg-turbo {features.version_feature('libjpeg_turbo')}"
    except ValueError:  # pragma: no cover - old Pillow
        pass
    return f"libjpeg {features.version('jpg')}"


def _avif_codec_versions() -> str:
    try:
        from PIL import _avif

        return _avif.codec_versions()
    except Exception:  # pragma: no cover - a Pillow without the AVIF module
        return "unknown"


def _jpeg2000_rate(quality: Quality) -> dict[str, Any]:
    """OpenJPEG takes a compression ratio; our quality for JPEG 2000 is the target bpp."""
    target = float(quality)
    if not target > 0:
        raise TcmError(f"jpeg2000 quality is a target bpp and must be > 0, got {quality}")
    return {"quality_layers": [RGB_BITS_PER_PIXEL / target]}


@dataclass(frozen=True)
class PillowFormat:
    """One codec written by ``PIL.Image.save``, as data.

    ``description`` is a :meth:`str.format_map` template over the recorded settings.
    """

    name: str
    label: str
    quality_meaning: str
    default_qualities: tuple
    quality_bounds: tuple[int, int] | None
    #: Pillow's format name for ``Image.save``
    pil_format: str
    #: how the quality parameter enters the save options
    quality_options: Callable[[Quality], dict[str, Any]]
    #: the fixed save options
    save_options: Mapping[str, Any]
    #: library and version entries of the recorded settings
    library: Callable[[], dict[str, Any]]
    #: recorded settings that are save options: settings key -> save option name
    recorded_options: Mapping[str, str]
    #: the rest of the recorded settings (facts of the format, not options)
    recorded: Mapping[str, Any]
    description: str
    #: the Pillow feature the codec needs (``PIL.features.check``), or None
    pillow_feature: str | None = None
    #: the plugin module that registers the format with Pillow, or None
    plugin_module: str | None = None
    #: the one line said when the feature or plugin is missing
    missing: str = field(default="")


class PillowCodec(Codec):
    """A codec that Pillow writes, run from its :class:`PillowFormat` row (``format``)."""

    format: PillowFormat

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fmt = cls.__dict__.get("format")
        if fmt is not None:
            cls.name, cls.label = fmt.name, fmt.label
            cls.quality_meaning, cls.default_qualities, cls.quality_bounds = (
                fmt.quality_meaning, fmt.default_qualities, fmt.quality_bounds)

    def _register_plugin(self) -> None:
        if self.format.plugin_module:
            importlib.import_module(self.format.plugin_module)

    def unavailable_reason(self) -> str | None:
        fmt = self.format
        if fmt.plugin_module:
            try:
                self._register_plugin()
            except ImportError:
                return fmt.missing
        if fmt.pillow_feature and not _pillow_feature(fmt.pillow_feature):
            return fmt.missing
        return None

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        self._register_plugin()
        options = {**self.format.quality_options(quality), **self.format.save_options}
        buf = io.BytesIO()
        _pil_image(rgb).save(buf, self.format.pil_format, **options)
        return buf.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        self._register_plugin()
        return _pil_decode(data)

    @property
    def settings(self) -> dict:
        fmt = self.format
        options = {key: fmt.save_options[option] for key, option in fmt.recorded_options.items()}
        return {**super().settings, **fmt.library(), **options, **fmt.recorded}

    @property
    def description(self) -> str:
        return self.format.description.format_map(self.settings)


JPEG = PillowFormat(
    name="jpeg", label="JPEG", quality_meaning="Pillow JPEG quality (1-95)",
    default_qualities=(5, 10, 20, 30, 45, 60, 75, 85, 92), quality_bounds=(1, 95),
    pil_format="JPEG", quality_options=lambda q: {"quality": int(q)},
    save_options={"subsampling": "4:2:0", "optimize": True},
    library=_pillow_library(libjpeg=_libjpeg_version),
    recorded_options={"chroma_subsampling": "subsampling", "optimize_huffman": "optimize"},
    recorded={"progressive": False},
    description="JPEG (Pillow {pillow}, {libjpeg}), {chroma_subsampling}, optimize=True",
    pillow_feature="jpg", missing="Pillow was built without JPEG support",
)

WEBP = PillowFormat(
    name="webp", label="WebP", quality_meaning="libwebp quality (0-100)",
    default_qualities=(0, 5, 15, 30, 50, 70, 80, 88), quality_bounds=(0, 100),
    pil_format="WEBP", quality_options=lambda q: {"quality": int(q)},
    save_options={"method": 6, "lossless": False},
    library=_pillow_library(libwebp=lambda: _pillow_version("webp")),
    recorded_options={"method": "method"},
    recorded={"chroma_subsampling": "4:2:0"},  # lossy WebP is always 4:2:0
    description="WebP (libwebp {libwebp}), method={method}, {chroma_subsampling}",
    pillow_feature="webp", missing="Pillow was built without WebP support (libwebp)",
)

AVIF = PillowFormat(
    name="avif", label="AVIF", quality_meaning="libavif quality (0-100) as exposed by Pillow",
    default_qualities=(8, 18, 30, 42, 52, 60, 68, 76), quality_bounds=(0, 100),
    pil_format="AVIF", quality_options=lambda q: {"quality": int(q)},
    save_options={"speed": 6, "subsampling": "4:2:0", "max_threads": 1, "range": "full"},
    library=_pillow_library(libavif=lambda: _pillow_version("avif"), codecs=_avif_codec_versions),
    recorded_options={"chroma_subsampling": "subsampling", "speed": "speed", "range": "range",
                      "threads": "max_threads"},
    recorded={"bit_depth": 8},
    description="AVIF (libavif {libavif}; {codecs}), speed={speed}, {chroma_subsampling}",
    pillow_feature="avif", missing="Pillow was built without AVIF support (libavif)",
)

JXL = PillowFormat(
    name="jxl", label="JPEG XL", quality_meaning="libjxl quality (0-100, mapped to butteraugli distance by libjxl)",
    default_qualities=(1, 10, 25, 40, 55, 70, 80, 88), quality_bounds=(0, 100),
    pil_format="JXL", quality_options=lambda q: {"quality": float(q)},
    save_options={"effort": 7, "lossless": False, "num_threads": 1, "use_container": False},
    library=lambda: {"library": "pillow-jxl-plugin (libjxl)", "pillow-jxl-plugin": _pkg_version("pillow-jxl-plugin")},
    recorded_options={"effort": "effort", "container": "use_container", "threads": "num_threads"},
    recorded={"chroma_subsampling": "none (XYB)"},
    description="JPEG XL (pillow-jxl-plugin {pillow-jxl-plugin}, libjxl), effort={effort}",
    plugin_module="pillow_jxl", missing="pillow-jxl-plugin is not installed",
)

JPEG2000 = PillowFormat(
    name="jpeg2000", label="JPEG 2000", quality_meaning="target bits per pixel (OpenJPEG rate = 24 / bpp)",
    default_qualities=(0.1, 0.15, 0.25, 0.4, 0.6, 0.8, 1.1, 1.5), quality_bounds=None,
    pil_format="JPEG2000", quality_options=_jpeg2000_rate,
    save_options={"quality_mode": "rates", "irreversible": True, "mct": 1, "no_jp2": True},
    library=_pillow_library(openjpeg=lambda: _pillow_version("jpg_2000")),
    recorded_options={},
    recorded={"chroma_subsampling": "none (4:4:4, ICT colour transform)", "wavelet": "9/7 irreversible",
              "container": "J2K codestream", "layers": 1},
    description="JPEG 2000 (OpenJPEG {openjpeg}), 9/7, ICT, 4:4:4",
    pillow_feature="jpg_2000", missing="Pillow was built without JPEG 2000 support (OpenJPEG)",
)


class JpegCodec(PillowCodec):
    format = JPEG


class WebpCodec(PillowCodec):
    format = WEBP


class AvifCodec(PillowCodec):
    format = AVIF


class JxlCodec(PillowCodec):
    format = JXL


class Jpeg2000Codec(PillowCodec):
    format = JPEG2000


#: HEIC's x265 settings, recorded and passed to libheif
HEIC_CHROMA = 420
HEIC_X265 = {"preset": "slow", "tune": "ssim"}


class HeicCodec(Codec):
    """HEIC through pillow-heif's own API (libheif + x265), which takes the encoder's options."""

    name = "heic"
    label = "HEIC"
    quality_meaning = "libheif quality (0-100), x265 encoder"
    default_qualities = (10, 17, 24, 30, 36, 42, 48, 54)
    quality_bounds = (0, 100)

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
        heif.save(buf, format="HEIF", quality=int(quality), chroma=HEIC_CHROMA, enc_params=dict(HEIC_X265))
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
            "x265_preset": HEIC_X265["preset"],
            "x265_tune": HEIC_X265["tune"],
        }

    @property
    def description(self) -> str:
        s = self.settings
        return (f"HEIC (libheif {s['libheif']}, {s['encoder']}), preset={s['x265_preset']}, "
                f"tune={s['x265_tune']}, {s['chroma_subsampling']}")
