"""tcmcodec: the TCM learned image codec (Liu, Sun, Katto, CVPR 2023) as usable software.

Public API::

    import tcmcodec
    data = tcmcodec.encode("photo.png", quality=60)     # bytes of a .tcm file
    image = tcmcodec.decode(data)                        # PIL.Image, original size and mode
    model = tcmcodec.load_model("path/to/checkpoint.pth.tar")   # the authors' or ours

Importing the package registers a Pillow plugin: ``Image.open("x.tcm")`` decodes and
``img.save("x.tcm", quality=60)`` encodes.
"""

import warnings as _warnings

# CompressAI decorates functions with torch.jit.script, which PyTorch >= 2.10 reports as
# deprecated on every import: not actionable for our users, so keep their stderr clean.
_warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)

from tcmcodec.errors import FormatError, ImageError, ModelMismatchError, ModelNotFoundError, TcmError

__version__ = "0.1.0"

from tcmcodec.codec import decode, encode, encode_image, load_model  # noqa: E402
from tcmcodec.config import PRESETS, TCMConfig  # noqa: E402
from tcmcodec.model import TCM  # noqa: E402
from tcmcodec import pillow_plugin as _pillow_plugin  # noqa: E402,F401  (registers .tcm)

__all__ = [
    "FormatError", "ImageError", "ModelMismatchError", "ModelNotFoundError", "PRESETS", "TCM",
    "TCMConfig", "TcmError", "decode", "encode", "encode_image", "load_model",
]
