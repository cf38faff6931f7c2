"""Depthwise 2-D convolution (group == channels == num_output: one KH x KW filter per channel, as
MobileNet's 3x3 depthwise layers), forward and backward, as direct loops: no patch matrix and no
GEMM (as im2col + GEMM it is one 1 x KH*KW by KH*KW x OH*OW product per channel and image).

Arrays are NCHW: inp (N, C, H, W), out (N, C, OH, OW), weight (C, 1, KH, KW), bias (C,) or
empty; kernel KH x KW, stride SH x SW, padding PH x PW, dilation DH x DW. For each kernel offset
(i, j) only the outputs oh in [oh_lo, oh_hi), ow in [ow_lo, ow_hi) read inside the image (the
rest read padding), so the loops run over those ranges and the innermost one, along an output
row, runs on slice views indexed from 0, which LLVM vectorises (contiguous when SW == 1).
Every sum runs in one fixed order that depends only on the shapes.
"""
import numpy as np
from numba import njit

from .im2col import _valid


@njit(cache=True, nogil=True)
def depthwise_forward(out, inp, weight, bias, KH, KW, SH, SW, PH, PW, DH, DW):
    """out[n, c, oh, ow] = bias[c] + sum over i, j of weight[c, 0, i, j] *
    inp[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW] (zero outside the image)."""
    N, C, OH, OW = out.shape
    H, W = inp.shape[2], inp.shape[3]
    has_bias = bias.shape[0] > 0
    for n in range(N):
        for c in range(C):
            y = out[n, c]
            x = inp[n, c]
            b = bias[c] if has_bias else 0.0
            for oh in range(OH):
                for ow in range(OW):
                    y[oh, ow] = b
            for i in range(KH):
                oh_lo, oh_hi = _valid(OH, SH, PH, i * DH, H)
                for j in range(KW):
                    ow_lo, ow_hi = _valid(OW, SW, PW, j * DW, W)
                    m = ow_hi - ow_lo
                    w_first = ow_lo * SW - PW + j * DW
                    wv = weight[c, 0, i, j]
                    for oh in range(oh_lo, oh_hi):
                        h = oh * SH - PH + i * DH
                        dst = y[oh, ow_lo:ow_hi]
                        if SW == 1:
                            src = x[h, w_first:w_first + m]
                            for k in range(m):
                                dst[k] += wv * src[k]
                        else:
                            for k in range(m):
                                dst[k] += wv * x[h, w_first + k * SW]


@njit(cache=True, nogil=True)
def depthwise_backward_data(dinp, dout, weight, KH, KW, SH, SW, PH, PW, DH, DW):
    """The adjoint of depthwise_forward's input term: dinp = 0, then dinp[n, c, h, w] +=
    weight[c, 0, i, j] * dout[n, c, oh, ow] for every output that read (h, w)."""
    N, C, OH, OW = dout.shape
    H, W = dinp.shape[2], dinp.shape[3]
    for n in range(N):
        for c in range(C):
            dx = dinp[n, c]
            dy = dout[n, c]
            for h in range(H):
                for w in range(W):
                    dx[h, w] = 0.0
            for i in range(KH):
                oh_lo, oh_hi = _valid(OH, SH, PH, i * DH, H)
                for j in range(KW):
                    ow_lo, ow_hi = _valid(OW, SW, PW, j * DW, W)
                    m = ow_hi - ow_lo
                    w_first = ow_lo * SW - PW + j * DW
                    wv = weight[c, 0, i, j]
                    for oh in range(oh_lo, oh_hi):
                        h = oh * SH - PH + i * DH
                        src = dy[oh, ow_lo:ow_hi]
                        if SW == 1:
                            dst = dx[h, w_first:w_first + m]
                            for k in range(m):
                                dst[k] += wv * src[k]
                        else:
                            for k in range(m):
                                dx[h, w_first + k * SW] += wv * src[k]


@njit(cache=True, nogil=True)
def depthwise_backward_weight(dweight, dout, inp, KH, KW, SH, SW, PH, PW, DH, DW):
    """dweight[c, 0, i, j] += sum over n, oh, ow of dout[n, c, oh, ow] *
    inp[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW]. One partial sum per output column ow and
    offset (i, j) (so the loop along a row vectorises; a single running sum makes every add wait
    for the one before), summed in order at the end of each channel."""
    N, C, OH, OW = dout.shape
    H, W = inp.shape[2], inp.shape[3]
    part = np.empty((KH * KW, OW), dout.dtype)
    for c in range(C):
        part[...] = 0.0
        for n in range(N):
            x = inp[n, c]
            dy = dout[n, c]
            for i in range(KH):
                oh_lo, oh_hi = _valid(OH, SH, PH, i * DH, H)
                for j in range(KW):
                    ow_lo, ow_hi = _valid(OW, SW, PW, j * DW, W)
                    m = ow_hi - ow_lo
                    w_first = ow_lo * SW - PW + j * DW
                    acc = part[i * KW + j]
                    for oh in range(oh_lo, oh_hi):
                        h = oh * SH - PH + i * DH
                        g = dy[oh, ow_lo:ow_hi]
                        if SW == 1:
                            src = x[h, w_first:w_first + m]
                            for k in range(m):
                                acc[k] += g[k] * src[k]
                        else:
                            for k in range(m):
                                acc[k] += g[k] * x[h, w_first + k * SW]
        for i in range(KH):
            for j in range(KW):
                acc = part[i * KW + j]
                s = acc[0]
                for k in range(1, OW):
                    s += acc[k]
                dweight[c, 0, i, j] += s
