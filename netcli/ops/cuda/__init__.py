"""CUDA kernels, one module per family (launch, gemm, im2col, reductions, activations, pool,
softmax) and all of them here, as the executor's `dev.k`: CUDA kernels (Numba's CUDA target, the numba-cuda package) for LeNet's operations, forward
and backward side by side, with the same layouts and arithmetic as the CPU kernels in
netcli/ops/cpu/ they stand in for:

- gemm: C = alpha * op(A) @ op(B) + beta * C, 16x16 tiles in shared memory (under the
  simulator a one-thread-per-element kernel; both are tested). Every GEMM of the GPU path goes
  through this one function, so a library GEMM (cuBLAS) can replace it.
- im2col / col2im: the column layout of netcli/ops/cpu/im2col.py (row (c, i, j), column (n, oh, ow)).
- columns to NCHW with the bias and an optional ReLU fused (the convolution's output), NCHW to
  columns (its gradient), sums of rows and of columns (bias gradients), ReLU, TanH and Sigmoid,
  max pooling with its mask, average pooling, softmax, softmax with loss, fill, the sum of
  squares (gradient clipping), and the launch of an elementwise kernel (the update rules, which
  netcli/update_rules/ compiles for the CPU and for CUDA from one formula each).

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
from .reductions import sum_rows, sum_bias, fill, sumsq  # noqa: F401
from .activations import (  # noqa: F401
    relu_forward, relu_backward, TANH, SIGMOID, squash_forward, squash_backward)
from .pool import maxpool_forward, maxpool_backward, avepool_forward, avepool_backward  # noqa: F401
from .softmax import softmax_forward, softmax_backward, softmax_loss_forward, softmax_loss_backward  # noqa: F401


def __getattr__(name):
    """`launches`, the count kept by launch.py (read live: it changes with every launch)."""
    if name == "launches":
        return _counter.launches
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
