"""Image files in and out of the codec: modes, alpha, pixel limits, listing, atomic writes.

What the network codes is always an (H, W, 3) uint8 RGB array.  Everything
else a user may hand us is mapped onto that, and the original colour mode is
remembered so decoding gives the same kind of image back:

====================  ==========  ==============================================
input mode            ``mode``    what is coded
====================  ==========  ==============================================
RGB, RGBX, YCbCr,     RGB         the RGB pixels (Pillow's ``convert("RGB")``;
CMYK, LAB, HSV                    CMYK JPEGs get their colours right this way)
L, 1                  L           grey replicated to three channels
L with a tRNS key     LA          grey replicated + the alpha plane
P (palette)           RGB / RGBA  RGBA when the palette has transparency
RGBA, RGBa, PA        RGBA        RGB + the alpha plane, kept losslessly
LA, La                LA          grey replicated + the alpha plane
I;16*, I              L           scaled to 8 bits (value / 257), with a warning
F                     L           scaled to 8 bits, with a warning
====================  ==========  ==============================================

Design choices (see the functions for details):

* **Pixel limit** -- ``width * height`` is read from the file header and
  checked *before* any pixel is decoded (:data:`DEFAULT_MAX_PIXELS`).  Our limit
  replaces Pillow's own decompression-bomb check while a file is opened, and a
  :class:`PIL.Image.DecompressionBombError` is turned into :class:`ImageError`.
* **Grey output** -- the decoded RGB of a grey image is not exactly grey; mode
  "L" is rebuilt as the rounded mean of the three channels (not the ITU-R 601
  luma), which is exact for grey and the least-squares choice for noise that
  is independent across channels.
* **Alpha** -- kept as a plane beside the RGB pixels and coded losslessly by
  :mod:`tcmcodec.alpha_plane`.
* **JPEG and alpha** -- saving an RGBA/LA image as JPEG (or any format that
  cannot store it) raises :class:`ImageError` suggesting PNG/WebP/TIFF; the
  alpha is never dropped silently.  Call ``image.convert("RGB")`` to drop it.
* **Atomic writes** -- :mod:`tcmcodec.atomic_files`: the target is the old file
  or the complete new one, never a part.
"""

from __future__ import annotations

import io
import os
import struct
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic_files import atomic_write_bytes
from .errors import ImageError


__all__ = ["DEFAULT_MAX_PIXELS", "IMAGE_SUFFIXES", "LoadedImage", "atomic_write_bytes", "list_images", "load_image",
           "save_image", "to_pil"]

DEFAULT_MAX_PIXELS: int = 2**28
"""Default pixel limit (268.4 MP, e.g. 16384 x 16384).  A 268 MP RGB image is
~800 MB as uint8 and ~3.2 GB as a float32 tensor; pass ``max_pixels=None`` (CLI:
``--max-pixels``) to lift or change it."""

_PIL_LIMIT_LOCK = threading.Lock()


@dataclass
class LoadedImage:
    """An image ready for the codec."""

    rgb: np.ndarray
    """(H, W, 3) uint8, C-contiguous: what the network codes."""
    mode: str
    """"RGB", "L", "RGBA" or "LA": the kind of image decoding gives back."""
    alpha: np.ndarray | None = None
    """(H, W) uint8 when ``mode`` is RGBA or LA, else None."""
    warnings: list[str] = field(default_factory=list)
    """Human-readable notes about lossy conversions, for the caller to print."""

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP"


def _check_limit(width: int, height: int, max_pixels: int | None) -> None:
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(
            f"image is {width}x{height} ({_mp(width * height)}), above the limit of {_mp(max_pixels)}",
            python_hint="pass a larger max_pixels (None: no limit)", cli_hint="raise it with --max-pixels")


# --------------------------------------------------------------------------- loading


#: file extensions listed as images by :func:`list_images`
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"})


def list_images(folder: str | os.PathLike, *, recursive: bool = False) -> list[Path]:
    """The image files in ``folder`` (by extension; below it too with ``recursive``),
    sorted by path. A missing folder raises FileNotFoundError."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(root)
    found = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_image(source: Any, *, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """Read an image from a path, a PIL image or a uint8 numpy array.

    Paths: the size is checked against ``max_pixels`` from the header before
    the pixels are decoded; EXIF orientation is applied; for multi-frame files
    the first frame is used.  A missing file raises FileNotFoundError; anything
    unreadable raises :class:`ImageError`.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, max_pixels)
    if isinstance(source, Image.Image):
        _check_limit(source.width, source.height, max_pixels)
        return _from_pil(source, "image")
    if isinstance(source, (str, os.PathLike)):
        return _from_path(Path(source), max_pixels)
    raise TypeError(
        f"load_image() needs a path, a PIL image or a numpy array, got {type(source).__name__}"
    )


