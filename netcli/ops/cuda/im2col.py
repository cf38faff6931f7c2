"""The convolution's data movement: im2col / col2im in the column layout of netcli/ops/cpu/im2col.py
(row (c, i, j), column (n, oh, ow); the same functions and parameters, dilation included), and
the device-only moves of conv2d.py: the GEMM's columns to NCHW with the bias and an optional ReLU
fused, the bias (and ReLU) in place, and NCHW to columns (the output gradient)."""
from __future__ import annotations

from .launch import _blocks, _launch, _nchw, _none, cuda, THREADS
from numba import float32  # after .launch, which checks the extra


# -- patches ------------------------------------------------------------------------------------
@cuda.jit
def _im2col(x, cols, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, total):
    """cols[(c*KH + i)*KW + j, (n*OH + oh)*OW + ow] = x[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW]
    (0 outside)."""
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
    h, w = oh * SH - PH + i * DH, ow * SW - PW + j * DW
    cols[r, q] = x[n, c, h, w] if 0 <= h < H and 0 <= w < W else 0.0


def im2col(x, cols, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """As netcli/ops/cpu/im2col.py's: x (N, C, H, W) -> cols (C*KH*KW, N*OH*OW)."""
    N, C, H, W = x.shape
    total = C * KH * KW * N * OH * OW
    _launch(_im2col, _blocks(total), THREADS, x, cols, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, total)


@cuda.jit
def _col2im(cols, dx, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, N):
    """The adjoint of im2col, one thread per input element (a gather: no atomics, a fixed sum order)."""
    t = cuda.grid(1)
    if t >= N * C * H * W:
        return
    n, c, h, w = _nchw(t, C, H, W)
    acc = float32(0.0)
    for i in range(KH):
        hh = h + PH - i * DH
        if hh < 0 or hh % SH != 0:
            continue
        oh = hh // SH
        if oh >= OH:
            continue
        for j in range(KW):
            ww = w + PW - j * DW
            if ww < 0 or ww % SW != 0:
                continue
            ow = ww // SW
            if ow >= OW:
                continue
            acc += cols[(c * KH + i) * KW + j, (n * OH + oh) * OW + ow]
    dx[n, c, h, w] = acc


def col2im(cols, dx, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    """As netcli/ops/cpu/im2col.py's: dx = the sum of every column entry that read each input."""
    N, C, H, W = dx.shape
    _launch(_col2im, _blocks(N * C * H * W), THREADS, cols, dx, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, N)


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
