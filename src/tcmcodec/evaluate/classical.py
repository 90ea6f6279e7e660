"""The classical codecs compared against: JPEG, WebP, AVIF, JPEG XL, HEIC and JPEG 2000,
each with the settings it records in the results (see :mod:`tcmcodec.evaluate.codecs`)."""

from __future__ import annotations

import io

import numpy as np

from tcmcodec.errors import TcmError
from tcmcodec.evaluate.codec_base import Codec, Quality, _pil_decode, _pil_image, _pkg_version

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
