"""tcmcodec: the TCM learned image codec (Liu, Sun, Katto, CVPR 2023) as usable software."""

from tcmcodec.errors import FormatError, ImageError, ModelMismatchError, ModelNotFoundError, TcmError

__all__ = ["FormatError", "ImageError", "ModelMismatchError", "ModelNotFoundError", "TcmError"]
__version__ = "0.1.0"
