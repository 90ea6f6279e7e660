"""Tiled transforms: bounded memory for large images.

The analysis g_a and synthesis g_s dominate memory (full-resolution feature maps of 2N
channels). For large images they run tile by tile, each tile with a halo of context that
is computed and then cropped away, while the entropy model (h_a, the hyper synthesis,
the slice loop) still sees the whole latent at 1/16. So a tiled file has the same
structure and nearly the same rate as an untiled one, and no seams: tiles differ from a
whole-image pass only through the zero padding at the halo's outer edge, which fades over
the halo width (measured in ``docs/benchmarks.md``).

Tiles and halos are multiples of the alignment (``TCMConfig.pad_multiple`` pixels, i.e.
whole attention windows at every level), so window partitions inside a tile coincide
with those of the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import Tensor

from tcmcodec.runtime import release_free_memory


@dataclass(frozen=True)
class TilePlan:
    """How to tile the transforms, in image pixels.

    Attributes:
        tile: side of a tile (a multiple of the alignment).
        halo: context added around each tile on every side (a multiple of the alignment).
        threshold: images with at most this many (padded) pixels are not tiled.
    """

    tile: int = 768
    halo: int = 128
    threshold: int = 1536 * 1536

    def applies(self, height: int, width: int) -> bool:
        return height * width > self.threshold


#: the paper's small model: 768-pixel tiles keep a 4K tcm-s encode or decode under 3 GB
#: (2.5 / 2.7 GB measured) and 1920x1080 is coded whole (2.7 / 2.8 GB)
DEFAULT_TILING = TilePlan()
#: channel width C = 2N that DEFAULT_TILING is sized for (tcm-s)
REFERENCE_WIDTH = 128
#: images up to (THRESHOLD_TILES * tile)^2 pixels are coded whole
THRESHOLD_TILES = 2.0
#: no model gets larger tiles (the bundled tcm-cpu would code 4K whole at 3.1 GB)
MAX_TILE = 1024


def plan_for(width: int, align: int) -> TilePlan:
    """The tiling policy for a model of channel width ``width`` (C = 2N).

    Feature-map memory per pixel grows with C, so narrower models get larger tiles and a
    higher threshold (fewer tiles, less halo overhead): tile = 768 * sqrt(128 / C) pixels,
    rounded to the nearest multiple of the alignment, at most MAX_TILE (tcm-s 768, tcm-m
    640, tcm-l 512, the bundled tcm-cpu 1024). The decoder derives the same plan from the model, so
    the reconstruction of a file does not depend on anything but the model and the size.
    """
    tile = round(DEFAULT_TILING.tile * (REFERENCE_WIDTH / width) ** 0.5 / align) * align
    tile = max(align, min(tile, MAX_TILE // align * align))
    halo = max(align, DEFAULT_TILING.halo // align * align)
    return TilePlan(tile=tile, halo=halo, threshold=int((THRESHOLD_TILES * tile) ** 2))


def tiled_apply(fn: Callable[[Tensor], Tensor], x: Tensor, tile: int, halo: int, scale: float) -> Tensor:
    """Apply ``fn`` (a spatial map whose output size is ``scale`` times its input size)
    tile by tile. ``tile`` and ``halo`` are in input units; returns the assembled output.

    After each tile the free heap goes back to the system (:mod:`tcmcodec.runtime`), so
    peak memory does not grow with the number of tiles.
    """
    height, width = x.shape[-2:]
    out: Tensor | None = None
    for top in range(0, height, tile):
        for left in range(0, width, tile):
            bottom, right = min(height, top + tile), min(width, left + tile)
            t0, l0 = max(0, top - halo), max(0, left - halo)
            t1, l1 = min(height, bottom + halo), min(width, right + halo)
            piece = fn(x[..., t0:t1, l0:l1])
            if out is None:
                out = piece.new_empty(*piece.shape[:-2], round(height * scale), round(width * scale))
            rows = slice(round((top - t0) * scale), round((bottom - t0) * scale))
            cols = slice(round((left - l0) * scale), round((right - l0) * scale))
            out[..., round(top * scale):round(bottom * scale), round(left * scale):round(right * scale)] = \
                piece[..., rows, cols]
            del piece
            release_free_memory()
    assert out is not None
    return out
