"""tcmcodec: the TCM learned image codec (Liu, Sun, Katto, CVPR 2023) as usable software.

Public API::

    import tcmcodec
    data = tcmcodec.encode("photo.png", quality=60)     # bytes of a .tcm file
    image = tcmcodec.decode(data)                        # PIL.Image, original size and mode
    model = tcmcodec.load_model("path/to/checkpoint.pth.tar")   # the authors' or ours
    result = tcmcodec.encode_to_target("photo.png", tcmcodec.Target(max_bytes=20_000))

Importing the package registers a Pillow plugin: ``Image.open("x.tcm")`` decodes and
``img.save("x.tcm", quality=60)`` encodes.
"""

import warnings as _warnings

# CompressAI decorates functions with torch.jit.script, which PyTorch >= 2.10 reports as
# deprecated on every import: not actionable for our users, so keep their stderr clean.
_warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*deprecated", category=FutureWarning)

from tcmcodec.errors import FormatError, ImageError, ModelMismatchError, ModelNotFoundError, TcmError

__version__ = "0.2.0"

from tcmcodec import pillow_plugin as _pillow_plugin  # noqa: E402,F401  (registers .tcm)

# torch-backed names load on first use, so that `import tcmcodec.container` (and the Pillow
# plugin's registration) stay light
_LAZY = {
    "decode": "tcmcodec.codec", "encode": "tcmcodec.codec", "encode_image": "tcmcodec.codec",
    "load_model": "tcmcodec.codec", "PRESETS": "tcmcodec.config", "TCMConfig": "tcmcodec.config",
    "TCM": "tcmcodec.model", "Target": "tcmcodec.ratecontrol", "encode_to_target": "tcmcodec.ratecontrol",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'tcmcodec' has no attribute {name!r}")

__all__ = [
    "FormatError", "ImageError", "ModelMismatchError", "ModelNotFoundError", "PRESETS", "TCM",
    "TCMConfig", "Target", "TcmError", "decode", "encode", "encode_image", "encode_to_target", "load_model",
]
