"""Launching kernels: the grid for n elements, the launch counter (netcli time --gpu), the
absent-array stand-in, and an elementwise kernel's launch (the update rules')."""
from __future__ import annotations

import functools

from ...gpu.device import cuda_module, simulated

cuda = cuda_module()

# Block shapes: on a GPU 16x16 GEMM tiles and 128 threads per 1-D block; under the simulator,
# which runs each CUDA thread as a Python thread, small ones (the same code, fewer idle threads).
TILE, THREADS, SUMSQ_BLOCKS = (8, 32, 2) if simulated() else (16, 128, 64)
TINY = 1.1754943508222875e-38          # as netcli/ops/cpu/softmax.py: log(0) clamped here
# Sums accumulate in float32, as the CPU's BLAS and kernels do (a float64 accumulator would run
# at the GPU's float64 rate).


launches = 0                           # kernel launches so far (netcli time --gpu counts per layer)


def _blocks(n, threads=THREADS):
    return max(1, (n + threads - 1) // threads)


@functools.cache
def _none():
    """A one-element device array passed where a kernel's optional array (a bias) is absent."""
    return cuda.device_array(1, "float32")


def _launch(kernel, grid, block, *args):
    global launches
    launches += 1
    kernel[grid, block](*args)


@cuda.jit(device=True)
def _nchw(t, C, H, W):
    """The (n, c, h, w) of flat index t in an (N, C, H, W) array."""
    return t // (W * H * C), (t // (W * H)) % C, (t // W) % H, t % W


def elementwise(kernel, n, *args):
    """`kernel` (one CUDA thread per element, e.g. an update rule's) over n elements."""
    _launch(kernel, _blocks(n), THREADS, *args)
