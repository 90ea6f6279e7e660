"""Registry of named models: which weights, which qualities, which metric (data, not code).

Entries name weights files shipped inside the package (``tcmcodec/weights/``). The
authors' checkpoints (``tcm-s``/``-m``/``-l``, 180-300 MB each) cannot be bundled; load
them with ``--checkpoint PATH`` / ``load_model(PATH)``.

Quality: variable-rate models take an integer quality 0..100 mapped linearly onto their
trained rate levels (``level = quality / 100 * (levels - 1)``); the listed ``qualities`` are
the trained levels themselves, anything in between interpolates the gains.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tcmcodec.errors import ModelNotFoundError

#: the quality scale of variable-rate models
QUALITY_MAX = 100
#: quality used for variable-rate models that have no registry entry of their own
DEFAULT_QUALITY = 60


@dataclass(frozen=True)
class ZooEntry:
    """A named model.

    Attributes:
        name: registry name (stored in every ``.tcm`` file it writes).
        description: one line for ``tcm models``.
        weights: file name under ``tcmcodec/weights/``.
        qualities: representative qualities (the trained rate levels).
        default_quality: quality used when none is given.
        metric: distortion the model was trained for ("mse" or "ms-ssim").
        default: whether ``tcm encode`` uses it when no model is named.
    """

    name: str
    description: str
    weights: str
    qualities: tuple[int, ...]
    default_quality: int
    metric: str = "mse"
    default: bool = False

    def path(self) -> Path:
        return Path(str(resources.files("tcmcodec") / "weights" / self.weights))

    @property
    def available(self) -> bool:
        return self.path().is_file()

    def to_json(self) -> dict:
        return {
            "name": self.name, "default": self.default, "qualities": list(self.qualities),
            "default_quality": self.default_quality, "metric": self.metric,
            "description": self.description, "weights": self.weights,
            "available": self.available,
        }


def level_qualities(levels: int) -> tuple[int, ...]:
    """The qualities (0..100) that fall exactly on ``levels`` trained rate levels."""
    return tuple(round(i * QUALITY_MAX / (levels - 1)) for i in range(levels))


def quality_to_level(quality: float, levels: int) -> float:
    """Map a quality in 0..100 onto a rate level in [0, levels - 1]."""
    if not 0 <= quality <= QUALITY_MAX:
        raise ValueError(f"quality must be between 0 and {QUALITY_MAX}, got {quality}")
    return quality / QUALITY_MAX * (levels - 1)


ENTRIES: tuple[ZooEntry, ...] = (
    ZooEntry(
        name="tcm-cpu-mse",
        description="bundled variable-rate TCM (8 trained rates, gain units) trained on 2 CPU cores; interim weights",
        weights="tcm-cpu-mse.pt",
        qualities=level_qualities(8),
        default_quality=DEFAULT_QUALITY,
        metric="mse",
        default=True,
    ),
)


def list_entries() -> list[ZooEntry]:
    return list(ENTRIES)


def get_entry(name: str) -> ZooEntry:
    for entry in ENTRIES:
        if entry.name == name:
            return entry
    known = ", ".join(e.name for e in ENTRIES)
    raise ModelNotFoundError(f"unknown model {name!r}; known models: {known}",
                             python_hint="or pass a checkpoint path", cli_hint="or give --checkpoint PATH")


def default_entry() -> ZooEntry:
    for entry in ENTRIES:
        if entry.default:
            return entry
    raise ModelNotFoundError("no default model is registered")
