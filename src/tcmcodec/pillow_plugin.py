"""Pillow plugin for ``.tcm`` files, registered when :mod:`tcmcodec` is imported.

``Image.open("x.tcm")`` parses the header at once (size and mode are known without
decoding) and decodes on ``load()`` with the bundled model named in the file;
``img.save("x.tcm", quality=60, model=NAME_OR_MODEL)`` encodes.
"""

from __future__ import annotations

from typing import IO

from PIL import Image, ImageFile

from tcmcodec import container

FORMAT = "TCM"


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
        if self._stream is not None and (self.im is None or self._decoded is False):
            from tcmcodec.codec import decode_stream

            decoded = decode_stream(self._stream, self.info.get("tcm_model"))
            decoded.load()
            self.im = decoded.im
            self._mode = decoded.mode
            self._size = decoded.size
            self._decoded = True
        return Image.Image.load(self)

    _decoded = False
    _stream: container.TcmStream | None = None


def _save(im: Image.Image, fp: IO[bytes], filename: str | bytes) -> None:
    from tcmcodec.codec import encode_image

    info = im.encoderinfo
    result = encode_image(im, info.get("model"), info.get("quality"))
    fp.write(result.data)


Image.register_open(FORMAT, TcmImageFile, _accept)
Image.register_save(FORMAT, _save)
Image.register_extension(FORMAT, ".tcm")
Image.register_mime(FORMAT, "image/x-tcm")
