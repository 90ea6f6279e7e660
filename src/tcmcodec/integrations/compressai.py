"""TCM as a CompressAI ``CompressionModel`` (needs ``pip install 'tcmcodec[compressai]'``).

tcmcodec's models follow CompressAI's contract (``forward`` / ``compress`` /
``decompress`` / ``update`` / ``aux_loss``, the ``likelihoods`` dict, the ``strings`` and
``shape`` of compress) without depending on CompressAI. Code that checks for
``isinstance(model, CompressionModel)`` or calls its base-class helpers gets a
:class:`CompressAITCM`::

    from tcmcodec.integrations.compressai import load_compressai_model
    from compressai.utils.eval_model.__main__ import inference

    model = load_compressai_model()            # the bundled model, or a name or a path
    metrics = inference(model, x)               # x (3, H, W) in [0, 1]

The state dict keeps the published layout (CompressAI's names), so weights move between
the two without conversion; CompressAI's coding-table buffers are not part of it (the
coder builds its own tables, :mod:`tcmcodec.coding.tables`).
"""

from __future__ import annotations

import copy
import os

from tcmcodec.model import TCM

try:
    from compressai.models import CompressionModel
except ImportError as exc:  # pragma: no cover - exercised where the extra is absent
    raise ImportError(
        "tcmcodec.integrations.compressai needs CompressAI: pip install 'tcmcodec[compressai]'"
    ) from exc

__all__ = ["CompressAITCM", "as_compressai_model", "load_compressai_model"]


class CompressAITCM(TCM, CompressionModel):
    """A :class:`~tcmcodec.model.TCM` that is also a CompressAI ``CompressionModel``.

    TCM's own methods come first (its ``update`` builds the exact coding tables, its
    ``aux_loss`` trains its own bottleneck's quantiles); everything else CompressAI's base
    class offers is inherited.
    """


def as_compressai_model(model: TCM) -> CompressAITCM:
    """Make ``model`` a :class:`CompressAITCM` in place (same parameters, name and weights
    hash) and return it."""
    if not isinstance(model, TCM):
        raise TypeError(f"expected a tcmcodec TCM model, got {type(model).__name__}")
    model.__class__ = CompressAITCM
    return model


def load_compressai_model(name_or_path: str | os.PathLike | None = None) -> CompressAITCM:
    """Load a model as :func:`tcmcodec.codec.load_model` does (None: the bundled default,
    a zoo name, or a checkpoint path) and make a CompressAI model of a copy of it (the
    codec's cached model stays as it was)."""
    from tcmcodec import codec

    return as_compressai_model(copy.deepcopy(codec.load_model(name_or_path)))