def _from_path(path: Path, max_pixels: int | None) -> LoadedImage:
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if path.is_dir():
        raise ImageError(f"cannot read image {path}: it is a directory")
    with _PIL_LIMIT_LOCK:
        # Our limit replaces Pillow's (which is lower than ours and warns above
        # 89 MP); restore it afterwards so other users of Pillow are unaffected.
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            try:
                im = Image.open(path)
            except FileNotFoundError:
                raise
            except Image.DecompressionBombError as exc:
                raise ImageError(f"image {path} is too large: {exc}", python_hint="pass a larger max_pixels",
                                 cli_hint="raise the limit with --max-pixels") from None
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
                    struct.error, IndexError, TypeError, KeyError, ZeroDivisionError) as exc:
                raise ImageError(f"cannot read image {path}: {_reason(exc)}") from None
            with im:
                _check_limit(im.width, im.height, max_pixels)
                notes = _bit_depth_notes(im)
                la_source = _la_source(im)  # tile info is gone after load()
                try:
                    im.seek(0)
                    im.load()
                except Image.DecompressionBombError as exc:
                    raise ImageError(f"image {path} is too large: {exc}") from None
                except (OSError, SyntaxError, ValueError, EOFError, struct.error,
                        IndexError, TypeError, KeyError, ZeroDivisionError) as exc:
                    raise ImageError(f"cannot read image {path}: {_reason(exc)}") from None
                loaded = _from_pil(im, str(path), la_source=la_source)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    loaded.warnings[:0] = notes
    return loaded


