"""What ``tcm info`` shows about a ``.tcm`` file, from its header alone (no torch)."""

from __future__ import annotations

from typing import Any

from tcmcodec import container


def describe(data: bytes) -> dict[str, Any]:
    """The header fields of a ``.tcm`` file as plain JSON values (raises
    :class:`~tcmcodec.errors.FormatError` on a bad file)."""
    stream = container.parse(data)
    return {
        "format_version": container.FORMAT_VERSION,
        "bytes": len(data),
        "bpp": 8 * len(data) / (stream.width * stream.height),
        "model": stream.model_name,
        "weights_hash": stream.weights_hash,
        "quality": stream.quality,
        "numerics": stream.numerics,
        "platform": stream.platform or "any (decodes everywhere)",
        "width": stream.width,
        "height": stream.height,
        "mode": stream.mode,
        "pad": list(stream.pad),
        "latent_shapes": [list(s) for s in stream.latent_shapes],
        "string_bytes": [len(s) for s in stream.strings],
        "symbol_checks": [f"{c:08x}" for c in stream.checks],
        "alpha_bytes": len(stream.alpha) if stream.alpha is not None else 0,
        "header_bytes": container.header_size(stream),
    }
