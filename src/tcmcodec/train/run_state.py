"""What a training checkpoint holds besides the weights: every RNG state (in types that
``torch.load(weights_only=True)`` accepts), the file names, and atomic writing."""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tcmcodec.image_io import atomic_write_bytes

LATEST = "checkpoint-latest.pth.tar"
BEST = "checkpoint-best.pth.tar"
CHECKPOINT_FORMAT = "tcmcodec-train-v1"


def atomic_save(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` atomically (a kill leaves the old file or the new one)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def rng_state() -> dict[str, Any]:
    """Every RNG state, in types that ``torch.load(weights_only=True)`` accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
