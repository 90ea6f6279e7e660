"""Process-level memory settings, applied only when coding large images.

:func:`limit_heap_growth` keeps glibc from holding on to freed feature maps. By default
glibc raises its mmap threshold up to 32 MB after large blocks are freed, so later
tensors come from a heap that fragments and never shrinks; with a fixed threshold, large
tensors are mapped and unmapped, which cut the peak resident memory of a 4K encode by about
300 MB in our measurements. It costs time (mapping and zeroing pages: a 768x512 encode +
decode took 1.4-1.5x longer), so the codec turns it on only for images large enough to be
tiled, and it then stays on for the rest of the process (docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

#: glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 256 * 1024
TRIM_THRESHOLD_BYTES = 1024 * 1024


def limit_heap_growth() -> bool:
    """Fix glibc's mmap and trim thresholds; returns False where that is not possible."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        ok &= libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES) == 1
        return bool(ok)
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
