"""CUDA kernels (Numba's CUDA target, the numba-cuda package) for LeNet's operations, forward
and backward side by side, with the same layouts and arithmetic as the CPU kernels in
netcli/kernels/ they stand in for:

- gemm: C = alpha * op(A) @ op(B) + beta * C, 16x16 tiles in shared memory (under the
  simulator a one-thread-per-element kernel; both are tested). Every GEMM of the GPU path goes
  through this one function, so a library GEMM (cuBLAS) can replace it.
- im2col / col2im: the column layout of netcli/kernels/im2col.py (row (c, i, j), column (n, oh, ow)).
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

import functools
import math

from .device import cuda_module, simulated

cuda = cuda_module()
from numba import float32  # noqa: E402  (after the check that the extra is there)

# Block shapes: on a GPU 16x16 GEMM tiles and 128 threads per 1-D block; under the simulator,
# which runs each CUDA thread as a Python thread, small ones (the same code, fewer idle threads).
TILE, THREADS, SUMSQ_BLOCKS = (8, 32, 2) if simulated() else (16, 128, 64)
TINY = 1.1754943508222875e-38          # as netcli/kernels/softmax.py: log(0) clamped here
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
    _launch(_im2col, _blocks(total), THREADS, x, cols, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW, total)


@cuda.jit
def _col2im(cols, dx, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW, N):
    """The adjoint of im2col, one thread per input element (a gather: no atomics, a fixed sum order)."""
    t = cuda.grid(1)
    if t >= N * C * H * W:
        return
    n, c, h, w = _nchw(t, C, H, W)
    acc = float32(0.0)
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
    _launch(_col2im, _blocks(N * C * H * W), THREADS, cols, dx, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW, N)


# -- bias, activation, layouts -------------------------------------------------------------------
@cuda.jit
def _bias_act(y, bias, K, P, total, has_bias, relu, slope):
    """y[n, k, p] (+= bias[k]), then ReLU with `slope` if relu; y flattened (N*K*P,)."""
    t = cuda.grid(1)
    if t < total:
        v = y[t] + bias[(t // P) % K] if has_bias else y[t]
        y[t] = v if not relu or v > 0 else v * slope


def bias_act(y, bias=None, relu=False, slope=0.0):
    """y (N, K, ...) += bias[k] (bias None: none), then ReLU (negative_slope `slope`) if relu."""
    N, K = y.shape[0], y.shape[1]
    P = y.size // (N * K)
    b = bias if bias is not None else _none()
    _launch(_bias_act, _blocks(y.size), THREADS, y.reshape(y.size), b, K, P, y.size, bias is not None, relu, slope)


@cuda.jit
def _cols_to_nchw(z, y, bias, K, P, total, has_bias, relu, slope):
    """y[n, k, p] = z[k, n*P + p] (+ bias[k]), then ReLU; y flattened (N*K*P,)."""
    t = cuda.grid(1)
    if t < total:
        p = t % P
        k = (t // P) % K
        n = t // (P * K)
        v = z[k, n * P + p] + bias[k] if has_bias else z[k, n * P + p]
        y[t] = v if not relu or v > 0 else v * slope


def cols_to_nchw(z, y, bias=None, relu=False, slope=0.0):
    """The convolution's GEMM result z (K, N*P) into y (N, K, ...) with the bias and ReLU fused."""
    N, K = y.shape[0], y.shape[1]
    P = y.size // (N * K)
    b = bias if bias is not None else _none()
    _launch(_cols_to_nchw, _blocks(y.size), THREADS, z, y.reshape(y.size), b, K, P, y.size,
            bias is not None, relu, slope)