def _reason(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return msg[0] if msg else type(exc).__name__


def _bit_depth_notes(im: Image.Image) -> list[str]:
    """Warn when Pillow silently reads a >8-bit-per-channel file as 8-bit."""
    try:
        rawmodes = []
        for tile in im.tile or ():
            args = tile[3]
            rawmodes.append(args if isinstance(args, str) else (args[0] if args else ""))
    except Exception:  # tile layouts vary across plugins; this is only a note
        return []
    if im.mode in ("RGB", "RGBA", "LA", "L") and any(
        isinstance(r, str) and ";16" in r for r in rawmodes
    ):
        return ["16-bit image coded as 8-bit"]
    return []


def _la_source(im: Image.Image) -> bool:
    """Pillow reads 16-bit grey+alpha PNGs as RGBA; detect that to give LA back."""
    try:
        for tile in im.tile or ():
            args = tile[3]
            rawmode = args if isinstance(args, str) else (args[0] if args else "")
            if isinstance(rawmode, str) and rawmode.startswith("LA;"):
                return True
    except Exception:  # tile layouts vary across plugins; fall back to RGBA
        pass
    return False


def _from_pil(im: Image.Image, name: str, *, la_source: bool | None = None) -> LoadedImage:
    warnings: list[str] = []
    if la_source is None:
        la_source = _la_source(im)
    try:
        # Only transpose when needed: exif_transpose copies even an upright image.
        if im.getexif().get(0x0112, 1) not in (1, None):
            im = ImageOps.exif_transpose(im)
    except Exception as exc:  # a broken EXIF block should not make the image unreadable
        warnings.append(f"EXIF orientation ignored ({_reason(exc)})")
    if im.width < 1 or im.height < 1:
        raise ImageError(f"cannot read image {name}: it is empty ({im.width}x{im.height})")
    try:
        return _convert(im, warnings, la_source)
    except (OSError, ValueError) as exc:
        raise ImageError(f"cannot read image {name}: {_reason(exc)}") from None


def _grey_to_rgb(grey: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(grey[:, :, None], 3, axis=2))


def _convert(im: Image.Image, warnings: list[str], la_source: bool) -> LoadedImage:
    mode = im.mode
    if mode in ("1", "L") and im.has_transparency_data:  # grey with a tRNS key
        la = np.asarray(im.convert("LA"), dtype=np.uint8)
        return LoadedImage(_grey_to_rgb(la[:, :, 0]), "LA", np.ascontiguousarray(la[:, :, 1]), warnings)
    if mode in ("1", "L"):
        grey = np.asarray(im.convert("L"), dtype=np.uint8)
        return LoadedImage(_grey_to_rgb(grey), "L", None, warnings)
    if mode in ("LA", "La"):
        la = np.asarray(im.convert("LA"), dtype=np.uint8)
        return LoadedImage(_grey_to_rgb(la[:, :, 0]), "LA", np.ascontiguousarray(la[:, :, 1]), warnings)
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(im, dtype=np.int64) if mode == "I" else np.asarray(im).astype(np.int64)
        if mode == "I" and values.size and (values.min() < 0 or values.max() > 65535):
            grey = _rescale(values.astype(np.float64))
            warnings.append("32-bit integer image rescaled from its value range to 8-bit")
        else:
            grey = ((values * 255 + 32767) // 65535).astype(np.uint8)  # round(v / 257)
            warnings.append("16-bit image coded as 8-bit")
        return LoadedImage(_grey_to_rgb(grey), "L", None, warnings)
    if mode == "F":
        values = np.asarray(im, dtype=np.float64)
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
        if lo >= 0.0 and hi <= 1.0:
            grey = np.rint(np.nan_to_num(values, nan=0.0) * 255.0)
            note = "values 0..1 scaled to 0..255"
        elif lo >= 0.0 and hi <= 255.0:
            grey = np.rint(np.nan_to_num(values, nan=0.0))
            note = "values 0..255 rounded"
        else:
            grey = _rescale(values)
            note = f"values {lo:g}..{hi:g} rescaled to 0..255"
        warnings.append(f"32-bit float image coded as 8-bit ({note})")
        return LoadedImage(_grey_to_rgb(np.clip(grey, 0, 255).astype(np.uint8)), "L", None, warnings)
    if mode in ("RGBA", "RGBa", "PA") or (mode == "P" and im.has_transparency_data):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
        alpha = np.ascontiguousarray(rgba[:, :, 3])
        if la_source:
            return LoadedImage(_grey_to_rgb(rgba[:, :, 0]), "LA", alpha, warnings)
        return LoadedImage(np.ascontiguousarray(rgba[:, :, :3]), "RGBA", alpha, warnings)
    if mode == "RGB" and im.has_transparency_data:  # RGB with a tRNS colour key
        rgba = np.asarray(im.convert("RGBA"), dtype=np.uint8)
        return LoadedImage(np.ascontiguousarray(rgba[:, :, :3]), "RGBA", np.ascontiguousarray(rgba[:, :, 3]), warnings)
    rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
    return LoadedImage(np.ascontiguousarray(rgb), "RGB", None, warnings)


def _rescale(values: np.ndarray) -> np.ndarray:
    """Linearly map the finite range of ``values`` onto 0..255 (NaN -> 0)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return np.zeros(values.shape, np.uint8)
    lo, hi = float(finite.min()), float(finite.max())
    v = np.nan_to_num(values, nan=lo, posinf=hi, neginf=lo)
    if hi == lo:
        return np.zeros(values.shape, np.uint8)
    return np.clip(np.rint((v - lo) * (255.0 / (hi - lo))), 0, 255).astype(np.uint8)


def _from_array(a: np.ndarray, max_pixels: int | None) -> LoadedImage:
    if a.dtype != np.uint8:
        raise ImageError(f"cannot read image array: dtype must be uint8, got {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (2, 3, 4)):
        raise ImageError(
            f"cannot read image array of shape {a.shape}: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)"
        )
    h, w = a.shape[:2]
    if h < 1 or w < 1:
        raise ImageError(f"cannot read image array of shape {a.shape}: it is empty")
    _check_limit(w, h, max_pixels)
    if a.ndim == 2:
        return LoadedImage(_grey_to_rgb(a), "L", None, [])
    c = a.shape[2]
    if c == 2:
        return LoadedImage(_grey_to_rgb(a[:, :, 0]), "LA", np.ascontiguousarray(a[:, :, 1]), [])
    if c == 3:
        return LoadedImage(np.ascontiguousarray(a), "RGB", None, [])
    return LoadedImage(np.ascontiguousarray(a[:, :, :3]), "RGBA", np.ascontiguousarray(a[:, :, 3]), [])


# --------------------------------------------------------------------------- output images


def _rgb_to_grey(rgb: np.ndarray) -> np.ndarray:
    """Rounded mean of the three channels ((r+g+b)/3 is never exactly x.5)."""
    s = rgb.astype(np.uint16).sum(axis=2)
    return ((s + 1) // 3).astype(np.uint8)


def to_pil(rgb: np.ndarray, mode: str, alpha: np.ndarray | None = None) -> Image.Image:
    """Build the output image in the original ``mode`` from decoded RGB (+ alpha).

    "L"/"LA" take the rounded mean of the three decoded channels.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"to_pil() needs an (H, W, 3) uint8 array, got {rgb.dtype} {rgb.shape}")
    needs_alpha = mode in ("RGBA", "LA")
    if mode not in ("RGB", "L", "RGBA", "LA"):
        raise ValueError(f"unknown mode {mode!r}: expected RGB, L, RGBA or LA")
    if needs_alpha:
        if alpha is None:
            raise ValueError(f"mode {mode} needs an alpha plane")
        alpha = np.asarray(alpha)
        if alpha.dtype != np.uint8 or alpha.shape != rgb.shape[:2]:
            raise ValueError(
                f"alpha must be a {rgb.shape[:2]} uint8 array, got {alpha.dtype} {alpha.shape}"
            )
    elif alpha is not None:
        raise ValueError(f"mode {mode} has no alpha plane, but one was given")
    if mode == "RGB":
        return Image.fromarray(np.ascontiguousarray(rgb))
    if mode == "L":
        return Image.fromarray(_rgb_to_grey(rgb))
    if mode == "RGBA":
        return Image.fromarray(np.ascontiguousarray(np.dstack([rgb, alpha])))
    return Image.fromarray(np.ascontiguousarray(np.dstack([_rgb_to_grey(rgb), alpha])))


# --------------------------------------------------------------------------- writing files

_NO_ALPHA_FORMATS = {"JPEG", "PPM", "MPO"}


def _loaded_plugins(found: Callable[[], bool]) -> None:
    """Load Pillow's common plugins (PNG, JPEG, BMP, GIF, PPM), and all of them only when
    ``found`` still fails: importing every plugin costs a fresh process 40 ms."""
    Image.preinit()
    if not found():
        Image.init()


def _format_for(path: Path, fmt: str | None) -> str:
    if fmt:
        fmt = {"JPG": "JPEG", "TIF": "TIFF"}.get(fmt.upper(), fmt.upper())
        _loaded_plugins(lambda: fmt in Image.SAVE)
        if fmt not in Image.SAVE:
            raise ImageError(f"cannot write image {path}: unknown or unsupported format {fmt!r}")
        return fmt
    ext = path.suffix.lower()
    if not ext:
        raise ImageError(f"cannot tell the image format of {path}: it has no extension (use .png, .jpg, .webp, ...)")
    _loaded_plugins(lambda: Image.EXTENSION.get(ext) in Image.SAVE)
    fmt = Image.EXTENSION.get(ext)
    if fmt is None or fmt not in Image.SAVE:
        raise ImageError(
            f"cannot write image {path}: unknown or unsupported extension {ext!r} (use .png, .jpg, .webp, .bmp, .tif or .ppm)"
        )
    return fmt


def save_image(image: Image.Image, path: str | os.PathLike, *, format: str | None = None, **params: Any) -> None:
    """Write ``image`` to ``path`` atomically; the format comes from the
    extension unless ``format`` is given.

    The image is encoded in memory first, so an encoding problem (unknown
    extension, a mode the format cannot store such as RGBA as JPEG) raises
    :class:`ImageError` and leaves no file behind; I/O errors propagate as
    OSError, also leaving the target untouched.
    """
    path = Path(path)
    fmt = _format_for(path, format)
    if fmt in _NO_ALPHA_FORMATS and image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        raise ImageError(
            f"cannot write image {path}: {fmt} cannot store transparency (mode {image.mode}); "
            "use .png, .webp or .tif to keep the alpha channel, or drop it first"
        )
    buf = io.BytesIO()
    try:
        image.save(buf, format=fmt, **params)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ImageError(f"cannot write image {path} as {fmt}: {_reason(exc)}") from None
    atomic_write_bytes(path, buf.getvalue())
