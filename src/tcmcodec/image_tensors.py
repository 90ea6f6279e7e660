"""Images as the networks see them: (1, 3, H, W) float tensors in [0, 1], padded to the
model's multiple (the reference TCM's centred padding) and cropped back."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch


def pad_amounts(height: int, width: int, multiple: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) padding that brings the image to the next
    multiple of ``multiple`` in each dimension (at least ``multiple``), split as
    evenly as possible with the odd pixel on the right/bottom -- as the
    reference TCM implementation does."""
    if height < 1 or width < 1 or multiple < 1:
        raise ValueError(f"pad_amounts() needs positive sizes, got {height}x{width} multiple {multiple}")
    new_h = -(-height // multiple) * multiple
    new_w = -(-width // multiple) * multiple
    left = (new_w - width) // 2
    top = (new_h - height) // 2
    return left, new_w - width - left, top, new_h - height - top


def to_tensor(rgb: np.ndarray) -> "torch.Tensor":
    """(H, W, 3) uint8 -> (1, 3, H, W) float32 in [0, 1]."""
    import torch

    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"to_tensor() needs an (H, W, 3) uint8 array, got {rgb.dtype} {rgb.shape}")
    if not rgb.flags.writeable:  # torch.from_numpy warns on read-only arrays (e.g. from PIL)
        rgb = rgb.copy()
    t = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).unsqueeze(0)
    return t.to(torch.float32).div_(255.0).contiguous()


def from_tensor(x: "torch.Tensor") -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] -> (H, W, 3) uint8: NaN -> 0, clamp, then
    ``torch.round(x * 255)`` (round half to even)."""
    import torch

    if x.ndim != 4 or x.shape[0] != 1 or x.shape[1] != 3:
        raise ValueError(f"from_tensor() needs a (1, 3, H, W) tensor, got {tuple(x.shape)}")
    x = torch.nan_to_num(x.detach().to(torch.float32), nan=0.0).clamp_(0.0, 1.0)
    q = torch.round(x * 255.0).to(torch.uint8)
    return np.ascontiguousarray(q[0].permute(1, 2, 0).cpu().numpy())


def pad_tensor(x: "torch.Tensor", pad: tuple[int, int, int, int]) -> "torch.Tensor":
    """Zero-pad the last two dims by (left, right, top, bottom)."""
    import torch.nn.functional as F

    left, right, top, bottom = (int(v) for v in pad)
    if min(left, right, top, bottom) < 0:
        raise ValueError(f"padding must be non-negative, got {pad}")
    return F.pad(x, (left, right, top, bottom), mode="constant", value=0.0)


def crop_tensor(x: "torch.Tensor", pad: tuple[int, int, int, int]) -> "torch.Tensor":
    """Undo :func:`pad_tensor`: remove (left, right, top, bottom) from the last two dims."""
    left, right, top, bottom = (int(v) for v in pad)
    h, w = x.shape[-2], x.shape[-1]
    if min(left, right, top, bottom) < 0 or left + right >= w or top + bottom >= h:
        raise ValueError(f"cannot crop padding {pad} from a {h}x{w} tensor")
    return x[..., top : h - bottom, left : w - right]
