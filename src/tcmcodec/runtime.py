"""Process-level glibc allocator settings for coding, chosen by image size.

PyTorch allocates every feature map with ``malloc``. glibc serves blocks above its mmap
threshold (at most 32 MB) with fresh ``mmap`` calls and hands them back on free, and it
trims the top of its heap as soon as 128 KB there are free; either way the next feature
map of that size is first-touched page by page (page faults + zeroing). At 768x512, tcm-s
maps of 128 x 256 x 384 floats are 50 MB, so each was mapped, faulted in and unmapped again.

* :func:`reuse_freed_memory` (images coded in one pass): no mmap for large blocks and a
  128 MB trim threshold, so freed feature maps are reused. Measured (tcm-s, 768x512, one
  thread): encode 4.0 -> 3.3 s, decode 4.5 -> 3.7 s, peak resident memory +200 MB.
* :func:`limit_heap_growth` (images large enough to be tiled): a small fixed mmap
  threshold, so large maps go back to the system when freed and the heap cannot fragment;
  this cut the peak of a 4K encode by about 300 MB, at the price of the page faults.

Set ``TCMCODEC_TUNE_MALLOC=0`` to leave the process's allocator alone (for example when
the codec runs inside a long-lived service that tunes glibc itself).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

#: glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
#: glibc's default for M_MMAP_MAX (mmap allowed)
DEFAULT_MMAP_MAX = 65536
MMAP_THRESHOLD_BYTES = 256 * 1024
TRIM_THRESHOLD_BYTES = 1024 * 1024
#: free heap kept for reuse when large blocks are not mapped
REUSE_TRIM_THRESHOLD_BYTES = 128 * 1024 * 1024
ENV_SWITCH = "TCMCODEC_TUNE_MALLOC"


@functools.lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt  # noqa: B018 - not glibc (musl...) -> AttributeError
        return libc
    except (OSError, AttributeError):
        return None


def _mallopt(*settings: tuple[int, int]) -> bool:
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return False
    libc = _libc()
    if libc is None:
        return False
    return all(libc.mallopt(param, value) == 1 for param, value in settings)


def reuse_freed_memory() -> bool:
    """Serve large blocks from the heap and keep up to 128 MB of it free for reuse."""
    return _mallopt((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, REUSE_TRIM_THRESHOLD_BYTES))


def limit_heap_growth() -> bool:
    """Map large blocks (fixed 256 KB threshold) and trim the heap early."""
    return _mallopt((_M_MMAP_MAX, DEFAULT_MMAP_MAX), (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
                    (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def tune_allocator(tiled: bool) -> bool:
    """The setting for coding an image that is (or is not) processed in tiles."""
    return limit_heap_growth() if tiled else reuse_freed_memory()
