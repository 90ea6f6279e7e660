"""Exact arithmetic for the entropy-parameter networks: the same bits on every computer.

The decoder must derive each latent's mean and scale-table index bit for bit as the encoder
did, whatever CPU kernels (scalar, AVX2, AVX-512), thread count or GPU each side runs.
Float sums in another order and vectorised ``exp``/``erf`` give other last bits, and one
changed bit in a scale index desynchronises the range decoder (Ballé, Johnston, Minnen,
"Integer networks for data compression with latent-variable models", ICLR 2019).

:class:`ExactArithmetic` is a ``TorchFunctionMode``: unchanged model code runs inside it
(our layers and CompressAI's), and every torch call is routed by one rule:

* **Reductions** (convolution, linear, matrix product, layer norm, softmax) first round
  their operands to a *block floating-point* grid: each group of values that is summed
  together shares one power-of-two step, fine enough to keep ``bits`` bits below the group's
  largest magnitude (a convolution: per image; a linear layer or matrix product: per row
  and column). Products and sums of such values are integers times a power of two that
  float64 represents exactly while the partial sums stay below 2**53, so the sum is exact
  in any order, on any kernel, CPU or GPU (:mod:`tcmcodec.exact.reductions`).
* **Transcendental functions** (exp, tanh, sigmoid, GELU, softplus) use the float64
  implementations of :mod:`tcmcodec.exact.elementary`, built from correctly rounded ops.
* **Element-wise arithmetic** (``+ - * /``, comparisons, rounding, max/min) is correctly
  rounded by IEEE 754 and runs as it is, in float32 or float64. The square root is
  corrected to the correctly rounded one (PyTorch's vectorised float sqrt is SLEEF's,
  0.5001 ulp, and differs between kernel sets in the last bit).
* **Everything else** that is not plain data movement (reshape, indexing, concatenation)
  raises :class:`InexactOperation`: a new layer cannot silently bring a platform-dependent
  op into the exact path.

Precision: 20 bits per weight and 20-24 per activation, relative to their group's maximum,
is well above the float32 the networks were trained in, so no retraining is needed.
Cost: float64 matrix products instead of float32 ones, and the rounding passes.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode, resolve_name

from tcmcodec.exact import elementary
from tcmcodec.exact.reductions import (
    InexactOperation,
    activation_dtype,
    exact_addmm,
    exact_conv2d,
    exact_gelu,
    exact_layer_norm,
    exact_linear,
    exact_matmul,
    exact_pow,
    exact_softmax,
    exact_softplus,
)

__all__ = ["ExactArithmetic", "InexactOperation", "exact_arithmetic_active"]


def _without_alpha(func: Callable) -> Callable:
    """add/sub with ``alpha``: a vectorised kernel may fuse ``a + alpha * b`` into one rounding,
    so the product is taken first, on its own."""
    def call(x: Tensor, other: Any, *, alpha: Any = 1, **kwargs: Any) -> Tensor:
        if alpha != 1:
            other = other * alpha
        return func(x, other, **kwargs)
    return call


def _elementwise(fn: Callable[[Tensor], Tensor]) -> Callable:
    """An :mod:`elementary` function (float64) returning the input's activation type."""
    def call(x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        if args or kwargs:
            raise InexactOperation(f"{fn.__name__} with extra arguments has no exact form")
        return fn(x).to(activation_dtype(x))
    return call


def _reciprocal_sqrt(x: Tensor) -> Tensor:
    return 1.0 / elementary.sqrt(x)


#: replacements, by the name torch.overrides.resolve_name gives the function
_HANDLERS: dict[str, Callable] = {
    "torch.nn.functional.conv2d": exact_conv2d,
    "torch.conv2d": exact_conv2d,
    "torch.nn.functional.linear": exact_linear,
    "torch.addmm": exact_addmm,
    "torch.matmul": exact_matmul,
    "torch.Tensor.matmul": exact_matmul,
    "torch.Tensor.__matmul__": exact_matmul,
    "torch.nn.functional.layer_norm": exact_layer_norm,
    "torch.softmax": exact_softmax,
    "torch.Tensor.softmax": exact_softmax,
    "torch.nn.functional.softmax": exact_softmax,
    "torch.nn.functional.gelu": exact_gelu,
    "torch.nn.functional.softplus": exact_softplus,
    "torch.Tensor.__pow__": exact_pow,
    "torch.pow": exact_pow,
    "torch.Tensor.pow": exact_pow,
    "torch.exp": _elementwise(elementary.exp),
    "torch.Tensor.exp": _elementwise(elementary.exp),
    "torch.sigmoid": _elementwise(elementary.sigmoid),
    "torch.Tensor.sigmoid": _elementwise(elementary.sigmoid),
    "torch.nn.functional.sigmoid": _elementwise(elementary.sigmoid),
    "torch.tanh": _elementwise(elementary.tanh),
    "torch.Tensor.tanh": _elementwise(elementary.tanh),
    "torch.nn.functional.tanh": _elementwise(elementary.tanh),
    "torch.sqrt": _elementwise(elementary.sqrt),
    "torch.Tensor.sqrt": _elementwise(elementary.sqrt),
    "torch.rsqrt": _elementwise(_reciprocal_sqrt),
    "torch.Tensor.rsqrt": _elementwise(_reciprocal_sqrt),
    "torch.add": _without_alpha(torch.add),
    "torch.Tensor.add": _without_alpha(torch.Tensor.add),
    "torch.Tensor.add_": _without_alpha(torch.Tensor.add_),
    "torch.sub": _without_alpha(torch.sub),
    "torch.Tensor.sub": _without_alpha(torch.Tensor.sub),
    "torch.Tensor.sub_": _without_alpha(torch.Tensor.sub_),
}

#: exact as they are: data movement, indexing, comparisons, and correctly rounded
#: element-wise arithmetic (names as torch.overrides.resolve_name gives them)
_SAFE_TENSOR_METHODS = """
__getitem__ __setitem__ __invert__ __ior__ __iand__ __or__ __and__ __rsub__ __radd__
__rmul__ __mul__ __add__ __sub__ __truediv__ __rtruediv__ __neg__ __abs__ __lt__ __le__
__gt__ __ge__ __eq__ __ne__ __len__ __bool__ __index__ __int__ __float__ __format__ __hash__
__repr__ __iter__ __imul__ __iadd__ __isub__ __itruediv__ __mod__ __floordiv__
abs abs_ neg any all clamp clamp_ clamp_min clamp_max clone contiguous copy_ detach
dim expand expand_as flatten floor floor_ ceil round index_select int long float double half
bool masked_fill masked_fill_ mul mul_ div div_ ne eq lt le gt ge nonzero numel permute
remainder repeat reshape reshape_as t tensor_split to tolist item transpose unbind view
view_as chunk split narrow squeeze unsqueeze size stride is_contiguous data_ptr new_zeros
new_full new_empty new_tensor zero_ fill_ amax amin max min maximum minimum sign
where unflatten movedim gather scatter_ index_copy_ type_as cpu cuda is_floating_point
element_size storage_offset untyped_storage requires_grad_ __array__ numpy logical_not nextafter
logical_and logical_or bitwise_left_shift frexp count_nonzero unique argsort flip roll
""".split()
_SAFE_TENSOR_PROPERTIES = "shape device dtype is_cuda ndim data grad requires_grad is_sparse layout T names".split()
_SAFE_FUNCTIONS = """
torch.arange torch.as_tensor torch.tensor torch.bucketize torch.searchsorted torch.cat
torch.concat torch.stack torch.empty torch.empty_like torch.zeros torch.zeros_like
torch.ones torch.ones_like torch.full torch.full_like torch.functional.split torch.split
torch.chunk torch.max torch.min torch.maximum torch.minimum torch.amax torch.amin torch.roll
torch.round torch.floor torch.ceil torch.clamp torch.where torch.abs torch.neg torch.mul
torch.div torch.frexp torch.sign torch.meshgrid torch.functional.meshgrid torch.nextafter
torch.nn.functional.leaky_relu torch.nn.functional.relu torch.relu torch.nn.functional.pad
torch.nn.functional.pixel_shuffle torch.pixel_shuffle torch.tensor_split torch.flatten
torch.reshape torch.permute torch.transpose torch.index_select torch.gather torch.narrow
torch.squeeze torch.unsqueeze torch.bitwise_left_shift torch.isfinite torch.isnan
torch.logical_not torch.logical_and torch.logical_or torch.eq torch.ne torch.lt torch.gt torch.from_numpy
torch.le torch.ge torch.nonzero torch.any torch.all torch.numel torch.clone torch.equal
""".split()
_SAFE = frozenset(
    [f"torch.Tensor.{m}" for m in _SAFE_TENSOR_METHODS]
    + [f"torch.Tensor.{p}.__get__" for p in _SAFE_TENSOR_PROPERTIES]
    + _SAFE_FUNCTIONS
)


_active = threading.local()


def exact_arithmetic_active() -> bool:
    """Whether the calling thread runs inside :class:`ExactArithmetic` (modes are per thread:
    a worker thread must enter its own)."""
    return getattr(_active, "depth", 0) > 0


class ExactArithmetic(TorchFunctionMode):
    """Run the enclosed torch code with platform-independent results (see the module doc).

    Inputs may be any float type; results of the routed ops are float64. On CUDA, cuDNN is
    switched off inside (its FFT/Winograd convolutions are not exact even on integers);
    the native CUDA convolution is a matrix product, exact like the CPU's. cuDNN's switch
    is process-wide: a worker thread inside the main thread's mode passes
    ``switch_cudnn=False``.
    """

    def __init__(self, switch_cudnn: bool = True) -> None:
        super().__init__()
        self._names: dict[Any, str] = {}
        self._cudnn: Any = torch.backends.cudnn.flags(enabled=False) if switch_cudnn else None

    def __enter__(self) -> "ExactArithmetic":
        if self._cudnn is not None:
            self._cudnn.__enter__()
        _active.depth = getattr(_active, "depth", 0) + 1
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)
        finally:
            _active.depth -= 1
            if self._cudnn is not None:
                self._cudnn.__exit__(*exc)

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = self._names.get(func)
        if name is None:
            name = self._names[func] = resolve_name(func) or repr(func)
        handler = _HANDLERS.get(name)
        if handler is not None:
            return handler(*args, **kwargs)
        if name in _SAFE:
            return func(*args, **kwargs)
        raise InexactOperation(f"{name} has no platform-independent implementation in the exact "
                               "entropy path (tcmcodec.exact.mode)")
