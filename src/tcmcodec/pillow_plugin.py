"""Pillow plugin for ``.tcm`` files, registered when :mod:`tcmcodec` is imported.

``Image.open("x.tcm")`` parses the header at once (size and mode are known without
decoding) and decodes on ``load()`` (or ``np.asarray(img)``, ``img.convert(...)``, ...);
``img.save("x.tcm", quality=60, model=NAME_OR_MODEL)`` encodes; instead of a quality,
``target=tcmcodec.Target(max_bytes=20_000)`` (or ``max_bpp=``, ``min_psnr=``) lets the rate
control of :mod:`tcmcodec.ratecontrol` choose it (a warning when the target cannot be met).

Which model decodes: ``img.info["tcm_model"]`` if set before loading (a name, checkpoint
path or loaded :class:`~tcmcodec.TCM`), else the model given to :func:`set_default_model`,
else (None) the bundled model named in the file. ``Image.open`` takes no model argument,
so for files coded with your own checkpoint::

    tcmcodec.pillow_plugin.set_default_model("my-weights.pt")   # or a loaded TCM
    array = np.asarray(Image.open("x.tcm"))

A file that needs another model raises :class:`~tcmcodec.ModelMismatchError` on load.
"""

from __future__ import annotations

import warnings
from typing import IO, Any

from PIL import Image, ImageFile

from tcmcodec import container

FORMAT = "TCM"

_default_model: Any = None


def set_default_model(model: Any) -> Any:
    """Decode ``.tcm`` files opened through Pillow with ``model`` (name, checkpoint path,
    loaded TCM, or None for the bundled model named in each file); returns the previous one."""
    global _default_model
    previous, _default_model = _default_model, model
    return previous


def get_default_model() -> Any:
    """The model set by :func:`set_default_model` (None: the bundled model named in the file)."""
    return _default_model


def _accept(prefix: bytes) -> bool:
    return prefix[: len(container.MAGIC)] == container.MAGIC


class TcmImageFile(ImageFile.ImageFile):
    """A ``.tcm`` file opened through Pillow."""

    format = FORMAT
    format_description = "TCM learned image codec"

    def _open(self) -> None:
        from tcmcodec.codec import read_stream

        data = self.fp.read()
        self._stream = read_stream(data)
        self._size = (self._stream.width, self._stream.height)
        self._mode = self._stream.mode
        self.info["model"] = self._stream.model_name
        self.info["quality"] = self._stream.quality
        self.tile = []

    def load(self):  # type: ignore[override]
        if self._stream is not None and not self._decoded:
            from tcmcodec.codec import decode_stream

            decoded = decode_stream(self._stream, self.info.get("tcm_model", _default_model))
            decoded.load()
            self.im = decoded.im
            self._mode = decoded.mode
            self._size = decoded.size
            self._decoded = True
            self.readonly = 0
            # the whole file was read in _open: release it as Pillow's own loaders do
            if self._exclusive_fp and self._close_exclusive_fp_after_loading and self.fp:
                self.fp.close()
            self.fp = None
        return Image.Image.load(self)

    _decoded = False
    _stream: container.TcmStream | None = None


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from tcmcodec.codec import encode_image
    from tcmcodec.errors import TcmError
    from tcmcodec.ratecontrol import Target, encode_to_target

    info = im.encoderinfo
    target = info.get("target")
    if target is None:
        result = encode_image(im, info.get("model"), info.get("quality"))
    elif not isinstance(target, Target):
        raise TcmError(f"target must be a tcmcodec.Target (e.g. Target(max_bytes=20_000)), got {target!r}")
    elif info.get("quality") is not None:
        raise TcmError("give either quality or target when saving a .tcm file, not both")
    else:
        result = encode_to_target(im, target, info.get("model"))
        if result.shortfall:
            warnings.warn(result.shortfall, stacklevel=3)
    for note in result.warnings:
        warnings.warn(note, stacklevel=3)
    fp.write(result.data)


Image.register_open(FORMAT, TcmImageFile, _accept)
Image.register_save(FORMAT, _save)
Image.register_extension(FORMAT, ".tcm")
Image.register_mime(FORMAT, "image/x-tcm")
