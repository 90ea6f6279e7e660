"""The work behind the comparison page: code an uploaded photo with TCM and with classical
codecs at the same file size, or decode an uploaded ``.tcm`` file.

TCM codes the image at the chosen quality (or at the largest quality under a size budget,
:func:`tcmcodec.ratecontrol.encode_to_target`); each classical codec then takes the quality
whose file size is closest to TCM's (:func:`tcmcodec.evaluate.compare.match_bpp`). Every
codec is timed on one more encode and decode at its chosen quality. The decoded images are
served as PNGs (zlib level 1: they only travel to the browser); the coded files as they are.
"""

from __future__ import annotations

import io
import math
import time
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageOps

from tcmcodec.errors import TcmError
from tcmcodec.serve.jobs import JobFailed

#: classical codecs offered beside TCM, in display order
CLASSICAL_CODECS = ("jpeg", "webp", "avif")
#: file extension and media type of each codec's download
DOWNLOADS = {
    "tcm": (".tcm", "application/octet-stream"),
    "jpeg": (".jpg", "image/jpeg"),
    "webp": (".webp", "image/webp"),
    "avif": (".avif", "image/avif"),
}
#: sample photos offered by the page: name -> (label, file in matplotlib's sample data,
#: which the serve extra installs)
SAMPLES = {"grace-hopper": ("Grace Hopper (matplotlib's sample photo)", "grace_hopper.jpg")}
#: zlib level of the PNGs shown in the page
DISPLAY_PNG_LEVEL = 1

Progress = Callable[[str, float], None]
Files = dict[str, tuple[bytes, str]]


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG", compress_level=DISPLAY_PNG_LEVEL)
    return buffer.getvalue()


def sample_bytes(name: str) -> bytes | None:
    """The file of sample ``name``, or None when it is unknown or not installed."""
    if name not in SAMPLES:
        return None
    try:
        from matplotlib import cbook

        with open(cbook.get_sample_data(SAMPLES[name][1], asfileobj=False), "rb") as f:
            return f.read()
    except (ImportError, OSError, ValueError):
        return None