@cuda.jit
def _nchw_to_cols(dy, z, K, P, total):
    t = cuda.grid(1)
    if t < total:
        p = t % P
        k = (t // P) % K
        n = t // (P * K)
        z[k, n * P + p] = dy[t]


def nchw_to_cols(dy, z):
    """z[k, n*P + p] = dy[n, k, p]: the output gradient in the GEMM's layout (K, N*P)."""
    N, K = dy.shape[0], dy.shape[1]
    P = dy.size // (N * K)
    _launch(_nchw_to_cols, _blocks(dy.size), THREADS, dy.reshape(dy.size), z, K, P, dy.size)


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
    _launch(_relu_forward, _blocks(x.size), THREADS, x.reshape(x.size), y.reshape(y.size), slope, x.size)


def relu_backward(x, dy, dx, slope=0.0):
    _launch(_relu_backward, _blocks(x.size), THREADS, x.reshape(x.size), dy.reshape(dy.size), dx.reshape(dx.size),
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


def _pool_launch(kernel, arrays, x_shape, y_shape, per_input, geometry):
    """Launch a pooling kernel: one thread per output, or per input (per_input, the backwards)."""
    N, C, H, W = x_shape
    OH, OW = y_shape[2], y_shape[3]
    total = N * C * (H * W if per_input else OH * OW)
    _launch(kernel, _blocks(total), THREADS, *arrays, C, H, W, OH, OW, *geometry, total)


@cuda.jit(device=True)
def _windows_of(h, w, OH, OW, KH, KW, SH, SW, PH, PW):
    """The outputs (oh in [a, b), ow in [c, d)) whose windows [oh*SH - PH, +KH) hold input (h, w)."""
    return (max(0, (h + PH - KH) // SH + 1), min(OH, (h + PH) // SH + 1),
            max(0, (w + PW - KW) // SW + 1), min(OW, (w + PW) // SW + 1))


def maxpool_forward(x, y, mask, KH, KW, SH, SW, PH, PW):
    _pool_launch(_maxpool_forward, (x, y, mask), x.shape, y.shape, False, (KH, KW, SH, SW, PH, PW))


@cuda.jit
def _maxpool_backward(dy, mask, dx, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, total):
    """One thread per input: the sum of the gradients of the outputs whose window it won (a
    gather over the windows that contain it: no atomics, a fixed order)."""
    t = cuda.grid(1)
    if t >= total:
        return
    n, c, h, w = _nchw(t, C, H, W)
    me = h * W + w
    acc = float32(0.0)
    oh0, oh1, ow0, ow1 = _windows_of(h, w, OH, OW, KH, KW, SH, SW, PH, PW)
    for oh in range(oh0, oh1):
        for ow in range(ow0, ow1):
            if mask[n, c, oh, ow] == me:
                acc += dy[n, c, oh, ow]
    dx[n, c, h, w] = acc


def maxpool_backward(dy, mask, dx, KH, KW, SH, SW, PH, PW):
    _pool_launch(_maxpool_backward, (dy, mask, dx), dx.shape, dy.shape, True, (KH, KW, SH, SW, PH, PW))


@cuda.jit(device=True)
def _ave_size(hs, ws, KH, KW, H, W, PH, PW):
    """The divisor of the window at (hs, ws): its size clipped to the padded image (Caffe's)."""
    return (min(hs + KH, H + PH) - hs) * (min(ws + KW, W + PW) - ws)


@cuda.jit
def _avepool_forward(x, y, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, total):
    t = cuda.grid(1)
    if t >= total:
        return
    n, c, oh, ow = _nchw(t, C, OH, OW)
    hs, ws = oh * SH - PH, ow * SW - PW
    acc = float32(0.0)
    for h in range(max(hs, 0), min(hs + KH, H)):
        for w in range(max(ws, 0), min(ws + KW, W)):
            acc += x[n, c, h, w]
    y[n, c, oh, ow] = acc / _ave_size(hs, ws, KH, KW, H, W, PH, PW)


def avepool_forward(x, y, KH, KW, SH, SW, PH, PW):
    """Average pooling as netcli/kernels/pool.py: the window's sum over its padded size."""
    _pool_launch(_avepool_forward, (x, y), x.shape, y.shape, False, (KH, KW, SH, SW, PH, PW))


@cuda.jit
def _avepool_backward(dy, dx, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, total):
    """One thread per input: the gradients of the windows that contain it, each over its size."""
    t = cuda.grid(1)
    if t >= total:
        return
    n, c, h, w = _nchw(t, C, H, W)
    acc = float32(0.0)
    oh0, oh1, ow0, ow1 = _windows_of(h, w, OH, OW, KH, KW, SH, SW, PH, PW)
    for oh in range(oh0, oh1):
        for ow in range(ow0, ow1):
            hs, ws = oh * SH - PH, ow * SW - PW
            acc += dy[n, c, oh, ow] / _ave_size(hs, ws, KH, KW, H, W, PH, PW)
    dx[n, c, h, w] = acc


def avepool_backward(dy, dx, KH, KW, SH, SW, PH, PW):
    _pool_launch(_avepool_backward, (dy, dx), dx.shape, dy.shape, True, (KH, KW, SH, SW, PH, PW))


# -- TanH, Sigmoid, Softmax ---------------------------------------------------------------------
TANH, SIGMOID = 0, 1


@cuda.jit
def _squash_forward(x, y, kind, n):
    t = cuda.grid(1)
    if t < n:
        v = x[t]
        y[t] = math.tanh(v) if kind == 0 else float32(0.5) * math.tanh(float32(0.5) * v) + float32(0.5)


@cuda.jit
def _squash_backward(y, dy, dx, kind, n):
    """From the output: tanh' = 1 - y^2, sigmoid' = y (1 - y)."""
    t = cuda.grid(1)
    if t < n:
        v = y[t]
        dx[t] = dy[t] * (float32(1.0) - v * v if kind == 0 else v * (float32(1.0) - v))


def squash_forward(x, y, kind):
    """y = tanh(x) (kind TANH) or the logistic sigmoid (SIGMOID, as 0.5 tanh(x/2) + 0.5, as the CPU)."""
    _launch(_squash_forward, _blocks(x.size), THREADS, x.reshape(x.size), y.reshape(y.size), kind, x.size)


def squash_backward(y, dy, dx, kind):
    _launch(_squash_backward, _blocks(y.size), THREADS, y.reshape(y.size), dy.reshape(dy.size),
            dx.reshape(dx.size), kind, y.size)


@cuda.jit
def _softmax_forward(x, y, C, inner, total):
    """One thread per (outer, inner) position: softmax over the C entries between them."""
    t = cuda.grid(1)
    if t >= total:
        return
    o, i = t // inner, t % inner
    base = o * C * inner + i
    m = x[base]
    for c in range(1, C):
        m = max(m, x[base + c * inner])
    s = float32(0.0)
    for c in range(C):
        e = math.exp(x[base + c * inner] - m)
        y[base + c * inner] = e
        s += e
    inv = float32(1.0) / s
    for c in range(C):
        y[base + c * inner] *= inv


@cuda.jit
def _softmax_backward(y, dy, dx, C, inner, total):
    """dx = (dy - sum_c dy * y) * y along the softmax axis."""
    t = cuda.grid(1)
    if t >= total:
        return
    o, i = t // inner, t % inner
    base = o * C * inner + i
    d = float32(0.0)
    for c in range(C):
        d += dy[base + c * inner] * y[base + c * inner]
    for c in range(C):
        k = base + c * inner
        dx[k] = (dy[k] - d) * y[k]


def softmax_forward(x, y, axis):
    """Softmax of x along `axis` into y (same shape)."""
    C = x.shape[axis]
    inner = _prod(x.shape[axis + 1:])
    total = x.size // C
    _launch(_softmax_forward, _blocks(total), THREADS, x.reshape(x.size), y.reshape(y.size), C, inner, total)


def softmax_backward(y, dy, dx, axis):
    C = y.shape[axis]
    inner = _prod(y.shape[axis + 1:])
    total = y.size // C
    _launch(_softmax_backward, _blocks(total), THREADS, y.reshape(y.size), dy.reshape(dy.size),
            dx.reshape(dx.size), C, inner, total)


def _prod(shape):
    out = 1
    for d in shape:
        out *= d
    return out


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
    s = float32(0.0)
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
    _launch(_softmax_loss_forward, _blocks(N), THREADS, x, lab, prob, logp, N, C)


@cuda.jit
def _softmax_loss_backward(prob, lab, dx, scale, N, C):
    t = cuda.grid(1)
    if t < N * C:
        r, c = t // C, t % C
        dx[r, c] = scale * (prob[r, c] - (1.0 if int(lab[r]) == c else 0.0))


def softmax_loss_backward(prob, lab, dx, scale):
    """dx = scale * (prob - one_hot(lab)); scale = loss_weight / N."""
    N, C = prob.shape
    _launch(_softmax_loss_backward, _blocks(N * C), THREADS, prob, lab, dx, scale, N, C)


# -- updates: each rule's kernel comes from its module (netcli/update_rules/) ------------------
def elementwise(kernel, n, *args):
    """`kernel` (one CUDA thread per element, e.g. an update rule's) over n elements."""
    _launch(kernel, _blocks(n), THREADS, *args)
