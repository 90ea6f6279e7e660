"""Two independent branches of the entropy model (the mean and scale transforms) on two
cores, with the same bits as one after the other."""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, TypeVar

import torch

from tcmcodec.exact.mode import ExactArithmetic, exact_arithmetic_active

A = TypeVar("A")
B = TypeVar("B")
_branch_pool: ThreadPoolExecutor | None = None
_branch_pool_lock = threading.Lock()


def _single_threaded(fn: Callable[[], B], inference: bool, exact: bool) -> B:
    torch.set_num_threads(1)  # this worker's own OpenMP setting
    # grad and inference modes and torch function modes are thread-local: carry the caller's over
    numerics = ExactArithmetic(switch_cudnn=False) if exact else contextlib.nullcontext()
    with torch.inference_mode(inference), torch.no_grad(), numerics:
        return fn()


def run_branches(first: Callable[[], A], second: Callable[[], B], parallel: bool) -> tuple[A, B]:
    """Evaluate two independent branches, on two cores when ``parallel``.

    Each branch runs with one intra-op thread (the caller is inside
    ``latent_coder.fixed_threads(1)``), so the results are bit-identical to running them
    one after the other, whatever the machine's thread count; only the wall time drops.
    A caller inside :class:`ExactArithmetic` gets the second branch computed under it too.
    """
    if not parallel or torch.is_grad_enabled():
        return first(), second()
    global _branch_pool
    with _branch_pool_lock:
        if _branch_pool is None:
            _branch_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tcm-branch")
    future = _branch_pool.submit(_single_threaded, second, torch.is_inference_mode_enabled(),
                                 exact_arithmetic_active())
    a = first()
    return a, future.result()
