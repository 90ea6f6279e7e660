"""Golden ``.tcm`` files: what they hold, how they were made, how a test checks them.

``tests/data/golden/`` holds small files coded by the bundled model and by a tiny model
whose weights are a fixed function of their position (:func:`deterministic_model`: the
same on every computer, no random generator, nothing vendored), with ``manifest.json``
giving for each file the SHA-256 of its decoded y and z symbols and the expected image.
They never change unless the format version does; ``python tests/golden.py --write``
rebuilds them (only for a new format version).

Expected images are PNGs of the decoded picture; for the large tiled one, of its 8x8
block means (the whole picture would be megabytes). A decoder passes when the symbols
are identical and every pixel (block mean) is within one level.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
MANIFEST = GOLDEN / "manifest.json"
SOURCE = Path(__file__).resolve().parent / "data" / "photo-192x128.png"
#: side of the blocks whose means stand for the tiled image's pixels
BLOCK = 8
#: pixels (or block means) of a conforming decoder are within this many levels
TOLERANCE = 1

_SPLITMIX_GAMMA = 0x9E3779B97F4A7C15
_MASK = (1 << 64) - 1


def _splitmix(indices: np.ndarray, seed: int) -> np.ndarray:
    """SplitMix64 of ``seed + index`` (uint64, exact integer arithmetic everywhere)."""
    with np.errstate(over="ignore"):
        z = (indices.astype(np.uint64) + np.uint64(seed & _MASK)) * np.uint64(_SPLITMIX_GAMMA)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def deterministic_model(preset: str = "tcm-tiny-vr", seed: int = 1):
    """A model of ``preset`` whose parameters are uniform in +-1/sqrt(fan-in) from a counter
    hash (biases 0.01 times that, layer-norm weights 1, the bottleneck's quantiles and the
    gains as constructed from exact values): identical bits on every computer."""
    from tcmcodec.config import PRESETS
    from tcmcodec.exact import elementary
    from tcmcodec.model import TCM

    model = TCM(PRESETS[preset])
    cfg = model.config
    with torch.no_grad():
        for number, (name, param) in enumerate(sorted(model.named_parameters())):
            if name.endswith("quantiles"):
                continue
            if name.endswith("log_gain"):
                mid = cfg.rate_lambdas[len(cfg.rate_lambdas) // 2]
                sign = -1.0 if "inverse" in name else 1.0
                ratios = torch.tensor([lam / mid for lam in cfg.rate_lambdas], dtype=torch.float64)
                param.copy_((elementary.log(ratios) * (0.5 * sign))[:, None].expand_as(param))
                continue
            if ".ln" in name or name.endswith("norm.weight"):
                param.fill_(1.0 if name.endswith("weight") else 0.0)
                continue
            fan_in = param[0].numel() if param.dim() > 1 else 1
            bits = _splitmix(np.arange(param.numel()), seed * 1_000_003 + number)
            uniform = (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53 * 2.0 - 1.0
            scale = 1.0 / math.sqrt(fan_in) if param.dim() > 1 else 0.01
            param.copy_(torch.from_numpy(uniform * scale).reshape(param.shape))
    model.update(force=True)
    return model.eval()


def source_rgb() -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(SOURCE).convert("RGB"))


def _smooth_large_image(size: int) -> np.ndarray:
    """A smooth synthetic photo-like image (gradients and soft discs), size x size RGB."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = np.stack([0.5 + 0.4 * np.sin(6 * xx + 2 * yy), 0.5 + 0.4 * np.cos(5 * yy - 3 * xx),
                      0.5 + 0.3 * np.sin(4 * (xx + yy))], axis=-1)
    for cx, cy, r in ((0.3, 0.3, 0.12), (0.7, 0.6, 0.2), (0.5, 0.85, 0.08)):
        image += 0.25 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8)


def cases() -> list[dict]:
    """What each golden file codes (``model``: "bundled" or "tiny"; ``image``: how to make it)."""
    return [
        {"name": "photo-q0", "model": "bundled", "image": "rgb", "quality": 0},
        {"name": "photo-q50", "model": "bundled", "image": "rgb", "quality": 50},
        {"name": "photo-q100", "model": "bundled", "image": "rgb", "quality": 100},
        {"name": "photo-gray-q60", "model": "bundled", "image": "gray", "quality": 60},
        {"name": "photo-rgba-q60", "model": "bundled", "image": "rgba", "quality": 60},
        {"name": "tiny-q30", "model": "tiny", "image": "rgb", "quality": 30},
        {"name": "photo-tiled-q0", "model": "bundled", "image": "large", "quality": 0},
    ]


def make_image(kind: str) -> np.ndarray:
    rgb = source_rgb()
    if kind == "rgb":
        return rgb
    if kind == "gray":
        return rgb.astype(np.float64).mean(-1).round().astype(np.uint8)
    if kind == "rgba":
        height, width = rgb.shape[:2]
        alpha = np.linspace(0, 255, width).round().astype(np.uint8)[None, :].repeat(height, 0)
        return np.dstack([rgb, alpha])
    if kind == "large":
        return _smooth_large_image(2176)  # above the tiny model's whole-image threshold: tiled
    raise ValueError(kind)


def model_for(kind: str):
    import tcmcodec

    return tcmcodec.load_model(None) if kind == "bundled" else deterministic_model()


def block_means(pixels: np.ndarray) -> np.ndarray:
    """Means of BLOCK x BLOCK blocks, rounded to uint8 (sides must be multiples of BLOCK)."""
    height, width = pixels.shape[:2]
    blocks = pixels.reshape(height // BLOCK, BLOCK, width // BLOCK, BLOCK, -1).astype(np.float64)
    means = blocks.mean(axis=(1, 3)).round().astype(np.uint8)
    return means[..., 0] if means.shape[-1] == 1 else means


def expected_pixels(image, tiled: bool) -> np.ndarray:
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return block_means(pixels) if tiled else pixels.squeeze()


def write() -> None:
    import tcmcodec
    from PIL import Image
    from tcmcodec import codec

    GOLDEN.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for case in cases():
        model = model_for(case["model"])
        data = tcmcodec.encode(make_image(case["image"]), model=model, quality=case["quality"], max_pixels=None)
        (GOLDEN / f"{case['name']}.tcm").write_bytes(data)
        result = codec.decode_stream_details(codec.read_stream(data), model)
        tiled = case["image"] == "large"
        expected = expected_pixels(result.image, tiled)
        Image.fromarray(expected).save(GOLDEN / f"{case['name']}.png", optimize=True)
        manifest[case["name"]] = {**case, "weights_hash": model.weights_hash, "bytes": len(data),
                                  "sha256": hashlib.sha256(data).hexdigest(),
                                  "y_symbols_sha256": result.symbol_digests[0],
                                  "z_symbols_sha256": result.symbol_digests[1],
                                  "expected": f"{case['name']}.png", "block_means": BLOCK if tiled else None}
        print(case["name"], len(data), "bytes", file=sys.stderr)
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rebuild the golden files (new format versions only)")
    if parser.parse_args().write:
        write()
