"""CUDA ops, one module per operation, and all of them here, as the executor's `dev.k` (Numba's
CUDA target, the numba-cuda package).

The ops: a module with the name of a CPU op module (netcli/ops/cpu/) holds the same functions
with the same parameters and meaning, over device arrays, so a layer's device methods mirror its
CPU ones: conv2d (conv2d_workspace/_forward/_backward), inner_product, pool (maxpool_*,
avepool_*), softmax (softmax_loss_*: ignore_label too), dropout (the CPU's random stream), im2col.
Where a parameter means nothing on the device (a CPU layout flag, a CPU scratch array), it is
accepted and ignored. Device-only additions in those modules are few and named
(tests/ops/test_op_parity.py lists them): a fused ReLU (`*_forward_relu`, the CPU signature plus
`slope`), the layout moves the convolution uses, softmax alone, and softmax_loss_results.

The device's own helpers, with no CPU counterpart: launch (grids, the launch counter, an
elementwise kernel's launch: the update rules'), gemm (every GEMM of the GPU path goes through
this one function, so a library GEMM can replace it), reductions (sums in a fixed order, fill,
the sum of squares), activations (ReLU, TanH, Sigmoid).

Each helper picks the grid and launches through `_launch`, which counts launches (`launches`:
netcli time --gpu reports them per layer). Arrays may be host arrays (the simulator and tests
copy them) or device arrays. Sums run in a fixed order (no atomics), so a run repeats exactly.
These run on a GPU, or anywhere under the CUDA simulator (NUMBA_ENABLE_CUDASIM=1), which the
tests use.
"""
from __future__ import annotations

from . import launch as _counter
from .launch import cuda, TILE, THREADS, SUMSQ_BLOCKS, TINY, _blocks, _none, _launch, elementwise  # noqa: F401
from .gemm import GEMM, gemm  # noqa: F401
from .im2col import im2col, col2im, bias_act, cols_to_nchw, nchw_to_cols  # noqa: F401
from .conv2d import conv2d_workspace, conv2d_forward, conv2d_forward_relu, conv2d_backward  # noqa: F401
from .inner_product import inner_product_forward, inner_product_forward_relu, inner_product_backward  # noqa: F401
from .dropout import dropout_forward, dropout_backward  # noqa: F401
from .reductions import sum_rows, sum_bias, fill, sumsq  # noqa: F401
from .activations import (  # noqa: F401
    relu_forward, relu_backward, TANH, SIGMOID, squash_forward, squash_backward)
from .pool import maxpool_forward, maxpool_backward, avepool_forward, avepool_backward  # noqa: F401
from .softmax import (  # noqa: F401
    softmax_forward, softmax_backward, softmax_loss_forward, softmax_loss_results, softmax_loss_backward)


def __getattr__(name):
    """`launches`, the count kept by launch.py (read live: it changes with every launch)."""
    if name == "launches":
        return _counter.launches
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
