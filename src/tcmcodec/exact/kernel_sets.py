"""CPU kernel sets, for checking that files decode on other kinds of computer.

PyTorch (ATen), oneDNN and MKL each pick vector kernels for the CPU they run on. Their
environment variables restrict them to an older instruction set, so one machine can stand
in for several kinds of computer: an AVX-512 Xeon for an AVX2 laptop or a baseline x86-64.
The variables must be set before the process imports torch, so checks run subprocesses
with :func:`environment`.

``python -m tcmcodec.exact.kernel_sets`` prints the sets this machine can emulate.
"""

from __future__ import annotations

import os
import subprocess
import sys

#: name -> (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, MKL_ENABLE_INSTRUCTIONS); "native" sets
#: nothing (the machine's own kernels, AMX included where present)
KERNEL_SETS: dict[str, tuple[str, str, str] | None] = {
    "native": None,
    "avx512": ("avx512", "AVX512_CORE", "AVX512"),
    "avx2": ("avx2", "AVX2", "AVX2"),
    "default": ("default", "SSE41", "SSE4_2"),
}
_VARIABLES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


def environment(kernel_set: str, threads: int | None = None, base: dict[str, str] | None = None) -> dict[str, str]:
    """A process environment restricted to ``kernel_set`` (and ``threads`` OpenMP threads)."""
    if kernel_set not in KERNEL_SETS:
        raise ValueError(f"unknown kernel set {kernel_set!r}; known: {', '.join(KERNEL_SETS)}")
    env = dict(os.environ if base is None else base)
    for name in _VARIABLES:
        env.pop(name, None)
    values = KERNEL_SETS[kernel_set]
    if values is not None:
        env.update(zip(_VARIABLES, values))
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def capability(kernel_set: str, python: str = sys.executable) -> str:
    """The ATen capability a process restricted to ``kernel_set`` actually gets (a set the
    CPU lacks falls back to a lower one)."""
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    out = subprocess.run([python, "-c", code], env=environment(kernel_set), capture_output=True, text=True, check=True)
    return out.stdout.strip().lower()


def available(python: str = sys.executable) -> list[str]:
    """The kernel sets this machine can run, one per distinct ATen capability ("native"
    first, then the restricted sets it does not already cover)."""
    seen: dict[str, str] = {}
    for name in KERNEL_SETS:
        got = capability(name, python)
        if name == "native" or (got == name and got not in seen.values()):
            seen[name] = got
    return list(seen)


if __name__ == "__main__":
    for name in available():
        print(name, capability(name))
