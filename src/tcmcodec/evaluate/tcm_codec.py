"""Our codec as an evaluated codec: ``tcm:NAME`` or ``tcm:checkpoint=PATH``, optionally
with encoder-side refinement (``+refine=STEPS``, ``+refine-lambda=L``)."""

from __future__ import annotations

import numpy as np

from tcmcodec.errors import TcmError
from tcmcodec.evaluate.codec_base import Codec, Quality, _pkg_version

#: ``tcm:NAME+refine=STEPS``: encoder-side refinement in an evaluation
REFINE_SUFFIX = "+refine="
#: ``...+refine-lambda=L``: its rate-distortion trade-off (needed for fixed-rate models)
REFINE_LAMBDA_SUFFIX = "+refine-lambda="


class TcmCodec(Codec):
    """Our codec through the public API ``tcmcodec.encode`` / ``tcmcodec.decode``.

    ``tcm:NAME`` uses a model from the zoo (qualities from ``tcmcodec.zoo.get_entry(NAME)``);
    ``tcm:checkpoint=PATH`` loads a checkpoint once with ``tcmcodec.load_model`` (its qualities
    come from the model's ``qualities`` attribute if it has one, else from its trained rate
    levels if it is variable-rate, else a single ``None`` point).
    Model loading happens in :meth:`prepare`, outside the timed region. A ``+refine=STEPS``
    suffix (``tcm:NAME+refine=10``) encodes with that many steps of encoder-side latent
    refinement (:mod:`tcmcodec.refine`); the decoder is the same. ``+refine-lambda=L`` sets
    the refinement's trade-off (default: the model's lambda at each quality; a fixed-rate
    model needs it).
    """

    label = "TCM"
    quality_meaning = "model quality index (tcmcodec.zoo)"
    is_learned = True

    def __init__(self, model: str | None = None, checkpoint: str | None = None, refine: int = 0,
                 refine_lambda: float | None = None):
        if (model is None) == (checkpoint is None):
            raise TcmError("tcm codec needs exactly one of a model name or checkpoint=PATH")
        if refine < 0:
            raise TcmError(f"tcm codec: refine steps must be >= 0, got {refine}")
        if refine_lambda is not None and not (refine and refine_lambda > 0):
            raise TcmError(f"tcm codec: {REFINE_LAMBDA_SUFFIX}L needs {REFINE_SUFFIX}STEPS and "
                           f"a positive L, got {refine_lambda}")
        self.model = model
        self.checkpoint = checkpoint
        self.refine = refine
        self.refine_lambda = refine_lambda
        self.name = f"tcm:{model}" if model is not None else f"tcm:checkpoint={checkpoint}"
        self.label = f"TCM ({model})" if model is not None else f"TCM ({_basename(checkpoint)})"
        if refine:
            self.name += f"{REFINE_SUFFIX}{refine}"
            detail = f"refined {refine}"
            if refine_lambda is not None:
                self.name += f"{REFINE_LAMBDA_SUFFIX}{refine_lambda:g}"
                detail += f" at lambda {refine_lambda:g}"
            self.label = f"{self.label[:-1]}, {detail})"
        self._loaded = None

    def __getstate__(self):  # loaded models are not sent to worker processes
        state = dict(self.__dict__)
        state["_loaded"] = None
        return state

    def unavailable_reason(self) -> str | None:
        try:
            import tcmcodec
        except ImportError as exc:  # pragma: no cover
            return f"tcmcodec cannot be imported: {exc}"
        for attr in ("encode", "decode"):
            if not callable(getattr(tcmcodec, attr, None)):
                return f"tcmcodec.{attr} is not available in this build"
        if self.checkpoint is not None:
            if not callable(getattr(tcmcodec, "load_model", None)):
                return "tcmcodec.load_model is not available in this build"
            import os

            if not os.path.exists(self.checkpoint):
                return f"checkpoint not found: {self.checkpoint}"
        return None

    @property
    def default_qualities(self) -> tuple:  # type: ignore[override]
        from tcmcodec import zoo

        if self.model is not None:
            return tuple(zoo.get_entry(self.model).qualities)
        model = self._model_object()
        qualities = getattr(model, "qualities", None)
        if qualities:
            return tuple(qualities)
        config = getattr(model, "config", None)
        if config is not None and config.variable_rate:  # one point per trained rate level
            return zoo.level_qualities(config.rate_levels)
        return (None,)

    @property
    def quality_bounds(self) -> tuple[int, int] | None:  # type: ignore[override]
        """Every integer quality of a variable-rate model, not only its trained levels (what
        ``tcm compare`` searches to match a bpp); None for a fixed-rate model."""
        from tcmcodec import zoo

        return (0, zoo.QUALITY_MAX) if len(self.default_qualities) > 1 else None

    def _model_object(self):
        if self._loaded is None:
            import tcmcodec

            self._loaded = tcmcodec.load_model(self.checkpoint)
        return self._loaded

    def _model_arg(self):
        return self.model if self.model is not None else self._model_object()

    def _kwargs(self, quality: Quality) -> dict:
        kw: dict = {"model": self._model_arg()}
        if self.refine:
            kw["refine"] = self.refine
        if self.refine_lambda is not None:
            kw["refine_lambda"] = self.refine_lambda
        if quality is not None:
            kw["quality"] = quality
        return kw

    def prepare(self, quality: Quality) -> None:
        # warm-up on a small image: loads weights, builds entropy-coder tables
        warm = np.full((64, 64, 3), 128, np.uint8)
        try:
            self.decode_raw(self.encode(warm, quality))
        except Exception:  # the timed calls will raise a real error if there is one
            pass

    def encode(self, rgb: np.ndarray, quality: Quality) -> bytes:
        import tcmcodec

        return bytes(tcmcodec.encode(np.ascontiguousarray(rgb), **self._kwargs(quality)))

    def decode_raw(self, data: bytes):
        import tcmcodec

        return tcmcodec.decode(data, model=self._model_arg())

    def decode(self, data: bytes) -> np.ndarray:
        out = self.decode_raw(data)
        if isinstance(out, np.ndarray):
            return out
        return np.asarray(out.convert("RGB"))

    @property
    def settings(self) -> dict:
        import tcmcodec

        s = {
            **super().settings,
            "library": "tcmcodec",
            "tcmcodec": getattr(tcmcodec, "__version__", None),
            "torch": _pkg_version("torch"),
            "constriction": _pkg_version("constriction"),
        }
        if self.model is not None:
            s["model"] = self.model
        else:
            s["checkpoint"] = self.checkpoint
        s["refine_steps"] = self.refine
        s["refine_lambda"] = self.refine_lambda
        s["analysis_precision"] = self._analysis_precision()
        return s

    def _analysis_precision(self) -> str | None:
        """The precision of g_a's inner layers on this machine (load_model's choice: it
        depends on the hardware), or None when the model cannot be loaded."""
        import tcmcodec
        from tcmcodec.errors import TcmError

        try:
            loaded = self._model_object() if self.model is None else tcmcodec.load_model(self.model)
        except (TcmError, OSError):
            return None
        return str(loaded.analysis_dtype or "torch.float32").removeprefix("torch.")

    @property
    def description(self) -> str:
        import tcmcodec

        return f"{self.label}, tcmcodec {getattr(tcmcodec, '__version__', '?')}"


def _basename(path: str | None) -> str:
    import os

    return os.path.basename(path or "")
