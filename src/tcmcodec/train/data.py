"""Training data: random crops of any folder of images, indexed by step for exact resume.

Sample ``k`` of the run (``k = step * global_batch + rank * batch + j``) is a pure function
of ``(seed, k)``: which image, where to crop, whether to flip. So a resumed run sees
exactly the batches it would have seen, whatever the number of data-loader workers, and
no sampler state has to be checkpointed.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from tcmcodec import image_io

def list_images(root: str | os.PathLike) -> list[Path]:
    """All image files below ``root`` (recursive, by extension), sorted."""
    return image_io.list_images(root, recursive=True)


def split_holdout(paths: Sequence[Path], count: int) -> tuple[list[Path], list[Path]]:
    """Deterministically hold out ``count`` images (by name hash) for validation."""
    ranked = sorted(paths, key=lambda p: hashlib.sha256(p.name.encode()).hexdigest())
    held = set(ranked[:count])
    return [p for p in paths if p not in held], [p for p in paths if p in held]


#: how many training images :func:`count_smaller_than` reads the size of (headers only)
SIZE_CHECK_LIMIT = 2000


def count_smaller_than(paths: Sequence[Path], side: int, limit: int = SIZE_CHECK_LIMIT) -> tuple[int, int]:
    """``(smaller, checked)``: of at most ``limit`` of ``paths`` (spread evenly over the
    list), how many have a side shorter than ``side`` pixels, and how many were readable.
    Such images are upscaled for their crops (:class:`RandomCropDataset`). Reads headers only."""
    stride = max(1, -(-len(paths) // limit))
    smaller = checked = 0
    for path in paths[::stride]:
        try:
            with Image.open(path) as img:
                width, height = img.size
        except (OSError, ValueError, Image.DecompressionBombError):
            continue
        checked += 1
        smaller += min(width, height) < side
    return smaller, checked


def _load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as img:
        img.draft("RGB", (img.width, img.height))
        return np.asarray(img.convert("RGB"))


class RandomCropDataset(Dataset):
    """Random ``patch x patch`` crops with random flips, item ``k`` determined by (seed, k).

    Images smaller than the patch are upscaled (bicubic) to cover it; unreadable files
    are skipped with a warning. Items are (3, patch, patch) float tensors in [0, 1].
    """

    def __init__(self, paths: Sequence[Path], patch: int, seed: int = 0, length: int = 2**62) -> None:
        if not paths:
            raise ValueError("no training images found")
        self.paths = list(paths)
        self.patch = patch
        self.seed = seed
        self.length = length
        self._bad: set[int] = set()

    def __len__(self) -> int:
        return self.length

    def _image(self, rng: np.random.Generator) -> np.ndarray:
        for _ in range(100):
            index = int(rng.integers(len(self.paths)))
            if index in self._bad:
                continue
            try:
                return _load_rgb(self.paths[index])
            except (OSError, ValueError, Image.DecompressionBombError) as exc:
                self._bad.add(index)
                warnings.warn(f"skipping unreadable training image {self.paths[index]}: {exc}")
        raise RuntimeError("no readable training images")

    def __getitem__(self, k: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, k])
        pixels = self._image(rng)
        height, width = pixels.shape[:2]
        if min(height, width) < self.patch:
            factor = self.patch / min(height, width)
            size = (max(self.patch, round(width * factor)), max(self.patch, round(height * factor)))
            pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.BICUBIC))
            height, width = pixels.shape[:2]
        top = int(rng.integers(height - self.patch + 1))
        left = int(rng.integers(width - self.patch + 1))
        crop = pixels[top : top + self.patch, left : left + self.patch]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.5:
            crop = crop[::-1]
        # one copy, uint8 -> float32, into a writable array (the decoded image is read-only,
        # and torch warns on such arrays)
        pixels = np.ascontiguousarray(crop, dtype=np.float32)
        return torch.from_numpy(pixels).permute(2, 0, 1).div_(255)


class StepSampler(torch.utils.data.Sampler[int]):
    """Sample indices for this rank from ``start_step`` on: batch ``j`` of step ``s`` is
    ``(s * world + rank) * batch + j``."""

    def __init__(self, start_step: int, total_steps: int, batch: int, rank: int = 0, world: int = 1) -> None:
        self.start_step, self.total_steps = start_step, total_steps
        self.batch, self.rank, self.world = batch, rank, world

    def __iter__(self):
        for step in range(self.start_step, self.total_steps):
            base = (step * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step) * self.batch


def load_validation(paths: Sequence[Path], max_side: int, multiple: int) -> list[torch.Tensor]:
    """Validation images as (1, 3, H, W) tensors, centre-cropped to a multiple of
    ``multiple`` no larger than ``max_side`` (so validation is fast and needs no padding)."""
    images = []
    for path in paths:
        try:
            pixels = _load_rgb(Path(path))
        except (OSError, ValueError) as exc:
            warnings.warn(f"skipping unreadable validation image {path}: {exc}")
            continue
        height, width = pixels.shape[:2]
        crop_h = min(max_side, height) // multiple * multiple
        crop_w = min(max_side, width) // multiple * multiple
        if crop_h == 0 or crop_w == 0:
            continue
        top, left = (height - crop_h) // 2, (width - crop_w) // 2
        crop = pixels[top : top + crop_h, left : left + crop_w]
        images.append(torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None].float() / 255)
    return images
