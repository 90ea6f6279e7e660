"""``tcm serve``: the local comparison page (:mod:`tcmcodec.serve`)."""

from __future__ import annotations

import argparse
import socket
import webbrowser

from tcmcodec.cli._common import apply_threads
from tcmcodec.errors import TcmError

HELP = "start a local web page that compares TCM with JPEG, WebP and AVIF at equal size"
DEFAULT_PORT = 8000


def add_arguments(p: argparse.ArgumentParser) -> None:
    from tcmcodec.serve import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD

    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    p.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, metavar="N",
                   help=f"largest image coded (default {DEFAULT_MAX_PIXELS:,} pixels)")
    p.add_argument("--max-upload-mb", type=int, default=DEFAULT_MAX_UPLOAD // 2**20, metavar="MB",
                   help=f"largest upload (default {DEFAULT_MAX_UPLOAD // 2**20} MB)")
    p.add_argument("--threads", type=int, metavar="N", help="torch CPU threads (default: all cores)")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from tcmcodec.serve.app import create_app

    if not 0 < args.port < 65536:
        raise TcmError(f"--port must be between 1 and 65535, got {args.port}")
    if args.max_pixels < 1 or args.max_upload_mb < 1:
        raise TcmError("--max-pixels and --max-upload-mb must be positive")
    apply_threads(args)
    _check_free(args.host, args.port)
    app = create_app(max_upload=args.max_upload_mb * 2**20, max_pixels=args.max_pixels)
    url = f"http://{'localhost' if args.host in ('127.0.0.1', '::1') else args.host}:{args.port}/"
    print(f"tcm serve: {url} (Ctrl-C stops)", flush=True)
    if args.open:
        webbrowser.open(url)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _check_free(host: str, port: int) -> None:
    """Refuse, in one line, an address that cannot be listened on (taken, not ours)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as exc:
        raise TcmError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port") from None
