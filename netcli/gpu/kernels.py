"""CUDA kernels (Numba's CUDA target, the numba-cuda package) for LeNet's operations, forward
and backward side by side, with the same layouts and arithmetic as the CPU kernels in
netcli/kernels/ they stand in for:

- gemm: C = alpha * op(A) @ op(B) + beta * C, 16x16 tiles in shared memory. Every GEMM of the
  GPU path goes through this one function, so a library GEMM (cuBLAS) can replace it.
- im2col / col2im: the column layout of netcli/kernels/conv.py (row (c, i, j), column (n, oh, ow)).
- bias add and sum, ReLU, max pooling with its mask, softmax with loss, the SGD update.

Launch helpers (`*_launch`) pick the grid. Arrays may be host arrays (the simulator and tests
copy them) or device arrays. These run on a GPU, or anywhere under the CUDA simulator
(NUMBA_ENABLE_CUDASIM=1), which the tests use; the net does not call them yet (issue 16).
"""
from __future__ import annotations

import math

from .device import cuda_module

cuda = cuda_module()
from numba import float32  # noqa: E402  (after the check that the extra is there)

TILE = 16
THREADS = 128
TINY = 1.1754943508222875e-38          # as netcli/kernels/softmax.py: log(0) clamped here


def _blocks(n, threads=THREADS):
    return max(1, (n + threads - 1) // threads)


@cuda.jit(device=True)
def _nchw(t, C, H, W):
    """The (n, c, h, w) of flat index t in an (N, C, H, W) array."""
    return t // (W * H * C), (t // (W * H)) % C, (t // W) % H, t % W


# -- GEMM ---------------------------------------------------------------------------------------
@cuda.jit
def _gemm(A, B, C, M, N, K, ta, tb, alpha, beta):
    """C[M, N] = alpha * op(A)[M, K] @ op(B)[K, N] + beta * C; op transposes when ta/tb is 1."""
    sa = cuda.shared.array((TILE, TILE), dtype=float32)
    sb = cuda.shared.array((TILE, TILE), dtype=float32)
    tx, ty = cuda.threadIdx.x, cuda.threadIdx.y
    row = cuda.blockIdx.y * TILE + ty
    col = cuda.blockIdx.x * TILE + tx
    acc = 0.0
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


def gemm(A, B, C, ta=False, tb=False, alpha=1.0, beta=0.0):
    """C = alpha * op(A) @ op(B) + beta * C (2-D float32 arrays)."""
    M, N = C.shape
    K = A.shape[0] if ta else A.shape[1]
    grid = ((N + TILE - 1) // TILE, (M + TILE - 1) // TILE)
    _gemm[grid, (TILE, TILE)](A, B, C, M, N, K, int(ta), int(tb), alpha, beta)


# -- patches ------------------------------------------------------------------------------------
@cuda.jit
def _im2col(x, cols, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW, total):
    """cols[(c*KH + i)*KW + j, (n*OH + oh)*OW + ow] = x[n, c, oh*SH - PH + i, ow*SW - PW + j] (0 outside)."""
    t = cuda.grid(1)
    if t >= total:
        return
    P = OH * OW
    NP = total // (C * KH * KW)
    r, q = t // NP, t % NP
    n, p = q // P, q % P
    oh, ow = p // OW, p % OW
    c, ij = r // (KH * KW), r % (KH * KW)
    i, j = ij // KW, ij % KW
    h, w = oh * SH - PH + i, ow * SW - PW + j
    cols[r, q] = x[n, c, h, w] if 0 <= h < H and 0 <= w < W else 0.0


def im2col(x, cols, KH, KW, SH, SW, PH, PW, OH, OW):
    N, C, H, W = x.shape
    total = C * KH * KW * N * OH * OW
    _im2col[_blocks(total), THREADS](x, cols, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW, total)


@cuda.jit
def _col2im(cols, dx, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW, N):
    """The adjoint of im2col, one thread per input element (a gather: no atomics, a fixed sum order)."""
    t = cuda.grid(1)
    if t >= N * C * H * W:
        return
    n, c, h, w = _nchw(t, C, H, W)
    acc = 0.0
    for i in range(KH):
        hh = h + PH - i
        if hh < 0 or hh % SH != 0:
            continue
        oh = hh // SH
        if oh >= OH:
            continue
        for j in range(KW):
            ww = w + PW - j
            if ww < 0 or ww % SW != 0:
                continue
            ow = ww // SW
            if ow >= OW:
                continue
            acc += cols[(c * KH + i) * KW + j, (n * OH + oh) * OW + ow]
    dx[n, c, h, w] = acc


def col2im(cols, dx, KH, KW, SH, SW, PH, PW, OH, OW):
    N, C, H, W = dx.shape
    _col2im[_blocks(N * C * H * W), THREADS](cols, dx, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW, N)


# -- bias ---------------------------------------------------------------------------------------
@cuda.jit
def _add_bias(y, bias, K, P, total):
    """y[n, k, p] += bias[k], y flattened (N*K*P,)."""
    t = cuda.grid(1)
    if t < total:
        y[t] += bias[(t // P) % K]


def add_bias(y, bias):
    """y (N, K, ...) += bias[k]."""
    N, K = y.shape[0], y.shape[1]
    P = y.size // (N * K)
    flat = y.reshape(y.size)
    _add_bias[_blocks(y.size), THREADS](flat, bias, K, P, y.size)


@cuda.jit
def _sum_bias(dy, dbias, N, K, P):
    """dbias[k] += sum over n, p of dy[n, k, p]: one thread per k, a fixed order."""
    k = cuda.grid(1)
    if k < K:
        acc = 0.0
        for n in range(N):
            for p in range(P):
                acc += dy[(n * K + k) * P + p]
        dbias[k] += acc


def sum_bias(dy, dbias):
    N, K = dy.shape[0], dy.shape[1]
    P = dy.size // (N * K)
    _sum_bias[_blocks(K), THREADS](dy.reshape(dy.size), dbias, N, K, P)


# -- ReLU ---------------------------------------------------------------------------------------
@cuda.jit
def _relu_forward(x, y, slope, n):
    t = cuda.grid(1)
    if t < n:
        v = x[t]
        y[t] = v if v > 0 else v * slope


@cuda.jit
def _relu_backward(x, dy, dx, slope, n):
    """dx = dy where x > 0, slope * dy elsewhere (x: the input, or the output in place: same sign)."""
    t = cuda.grid(1)
    if t < n:
        dx[t] = dy[t] if x[t] > 0 else dy[t] * slope


def relu_forward(x, y, slope=0.0):
    _relu_forward[_blocks(x.size), THREADS](x.reshape(x.size), y.reshape(y.size), slope, x.size)


def relu_backward(x, dy, dx, slope=0.0):
    _relu_backward[_blocks(x.size), THREADS](x.reshape(x.size), dy.reshape(dy.size), dx.reshape(dx.size),
                                             slope, x.size)


# -- max pooling --------------------------------------------------------------------------------
@cuda.jit
def _maxpool_forward(x, y, mask, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, total):
    """One thread per output: the max over its window clipped to the image, and the flat index
    (h * W + w) of its first occurrence, as netcli/kernels/pool.py."""
    t = cuda.grid(1)
    if t >= total:
        return
    n, c, oh, ow = _nchw(t, C, OH, OW)
    hs, ws = oh * SH - PH, ow * SW - PW
    best = -3.4028234663852886e38
    arg = -1
    for h in range(max(hs, 0), min(hs + KH, H)):
        for w in range(max(ws, 0), min(ws + KW, W)):
            v = x[n, c, h, w]
            if v > best:
                best = v
                arg = h * W + w
    y[n, c, oh, ow] = best
    mask[n, c, oh, ow] = arg


def maxpool_forward(x, y, mask, KH, KW, SH, SW, PH, PW):
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    total = N * C * OH * OW
    _maxpool_forward[_blocks(total), THREADS](x, y, mask, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, total)


@cuda.jit
def _maxpool_backward(dy, mask, dx, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, total):
    """One thread per input: the sum of the gradients of the outputs whose window it won (a
    gather over the windows that contain it: no atomics, a fixed order)."""
    t = cuda.grid(1)
    if t >= total:
        return
    n, c, h, w = _nchw(t, C, H, W)
    me = h * W + w
    acc = 0.0
    oh_lo = max(0, (h + PH - KH) // SH + 1)        # the windows [oh*SH - PH, +KH) that hold h
    ow_lo = max(0, (w + PW - KW) // SW + 1)
    for oh in range(oh_lo, min(OH, (h + PH) // SH + 1)):
        for ow in range(ow_lo, min(OW, (w + PW) // SW + 1)):
            if mask[n, c, oh, ow] == me:
                acc += dy[n, c, oh, ow]
    dx[n, c, h, w] = acc


def maxpool_backward(dy, mask, dx, KH, KW, SH, SW, PH, PW):
    N, C, H, W = dx.shape
    OH, OW = dy.shape[2], dy.shape[3]
    total = N * C * H * W
    _maxpool_backward[_blocks(total), THREADS](dy, mask, dx, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, total)


# -- softmax with loss --------------------------------------------------------------------------
@cuda.jit
def _softmax_loss_forward(x, lab, prob, logp, N, C):
    """Per row (one thread each): prob = softmax(x[r]), logp[r] = log prob[r, label] (clamped)."""
    r = cuda.grid(1)
    if r >= N:
        return
    m = x[r, 0]
    for c in range(1, C):
        m = max(m, x[r, c])
    s = 0.0
    for c in range(C):
        e = math.exp(x[r, c] - m)
        prob[r, c] = e
        s += e
    inv = 1.0 / s
    for c in range(C):
        prob[r, c] *= inv
    logp[r] = math.log(max(prob[r, int(lab[r])], TINY))


def softmax_loss_forward(x, lab, prob, logp):
    """x, prob (N, C); lab (N,) class indices as floats (checked by the data layer); logp (N,).
    The loss is -sum(logp) / N (summed on the host in row order: the same sum as the CPU's)."""
    N, C = x.shape
    _softmax_loss_forward[_blocks(N), THREADS](x, lab, prob, logp, N, C)


@cuda.jit
def _softmax_loss_backward(prob, lab, dx, scale, N, C):
    t = cuda.grid(1)
    if t < N * C:
        r, c = t // C, t % C
        dx[r, c] = scale * (prob[r, c] - (1.0 if int(lab[r]) == c else 0.0))


def softmax_loss_backward(prob, lab, dx, scale):
    """dx = scale * (prob - one_hot(lab)); scale = loss_weight / N."""
    N, C = prob.shape
    _softmax_loss_backward[_blocks(N * C), THREADS](prob, lab, dx, scale, N, C)


# -- update -------------------------------------------------------------------------------------
@cuda.jit
def _sgd(w, g, h, lr, decay, rate, momentum, scale, n):
    """h = momentum*h + rate*lr*(scale*g + decay*w);  w -= h (as netcli/kernels/update.py, L2)."""
    i = cuda.grid(1)
    if i < n:
        gi = scale * g[i] + decay[i] * w[i]
        hi = momentum * h[i] + rate * lr[i] * gi
        h[i] = hi if abs(hi) >= TINY else 0.0
        wi = w[i] - hi
        w[i] = wi if abs(wi) >= TINY else 0.0


def sgd(w, g, h, lr, decay, rate, momentum, scale):
    _sgd[_blocks(w.size), THREADS](w, g, h, lr, decay, rate, momentum, scale, w.size)
