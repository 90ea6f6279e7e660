"""Exceptions raised by tcmcodec.

Every error a user can cause (a bad file, a missing model, an image that is too
large) derives from :class:`TcmError`; the CLI turns these into one line on
stderr and exit status 1, never a traceback.
"""

from __future__ import annotations


class TcmError(Exception):
    """Base class of the errors a user can cause; the message says what to do."""


class FormatError(TcmError, ValueError):
    """A ``.tcm`` stream is truncated, corrupted, or not a ``.tcm`` stream at all."""


class ModelMismatchError(TcmError):
    """A stream was encoded with a model other than the one offered to decode it."""


class ModelNotFoundError(TcmError, KeyError):
    """A model name is not in the registry, or a checkpoint cannot be read."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class ImageError(TcmError):
    """An input image cannot be read, or exceeds the pixel limit."""
