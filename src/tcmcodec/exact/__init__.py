"""Exact arithmetic for everything that chooses a probability (docs/numerics.md).

:mod:`~tcmcodec.exact.elementary`: exp, log, erfc, sqrt and the functions built on them,
from correctly rounded operations; :mod:`~tcmcodec.exact.reductions`: convolutions, matrix
products, layer norm and softmax with exact sums in block floating point;
:mod:`~tcmcodec.exact.mode`: the ``TorchFunctionMode`` that runs unchanged model code with
them; :mod:`~tcmcodec.exact.kernel_sets`: CPU kernel sets, to check it.
"""