def check_image_header(data: bytes, max_pixels: int) -> None:
    """Refuse, before queueing, an upload that is not an image or is too large (reads the
    header only). Raises :class:`JobFailed` with the message for the page."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            width, height = opened.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise JobFailed(f"cannot read this file as an image ({exc})") from None
    if width * height > max_pixels:
        raise JobFailed(f"the image has {width}x{height} pixels; this server accepts at most "
                        f"{max_pixels:,} (tcm serve --max-pixels)")


def check_tcm_header(data: bytes, max_pixels: int) -> None:
    """Refuse, before queueing, a file that is not a ``.tcm`` or holds too large an image."""
    from tcmcodec.stream_info import describe

    try:
        info = describe(data)
    except TcmError as exc:
        raise JobFailed(f"not a .tcm file this version can read: {exc}") from None
    if info["width"] * info["height"] > max_pixels:
        raise JobFailed(f"the file holds {info['width']}x{info['height']} pixels; this server "
                        f"decodes at most {max_pixels:,}")


def read_upload(data: bytes, max_pixels: int) -> np.ndarray:
    """The uploaded image as (H, W, 3) uint8, EXIF orientation applied; alpha is dropped (the
    page compares colours). Its header passed :func:`check_image_header` when it was
    uploaded; the pixel limit is checked again by ``load_image``. Raises :class:`JobFailed`
    with a message for the page."""
    from tcmcodec.image_io import load_image

    try:
        with Image.open(io.BytesIO(data)) as opened:
            return load_image(ImageOps.exif_transpose(opened), max_pixels=max_pixels).rgb
    except (OSError, ValueError, SyntaxError, TcmError, Image.DecompressionBombError) as exc:
        raise JobFailed(f"cannot read this file as an image ({exc})") from None


def _metrics(original: np.ndarray, decoded: np.ndarray) -> dict[str, float | None]:
    from tcmcodec import metrics

    ms_ssim = metrics.ms_ssim(original, decoded)  # nan below metrics.MS_SSIM_MIN_SIDE
    return {"psnr": round(metrics.psnr(original, decoded), 3),
            "ms_ssim": None if math.isnan(ms_ssim) else round(ms_ssim, 5)}


def _entry(name: str, label: str, quality: Any, data: bytes, seconds: tuple[float, float],
           original: np.ndarray, decoded: np.ndarray, files: Files) -> dict[str, Any]:
    height, width = original.shape[:2]
    extension, media = DOWNLOADS[name]
    files[f"{name}.png"] = (_png(decoded), "image/png")
    files[f"{name}{extension}"] = (data, media)
    return {"name": name, "label": label, "quality": quality, "bytes": len(data),
            "bpp": round(8 * len(data) / (width * height), 4), **_metrics(original, decoded),
            "encode_s": round(seconds[0], 3), "decode_s": round(seconds[1], 3),
            "image": f"{name}.png", "download": f"{name}{extension}"}


def _tcm(rgb: np.ndarray, quality: int | None, max_bytes: int | None, progress: Progress,
         files: Files) -> dict[str, Any]:
    from tcmcodec import codec
    from tcmcodec.ratecontrol import Target, encode_to_target

    net = codec.load_model(None)
    progress("TCM: encoding", 0.05)
    start = time.perf_counter()
    if max_bytes is not None:
        result = encode_to_target(rgb, Target(max_bytes=max_bytes), net, max_pixels=None)
    else:
        result = codec.encode_image(rgb, net, quality, max_pixels=None)
    encoded = time.perf_counter() - start
    progress("TCM: decoding", 0.35)
    start = time.perf_counter()
    decoded = np.asarray(codec.decode(result.data, net).convert("RGB"))
    seconds = (encoded, time.perf_counter() - start)
    return _entry("tcm", f"TCM ({net.model_name})", result.quality, result.data, seconds, rgb, decoded, files)


def _classical(name: str, rgb: np.ndarray, target_bpp: float, files: Files) -> dict[str, Any] | None:
    from tcmcodec.evaluate.codecs import get_codec
    from tcmcodec.evaluate.compare import match_bpp

    coder = get_codec(name)
    if not coder.available():
        return None
    match = match_bpp(coder, rgb, target_bpp)
    start = time.perf_counter()
    data = coder.encode(rgb, match.quality)
    encoded = time.perf_counter() - start
    start = time.perf_counter()
    coder.decode(data)
    seconds = (encoded, time.perf_counter() - start)
    return _entry(name, coder.label or name, match.quality, data, seconds, rgb, match.reconstruction, files)


def comparison(upload: bytes, *, quality: int | None, max_bytes: int | None, codecs: tuple[str, ...],
               max_pixels: int) -> Callable[[Progress], tuple[dict[str, Any], Files]]:
    """The job that compares ``upload`` under TCM and ``codecs`` at TCM's file size."""

    def work(progress: Progress) -> tuple[dict[str, Any], Files]:
        progress("reading the image", 0.01)
        rgb = read_upload(upload, max_pixels)
        files: Files = {"original.png": (_png(rgb), "image/png")}
        entries = [_tcm(rgb, quality, max_bytes, progress, files)]
        target_bpp = entries[0]["bpp"]
        for index, name in enumerate(codecs):
            progress(f"{name.upper()}: matching TCM's size", 0.5 + 0.5 * index / max(len(codecs), 1))
            entry = _classical(name, rgb, target_bpp, files)
            if entry is not None:
                entries.append(entry)
        height, width = rgb.shape[:2]
        return {"kind": "comparison", "width": width, "height": height, "original": "original.png",
                "codecs": entries}, files

    return work


def decoding(upload: bytes, max_pixels: int) -> Callable[[Progress], tuple[dict[str, Any], Files]]:
    """The job that decodes an uploaded ``.tcm`` file and describes its header."""

    def work(progress: Progress) -> tuple[dict[str, Any], Files]:
        from tcmcodec import codec
        from tcmcodec.stream_info import describe

        progress("reading the header", 0.05)
        info = describe(upload)  # checked by check_tcm_header when it was uploaded
        try:
            progress("decoding", 0.2)
            start = time.perf_counter()
            image = codec.decode(upload, max_pixels=max_pixels)
            seconds = time.perf_counter() - start
        except TcmError as exc:
            raise JobFailed(f"cannot decode this file: {exc}") from None
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=DISPLAY_PNG_LEVEL)
        files = {"decoded.png": (buffer.getvalue(), "image/png")}
        return {"kind": "decoding", "info": info, "decode_s": round(seconds, 3), "image": "decoded.png"}, files

    return work
