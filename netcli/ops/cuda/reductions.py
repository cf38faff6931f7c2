"""Sums in a fixed order (no atomics, so a run repeats exactly): of rows and of a bias's columns
(bias gradients), the sum of squares (gradient clipping), and fill."""
from __future__ import annotations

from .launch import _blocks, _launch, cuda, THREADS
from numba import float32  # after .launch, which checks the extra


@cuda.jit(device=True)
def _block_sum(part, acc):
    """The sum of every thread's `acc` in the block, by a fixed tree in `part` (a shared array
    of THREADS): the same order on every run."""
    t = cuda.threadIdx.x
    part[t] = acc
    cuda.syncthreads()
    step = THREADS // 2
    while step > 0:
        if t < step:
            part[t] += part[t + step]
        cuda.syncthreads()
        step //= 2
    return part[0]


@cuda.jit
def _sum_rows(a, out, cols):
    """out[r] += sum of row r of a: one block per row, a fixed tree (deterministic)."""
    part = cuda.shared.array(THREADS, dtype=float32)
    r, t = cuda.blockIdx.x, cuda.threadIdx.x
    acc = float32(0.0)
    for c in range(t, cols, THREADS):
        acc += a[r, c]
    total = _block_sum(part, acc)
    if t == 0:
        out[r] += total


def sum_rows(a, out):
    """out (R,) += the row sums of a (R, C): the convolution's bias gradient from nchw_to_cols."""
    _launch(_sum_rows, a.shape[0], THREADS, a, out, a.shape[1])


@cuda.jit
def _sum_bias(dy, dbias, N, K, P):
    """dbias[k] += sum over n, p of dy[n, k, p]: one thread per k, a fixed order."""
    k = cuda.grid(1)
    if k < K:
        acc = float32(0.0)
        for n in range(N):
            for p in range(P):
                acc += dy[(n * K + k) * P + p]
        dbias[k] += acc


def sum_bias(dy, dbias):
    """dbias[k] += the sum of dy[:, k, ...] (the inner product's bias gradient: few rows)."""
    N, K = dy.shape[0], dy.shape[1]
    P = dy.size // (N * K)
    _launch(_sum_bias, _blocks(K), THREADS, dy.reshape(dy.size), dbias, N, K, P)


@cuda.jit
def _fill(a, v, n):
    t = cuda.grid(1)
    if t < n:
        a[t] = v


def fill(a, v=0.0):
    """a (1-D) = v."""
    _launch(_fill, _blocks(a.size), THREADS, a, v, a.size)


@cuda.jit
def _sumsq_parts(g, parts, n):
    """parts[b] = the sum of g[i]^2 over block b's fixed stride of indices, by a fixed tree."""
    part = cuda.shared.array(THREADS, dtype=float32)
    b, t = cuda.blockIdx.x, cuda.threadIdx.x
    acc = float32(0.0)
    for i in range(b * THREADS + t, n, cuda.gridDim.x * THREADS):
        acc += g[i] * g[i]
    total = _block_sum(part, acc)
    if t == 0:
        parts[b] = total


def sumsq(g, parts):
    """The sum of squares of g (1-D): one partial sum per element of `parts` (a device array;
    SUMSQ_BLOCKS of them on the GPU path), read back and summed in float64 (gradient clipping)."""
    _launch(_sumsq_parts, parts.size, THREADS, g, parts, g.size)
    return float(parts.copy_to_host().astype("float64").sum())
