"""The ``tcm`` command line: one module per sub-command.

Each sub-command module defines ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``. :func:`main` dispatches and turns :class:`~tcmcodec.errors.TcmError`
(and other user errors such as a missing file) into one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from tcmcodec.errors import TcmError

#: sub-command name -> module (imported lazily so ``tcm --help`` is fast)
COMMANDS: dict[str, str] = {
    "encode": "tcmcodec.cli.encode",
    "decode": "tcmcodec.cli.decode",
    "info": "tcmcodec.cli.info",
    "models": "tcmcodec.cli.models",
    "train": "tcmcodec.cli.train",
    "export": "tcmcodec.cli.export",
    "widen": "tcmcodec.cli.widen",
    "eval": "tcmcodec.cli.eval",
    "compare": "tcmcodec.cli.compare",
    "demo": "tcmcodec.cli.demo",
    "serve": "tcmcodec.cli.serve",
}


class _ArgumentParser(argparse.ArgumentParser):
    """argparse that exits with status 1 (a user error) instead of 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(1)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``only``, just that sub-command is imported."""
    parser = _ArgumentParser(prog="tcm", description="TCM learned image codec.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_ArgumentParser)
    for name, module_name in COMMANDS.items():
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # sub-command not installed in this build
            raise
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


#: optional packages and the extra that installs each (``pip install 'tcmcodec[extra]'``)
OPTIONAL_PACKAGES = {
    "pytorch_msssim": "train", "matplotlib": "eval", "bjontegaard": "eval", "pillow_heif": "eval",
    "pillow_jxl": "eval", "compressai": "compressai", "uvicorn": "serve", "starlette": "serve",
    "multipart": "serve", "python_multipart": "serve",
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``tcm`` and ``python -m tcmcodec``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(only=first if first in COMMANDS else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 1
    try:
        return int(args._run(args) or 0)
    except TcmError as exc:
        print(f"tcm {args.command}: error: {exc.cli_message()}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        root = (exc.name or "").split(".")[0]
        if root not in OPTIONAL_PACKAGES:
            raise
        print(f"tcm {args.command}: error: this needs the optional package {root}: "
              f"pip install 'tcmcodec[{OPTIONAL_PACKAGES[root]}]'", file=sys.stderr)
        return 1
    except FileNotFoundError as exc:
        detail = f"no such file: {exc.filename}" if exc.filename is not None else str(exc)
        print(f"tcm {args.command}: error: {detail}", file=sys.stderr)
        return 1
    except IsADirectoryError as exc:
        print(f"tcm {args.command}: error: is a directory: {exc.filename}", file=sys.stderr)
        return 1
    except PermissionError as exc:
        print(f"tcm {args.command}: error: permission denied: {exc.filename}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `tcm models --json | head`
        sys.stderr.close()
        return 0
    except OSError as exc:  # disk full, read-only folder, name too long, ...
        where = f": {exc.filename}" if exc.filename else ""
        print(f"tcm {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"tcm {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
