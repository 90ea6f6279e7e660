"""Process-level settings of the machine: glibc's allocator for coding, and whether the
hardware computes bfloat16 natively (:func:`native_bfloat16`).

PyTorch allocates every feature map with ``malloc``. glibc serves blocks above its mmap
threshold (at most 32 MB) with fresh ``mmap`` calls and hands them back on free, and it
trims the top of its heap as soon as 128 KB there are free; either way the next feature
map of that size is first-touched page by page (page faults + zeroing). At 768x512, tcm-s
maps of 128 x 256 x 384 floats are 50 MB, so each was mapped, faulted in and unmapped again.

:func:`tune_allocator` picks one of two settings by image size:

* :func:`reuse_freed_memory` (up to ``REUSE_MAX_PIXELS``, 4K included): no mmap for large
  blocks and a 128 MB trim threshold, so freed feature maps are reused. Measured (tcm-s,
  768x512, one thread): encode 4.0 -> 3.3 s, decode 4.5 -> 3.7 s, peak +200 MB.
* :func:`limit_heap_growth` (larger images): a small fixed mmap threshold, so large maps
  go back to the system when freed; slower (page faults) but the smallest peak.

Tiled images (:mod:`tcmcodec.tiling`) also call :func:`release_free_memory` after every
tile: within a tile freed maps are reused, between tiles the free heap goes back to the
system, so the heap does not grow with the number of tiles. Measured (one thread, training
on the other core), reuse + release against the mmap setting:

* tcm-s 1920x1080: 37 / 42 s, 2394 MB against 60 / 65 s, 1641 MB (reuse without the
  release: 31 / 37 s but 3346 MB)
* tcm-s 3840x2160: 157 / 183 s, 2585 MB against 214 / 271 s, 1994 MB (512-pixel tiles,
  older, slower blocks); with two threads, the current blocks and 768-pixel tiles
  45 / 48 s, 2468 MB encoding and 2740 MB decoding (separate processes)
* bundled model 7680x4320: 101 / 99 s, 4025 MB against 151 / 175 s, 3140 MB (whole-image
  temporaries pile up in the heap), hence the size limit.

Set ``TCMCODEC_TUNE_MALLOC=0`` to leave the process's allocator alone (for example when
the codec runs inside a long-lived service that tunes glibc itself).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

import torch

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
#: images (padded) of at most this many pixels reuse freed memory
REUSE_MAX_PIXELS = 16 * 2**20


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


def _tunable_libc() -> ctypes.CDLL | None:
    """glibc, unless tuning is switched off (``TCMCODEC_TUNE_MALLOC=0``) or absent."""
    if os.environ.get(ENV_SWITCH, "1") == "0":
        return None
    return _libc()


def _mallopt(*settings: tuple[int, int]) -> bool:
    libc = _tunable_libc()
    return libc is not None and all(libc.mallopt(param, value) == 1 for param, value in settings)


def reuse_freed_memory() -> bool:
    """Serve large blocks from the heap and keep up to 128 MB of it free for reuse."""
    return _mallopt((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, REUSE_TRIM_THRESHOLD_BYTES))


def limit_heap_growth() -> bool:
    """Map large blocks (fixed 256 KB threshold) and trim the heap early."""
    return _mallopt((_M_MMAP_MAX, DEFAULT_MMAP_MAX), (_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
                    (_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))


def tune_allocator(pixels: int) -> bool:
    """The setting for coding an image of ``pixels`` (padded) pixels."""
    return reuse_freed_memory() if pixels <= REUSE_MAX_PIXELS else limit_heap_growth()


def release_free_memory() -> bool:
    """Give the free parts of the heap back to the system (``malloc_trim``)."""
    libc = _tunable_libc()
    return libc is not None and libc.malloc_trim(0) == 1


#: CPU flags (Linux /proc/cpuinfo) of native bfloat16 arithmetic
NATIVE_BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def _cpu_flags() -> frozenset[str] | None:
    """The CPU's feature flags from /proc/cpuinfo, read once; None where there is none."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return None


#: parts of the ONEDNN_MAX_CPU_ISA values that allow oneDNN's bfloat16 instructions
_BF16_ISA_MARKS = ("BF16", "AMX", "FP16", "AVX10")


def _onednn_may_use_bfloat16(max_isa: str) -> bool:
    """Whether a ``ONEDNN_MAX_CPU_ISA`` setting leaves oneDNN its bfloat16 instructions
    (unset, ``ALL``/``DEFAULT``, or an ISA at or above AVX512_CORE_BF16)."""
    value = max_isa.strip().upper()
    return value in ("", "ALL", "DEFAULT") or any(mark in value for mark in _BF16_ISA_MARKS)


def native_bfloat16(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 in hardware: a CUDA GPU that supports it, or a CPU
    with AVX512-BF16 or AMX that ``ONEDNN_MAX_CPU_ISA`` does not rule out (elsewhere bfloat16
    is emulated and slower than float32). Without
    /proc/cpuinfo, oneDNN's own answer."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type != "cpu":
        return False
    if not _onednn_may_use_bfloat16(os.environ.get("ONEDNN_MAX_CPU_ISA", "")):
        return False
    flags = _cpu_flags()
    if flags is not None:
        return bool(NATIVE_BF16_CPU_FLAGS & flags)
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # an older or different build: no way to tell
        return False

