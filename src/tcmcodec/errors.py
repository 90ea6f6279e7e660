"""Exceptions raised by tcmcodec.

Every error a user can cause (a bad file, a missing model, an image that is too
large) derives from :class:`TcmError`; the CLI turns these into one line on
stderr and exit status 1, never a traceback.
"""

from __future__ import annotations


class TcmError(Exception):
    """Base class of the errors a user can cause; the message says what to do.

    Advice that depends on how the library is used comes as two hints: ``python_hint``
    (part of ``str(error)``: what to pass to the function) and ``cli_hint`` (what the
    ``tcm`` command line shows instead, by :meth:`cli_message`: which option to give).
    """

    def __init__(self, message: str = "", *, python_hint: str | None = None, cli_hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.python_hint = python_hint
        self.cli_hint = cli_hint

    def __str__(self) -> str:
        return f"{self.message}; {self.python_hint}" if self.python_hint else self.message

    def cli_message(self) -> str:
        """The message as the command line shows it."""
        hint = self.cli_hint or self.python_hint
        return f"{self.message}; {hint}" if hint else self.message

    def __reduce__(self):  # pickled across processes (evaluation workers) with its hints
        return _rebuild, (type(self), self.message, self.python_hint, self.cli_hint)


def _rebuild(cls: type, message: str, python_hint: str | None, cli_hint: str | None) -> TcmError:
    return cls(message, python_hint=python_hint, cli_hint=cli_hint)


class FormatError(TcmError, ValueError):
    """A ``.tcm`` stream is truncated, corrupted, or not a ``.tcm`` stream at all."""


class ModelMismatchError(TcmError):
    """A stream was encoded with a model other than the one offered to decode it."""


class ModelNotFoundError(TcmError, KeyError):
    """A model name is not in the registry, or a checkpoint cannot be read."""

    __str__ = TcmError.__str__  # KeyError's would quote the message


class ImageError(TcmError):
    """An input image cannot be read, or exceeds the pixel limit."""
