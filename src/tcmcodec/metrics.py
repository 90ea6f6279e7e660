"""Distortion metrics, used by the codec, training, evaluation and the tools alike.

On 8-bit RGB images (``uint8`` arrays of shape ``H x W x 3``):

- :func:`psnr`: ``10 log10(255^2 / MSE)``, MSE over all pixels and the three channels
  (CompressAI's ``psnr-rgb``). Identical images give ``inf``.
- :func:`ms_ssim`: MS-SSIM (Wang et al. 2003, 5 scales, 11x11 Gaussian window, sigma 1.5) on
  RGB with ``data_range=255`` via ``pytorch_msssim`` (CompressAI's ``ms-ssim-rgb``). MS-SSIM
  downsamples 4 times, so with the 11-pixel window the smaller image side must exceed
  ``(11 - 1) * 2**4 = 160`` pixels; for smaller images :func:`ms_ssim` returns ``nan``
  (documented fallback: such rows are left out of the MS-SSIM mean, see the runner).
- :func:`ms_ssim_db`: ``-10 log10(1 - MS-SSIM)``, the usual way to plot MS-SSIM.

On images scaled to [0, 1] (the networks' tensors): :func:`psnr_from_mse`, and
:data:`PIXEL_RANGE`, the 8-bit peak that relates the two scales.
"""

from __future__ import annotations

import math

import numpy as np

#: smallest image side for which MS-SSIM is defined (5 scales, 11-pixel window)
MS_SSIM_MIN_SIDE = 161
#: the 8-bit peak: an MSE on [0, 1] images times PIXEL_RANGE**2 is the MSE in 8-bit levels
PIXEL_RANGE = 255.0
#: MSEs below this (on [0, 1]) count as this in :func:`psnr_from_mse` (100 dB)
MIN_MSE = 1e-10


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of an MSE measured on images scaled to [0, 1]."""
    return -10 * math.log10(max(mse, MIN_MSE))


def as_rgb_uint8(image) -> np.ndarray:
    """An ``H x W x 3`` ``uint8`` array from an array, a PIL image or a path."""
    if isinstance(image, np.ndarray):
        arr = image
    else:
        from PIL import Image

        if not isinstance(image, Image.Image):
            with Image.open(image) as im:
                im.load()
                image = im.convert("RGB")
        arr = np.asarray(image.convert("RGB"))
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 uint8 RGB array, got {arr.dtype} {arr.shape}")
    return arr


def mse(a: np.ndarray, b: np.ndarray) -> float:
    a = as_rgb_uint8(a)
    b = as_rgb_uint8(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    diff = a.astype(np.float64) - b.astype(np.float64)
    return float(np.mean(diff * diff))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two 8-bit RGB images (peak 255); ``inf`` when identical."""
    m = mse(a, b)
    if m == 0.0:
        return math.inf
    return 10.0 * math.log10(255.0**2 / m)


def ms_ssim(a: np.ndarray, b: np.ndarray) -> float:
    """MS-SSIM on RGB (``data_range=255``), or ``nan`` if a side is < 161 pixels."""
    a = as_rgb_uint8(a)
    b = as_rgb_uint8(b)
    if a.shape != b.shape:
        raise ValueError(f"image shapes differ: {a.shape} vs {b.shape}")
    if min(a.shape[0], a.shape[1]) < MS_SSIM_MIN_SIDE:
        return math.nan
    import torch
    from pytorch_msssim import ms_ssim as _ms_ssim

    def t(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.array(x, dtype=np.float32)).permute(2, 0, 1)[None]

    with torch.no_grad():
        value = _ms_ssim(t(a), t(b), data_range=255.0, size_average=True)
    return float(value)


def ms_ssim_db(value: float) -> float:
    """``-10 log10(1 - MS-SSIM)``; ``inf`` for 1, ``nan`` stays ``nan``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return math.nan
    if value >= 1.0:
        return math.inf
    return -10.0 * math.log10(1.0 - value)


def bpp(num_bytes: int, height: int, width: int) -> float:
    """Bits per pixel of a file of ``num_bytes`` bytes (headers included)."""
    return 8.0 * num_bytes / (height * width)
