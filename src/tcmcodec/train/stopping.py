"""Ending a training run cleanly on SIGTERM or SIGINT (``kill``, a scheduler's pre-emption,
Ctrl-C): the current step finishes and a checkpoint is saved."""

from __future__ import annotations

import signal
import threading
from typing import Any

#: signals that end a training run cleanly
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Catches :data:`STOP_SIGNALS` while installed: :attr:`received` is the signal number
    once one arrived. Only the main thread can install handlers (elsewhere: nothing);
    signals the process ignores (e.g. SIGINT of a background job) stay ignored."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._kept: dict[int, Any] = {}

    def install(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:
                    self._kept[signum] = signal.signal(signum, self._request_stop)
        return self

    def restore(self) -> None:
        """Put back the handlers the signals had."""
        for signum, handler in self._kept.items():
            signal.signal(signum, handler)
        self._kept = {}

    def _request_stop(self, signum: int, frame: Any) -> None:
        self.received = signum
