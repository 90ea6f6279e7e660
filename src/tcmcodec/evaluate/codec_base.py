"""The interface every evaluated codec has (:class:`Codec`) and the helpers the
Pillow-based ones share; see :mod:`tcmcodec.evaluate.codecs` for the list of codecs."""

from __future__ import annotations

import io
from importlib import metadata
from typing import Any

import numpy as np

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
