"""GEMM: C = alpha * op(A) @ op(B) + beta * C, 16x16 tiles in shared memory (under the simulator
a one-thread-per-element kernel; both are tested). Every GEMM of the GPU path goes through `gemm`,
so a library GEMM (cuBLAS) can replace it."""
from __future__ import annotations

from ...gpu.device import simulated
from .launch import _blocks, _launch, cuda, THREADS, TILE
from numba import float32  # after .launch, which checks the extra


# -- GEMM ---------------------------------------------------------------------------------------
@cuda.jit
def _gemm(A, B, C, M, N, K, ta, tb, alpha, beta):
    """C[M, N] = alpha * op(A)[M, K] @ op(B)[K, N] + beta * C; op transposes when ta/tb is 1."""
    sa = cuda.shared.array((TILE, TILE), dtype=float32)
    sb = cuda.shared.array((TILE, TILE), dtype=float32)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    row = cuda.blockIdx.y * TILE + ty
    col = cuda.blockIdx.x * TILE + tx
    acc = float32(0.0)
    for t in range((K + TILE - 1) // TILE):
        k = t * TILE + tx
        if row < M and k < K:
            sa[ty, tx] = A[k, row] if ta else A[row, k]
        else:
            sa[ty, tx] = 0.0
        k = t * TILE + ty
        if k < K and col < N:
            sb[ty, tx] = B[col, k] if tb else B[k, col]
        else:
            sb[ty, tx] = 0.0
        cuda.syncthreads()
        for i in range(TILE):
            acc += sa[ty, i] * sb[i, tx]
        cuda.syncthreads()
    if row < M and col < N:
        C[row, col] = alpha * acc + (beta * C[row, col] if beta != 0.0 else 0.0)


@cuda.jit
def _gemm_simple(A, B, C, M, N, K, ta, tb, alpha, beta):
    """As _gemm, one thread per element of C and no shared memory: the simulator's GEMM, where
    each barrier of the tiled kernel costs milliseconds (never used on a GPU)."""
    t = cuda.grid(1)
    if t < M * N:
        row, col = t // N, t % N
        acc = float32(0.0)
        for k in range(K):
            acc += (A[k, row] if ta else A[row, k]) * (B[col, k] if tb else B[k, col])
        C[row, col] = alpha * acc + (beta * C[row, col] if beta != 0.0 else 0.0)


GEMM = "simple" if simulated() else "tiled"


def gemm(A, B, C, ta=False, tb=False, alpha=1.0, beta=0.0, kernel=None):
    """C = alpha * op(A) @ op(B) + beta * C (2-D float32 arrays). kernel: "tiled" (16x16 tiles
    in shared memory) or "simple"; default GEMM (tiled on a GPU)."""
    M, N = C.shape
    K = A.shape[0] if ta else A.shape[1]
    args = (A, B, C, M, N, K, int(ta), int(tb), float32(alpha), float32(beta))
    if (kernel or GEMM) == "tiled":
        _launch(_gemm, ((N + TILE - 1) // TILE, (M + TILE - 1) // TILE), (TILE, TILE), *args)
    else:
        _launch(_gemm_simple, _blocks(M * N), THREADS, *args)
