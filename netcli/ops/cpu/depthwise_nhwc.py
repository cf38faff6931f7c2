"""Depthwise 2-D convolution on small planes, channels last: the same sums as depthwise.py, with
the loops along the channels instead of along a plane.

depthwise.py runs one plane (image n, channel c) at a time: each tap is one vectorised pass over
the plane. On the small planes of a deep net's last layers (MobileNet: 512 channels of 4x4, 1024
of 2x2) a plane is a few floats, and the per-plane work (its phases, nine short loops) is all
there is. Here the input is copied once into a zero-padded channels-last buffer, xp (N, Hp, Wp, C),
and every loop runs over the C channels of one position: long, contiguous, vectorised.

The values are those of depthwise.py, bit for bit: each output is bias + the taps in (i, j)
order; each input gradient gets its taps' terms in (i, j) order; each weight gradient is a
partial sum per output position over the images, then the positions summed in order.
Arrays: inp (N, C, H, W), out (N, C, OH, OW), weight (C, 1, KH, KW), bias (C,) or empty; xp
(N, at least H + 2PH, at least W + 2PW, C) from the forward (the backward's input; one image's
in a forward that keeps nothing), and scratch: yt (N, OH, OW, C) (the forward uses its first
image), dxp like xp, wt (KH, KW, C), part (KH*KW, OH, OW, C).
"""
import numpy as np
from numba import njit

from .depthwise_rows import depthwise_rows_backward_data, depthwise_rows_forward, rows_backward_fit, rows_fit
from .depthwise_vectors import forward3x3, weight_grad_taps
from .im2col import nchw_to_nhwc_at, nhwc_to_nchw_at
from .transpose import BLOCK


def depthwise_nhwc_fits(KH, KW, PH, PW, DH, DW):
    """No dilation, padding within the kernel's reach (the padded buffers are sized from the kernel)."""
    return DH == DW == 1 and PH <= KH - 1 and PW <= KW - 1


def _padded(H, W, KH, KW):
    """Rows and columns of xp: room for any padding depthwise_nhwc_fits allows."""
    return H + 2 * (KH - 1), W + 2 * (KW - 1)


def depthwise_nhwc_workspace(n, C, H, W, KH, KW, dtype):
    """{name: (shape, dtype)}: the padded channels-last input, kept from the forward for the backward."""
    return {"xp": ((n, *_padded(H, W, KH, KW), C), dtype)}


def depthwise_nhwc_scratch(n, C, H, W, KH, KW, OH, OW, dtype):
    """{name: (shape, dtype)}: what one call writes before it reads it."""
    return {"yt": ((n, OH, OW, C), dtype), "dxp": ((n, *_padded(H, W, KH, KW), C), dtype),
            "wt": ((KH, KW, C), dtype), "part": ((KH * KW, OH, OW, C), dtype), "no_bias": ((0,), dtype)}


@njit(cache=True, nogil=True)
def _channels_last(weight, wt):
    C, _, KH, KW = weight.shape
    for i in range(KH):
        for j in range(KW):
            row = wt[i, j]
            for c in range(C):
                row[c] = weight[c, 0, i, j]


@njit(cache=True, nogil=True)
def depthwise_nhwc_forward(out, inp, weight, bias, xp, yt, wt, KH, KW, SH, SW, PH, PW, DH, DW):
    """out[n, c, oh, ow] = bias[c] + sum over i, j of weight[c, 0, i, j] *
    inp[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW] (zero outside the image), one image at a
    time (its padded copy, its sums and their way back stay in cache); xp keeps the padded
    channels-last input of every image, or holds one image at a time where it has room for one
    only (a forward that keeps nothing for a backward: conv2d_scratch)."""
    _channels_last(weight, wt)
    depthwise_nhwc_forward_images(out, inp, weight, bias, xp, yt, wt, SH, SW, PH, PW, DH, DW)


@njit(cache=True, nogil=True)
def depthwise_nhwc_forward_images(out, inp, weight, bias, xp, yt, wt, SH, SW, PH, PW, DH, DW):
    """depthwise_nhwc_forward after its weights were made channels-last in wt (KH, KW, C): on a
    team's tile of images (depthwise_team.py), their rows of out, inp, xp and yt. Where the
    rows fit (depthwise_rows.py) the sums run there, on the NCHW planes (the same bits), and xp
    is written only where it keeps every image (for the backward)."""
    N, C = out.shape[0], out.shape[1]
    H, W = inp.shape[2], inp.shape[3]
    KH, KW = wt.shape[0], wt.shape[1]
    every = xp.shape[0] >= N
    if rows_fit(KH, KW, SH, SW, PH, PW, DH, DW, H, W, out.shape[3]):
        if every:
            _zero_border(xp[:N], H, W, PH, PW)
            _to_channels_last(inp, xp[:N], PH, PW)
        depthwise_rows_forward(out, inp, weight, bias, SH, SW, PH, PW)
        return
    b = bias if bias.shape[0] > 0 else np.zeros(C, yt.dtype)
    if not every:
        _zero_border(xp[:1], H, W, PH, PW)
    y1 = yt[:1]
    for n in range(N):
        x1 = xp[n:n + 1] if every else xp[:1]
        if every:
            _zero_border(x1, H, W, PH, PW)
        _to_channels_last(inp[n:n + 1], x1, PH, PW)
        if KH == KW == 3:                 # in vectors of channels (depthwise_vectors.py)
            forward3x3(x1, y1, wt, b, SH, SW, DH, DW)
        else:
            _forward_taps(x1, y1, wt, b, SH, SW, DH, DW)
        _to_channels_first(y1, out[n:n + 1], 0, 0)


@njit(cache=True, nogil=True)
def _forward_taps(xp, yt, wt, b, SH, SW, DH, DW):
    """depthwise_nhwc_forward's sums, one pass per tap: b + the taps' terms in (i, j) order."""
    N, OH, OW, C = yt.shape
    KH, KW = wt.shape[0], wt.shape[1]
    for n in range(N):
        for oh in range(OH):
            for ow in range(OW):
                acc = yt[n, oh, ow]
                for c in range(C):
                    acc[c] = b[c]
                for i in range(KH):
                    for j in range(KW):
                        src, wv = xp[n, oh * SH + i * DH, ow * SW + j * DW], wt[i, j]
                        for c in range(C):
                            acc[c] += wv[c] * src[c]


@njit(cache=True, nogil=True)
def _zero_border(xp, H, W, PH, PW):
    """Zero the padding around the H x W image at (PH, PW) in xp[n], as far as the kernel reads
    (H + 2PH rows, W + 2PW columns); the image itself is written next."""
    for n in range(xp.shape[0]):
        for h in range(H + 2 * PH):
            row = xp[n, h]
            if h < PH or h >= PH + H:
                row[:W + 2 * PW] = 0.0
            else:
                row[:PW] = 0.0
                row[PW + W:W + 2 * PW] = 0.0


# Rows of at least BLOCK (8) positions go in 8 x 8 blocks transposed in vector registers (im2col.py's
# nchw_to_nhwc_at and nhwc_to_nchw_at, transpose.py); narrower ones position by position (512 x
# 4x4, 50 images, one thread, AMD EPYC Zen 4: 0.17 / 0.20 ms to channels last / back, against 0.23
# / 0.28 through a row buffer). Through that buffer -> in blocks, one thread, AMD EPYC Zen 5, best
# of 30, with padding 1: 50 x 256 x 8x8 0.22 / 0.21 -> 0.10 / 0.08, 50 x 128 x 8x8 0.11 / 0.10 ->
# 0.04 / 0.04, 32 x 64 x 16x16 0.14 / 0.13 -> 0.05 / 0.06, 32 x 32 x 32x32 0.31 -> 0.12 to channels
# last (back onto those planes, 4 KB apart, through the buffer still: transpose.aliased).


@njit(cache=True, nogil=True)
def _to_channels_last(x, xt, PH, PW):
    """xt[n, h + PH, w + PW, c] = x[n, c, h, w] (xt's other positions untouched)."""
    N, C, H, W = x.shape
    if W >= BLOCK:
        nchw_to_nhwc_at(x, xt, PH, PW)
        return
    for n in range(N):
        for h in range(H):
            for w in range(W):
                dst = xt[n, h + PH, w + PW]
                for c in range(C):
                    dst[c] = x[n, c, h, w]


@njit(cache=True, nogil=True)
def _to_channels_first(xt, x, PH, PW):
    """x[n, c, h, w] = xt[n, h + PH, w + PW, c]: the inverse of _to_channels_last. Planes of at
    most 64 positions go position by position (512 channels of 4x4: 0.07 ms against 0.17 for 32
    images; the other order for 64 channels of 16x16: 0.26 against 0.95)."""
    N, C, H, W = x.shape
    if W >= BLOCK:
        nhwc_to_nchw_at(xt, x, PH, PW)
        return
    if H * W <= 64:
        for n in range(N):
            for h in range(H):
                for w in range(W):
                    src = xt[n, h + PH, w + PW]
                    for c in range(C):
                        x[n, c, h, w] = src[c]
        return
    for n in range(N):
        for c in range(C):
            for h in range(H):
                for w in range(W):
                    x[n, c, h, w] = xt[n, h + PH, w + PW, c]


@njit(cache=True, nogil=True)
def depthwise_nhwc_backward_data(dinp, dout, weight, yt, dxp, wt, KH, KW, SH, SW, PH, PW, DH, DW):
    """dinp = the input gradient (written): dinp[n, c, h, w] = sum of weight[c, 0, i, j] *
    dout[n, c, oh, ow] over the outputs that read (h, w), the taps in (i, j) order (in reverse
    order where the rows fit: depthwise_rows.py, as depthwise.py)."""
    _channels_last(weight, wt)
    depthwise_nhwc_backward_data_images(dinp, dout, yt, dxp, wt, SH, SW, PH, PW, DH, DW)


@njit(cache=True, nogil=True)
def depthwise_nhwc_backward_data_images(dinp, dout, yt, dxp, wt, SH, SW, PH, PW, DH, DW):
    """depthwise_nhwc_backward_data after its weights were made channels-last in wt: on a team's
    tile of images (depthwise_team.py), their rows of dinp, dout, yt and dxp."""
    N, C, H, W = dinp.shape
    OH, OW = dout.shape[2], dout.shape[3]
    KH, KW = wt.shape[0], wt.shape[1]
    _to_channels_last(dout, yt, 0, 0)                  # (for the weight gradient too)
    if rows_backward_fit(KH, KW, SH, SW, PH, PW, DH, DW, H, W, OH, OW):
        depthwise_rows_backward_data(dinp, dout, _turned_back(wt), PH, PW)
        return
    if KH == KW == 3 and SH == SW == 1:
        _gathered3x3(dinp, yt, dxp, wt, PH, PW, DH, DW)
        return
    dxp[:, :H + 2 * PH, :W + 2 * PW] = 0.0             # where the taps land
    for n in range(N):
        for i in range(KH):
            for j in range(KW):
                wv = wt[i, j]
                for oh in range(OH):
                    for ow in range(OW):
                        dst, g = dxp[n, oh * SH + i * DH, ow * SW + j * DW], yt[n, oh, ow]
                        for c in range(C):
                            dst[c] += wv[c] * g[c]
    _to_channels_first(dxp, dinp, PH, PW)


@njit(cache=True, nogil=True)
def _turned_back(wt):
    """The weights (C, 1, KH, KW) from their channels-last copy wt (KH, KW, C)."""
    KH, KW, C = wt.shape
    weight = np.empty((C, 1, KH, KW), wt.dtype)
    for i in range(KH):
        for j in range(KW):
            for c in range(C):
                weight[c, 0, i, j] = wt[i, j, c]
    return weight


# A 3x3 kernel of stride 1 outside the rows: each input position gathers its nine terms, in tap order, from dout
# padded with zeros (the terms of taps that miss add +-0: the same bits), as the forward's vectors
# (depthwise_vectors.forward3x3) on both planes turned 180 degrees: dout's row h + PH - i*DH is
# then row i*DH of the turned plane at the turned position. The input gradient with its copies,
# 50 images, one thread, Intel Xeon (model 207), best of 7, the taps scattered -> gathered, ms:
# 128 ch 16x16 5.15 -> 3.85, 256 ch 8x8 2.83 -> 2.23, 512 ch 4x4 1.26 -> 1.23, 1024 ch 2x2 0.68
# -> 0.66.
@njit(cache=True, nogil=True)
def _gathered3x3(dinp, yt, dxp, wt, PH, PW, DH, DW):
    """depthwise_nhwc_backward_data's sums for a 3x3 kernel of stride 1, dout channels-last in yt,
    an image at a time through a zero-padded copy; dxp: the input gradient channels last, then
    dinp."""
    N, C, H, W = dinp.shape
    OH, OW = yt.shape[1], yt.shape[2]
    top, left = 2 * DH, 2 * DW                      # (dout's row oh at top + oh of the padded copy)
    dyp = np.zeros((1, H + PH + top, W + PW + left, C), yt.dtype)
    zero = np.zeros(C, yt.dtype)
    for n in range(N):
        dyp[0, top:top + OH, left:left + OW] = yt[n]
        forward3x3(dyp[:, ::-1, ::-1], dxp[n:n + 1, :H, :W][:, ::-1, ::-1], wt, zero, 1, 1, DH, DW)
    _to_channels_first(dxp, dinp, 0, 0)


@njit(cache=True, nogil=True)
def depthwise_nhwc_backward_weight(dweight, dout, xp, yt, part, KH, KW, SH, SW, DH, DW, fresh_dout):
    """dweight[c, 0, i, j] += sum over n, oh, ow of dout[n, c, oh, ow] * (the padded input the
    forward kept at (oh*SH + i*DH, ow*SW + j*DW)): per tap and output position a partial sum over
    the images, then the positions in order. fresh_dout: yt does not hold dout channels-last yet."""
    if fresh_dout:
        _to_channels_last(dout, yt, 0, 0)
    depthwise_nhwc_backward_weight_part(dweight, xp, yt, part, KH, KW, SH, SW, DH, DW, 0, KH * KW)


@njit(cache=True, nogil=True)
def depthwise_nhwc_backward_weight_part(dweight, xp, yt, part, KH, KW, SH, SW, DH, DW, t_from, t_to):
    """depthwise_nhwc_backward_weight of the taps t_from..t_to alone (tap i*KW + j), yt holding
    dout channels-last (a team's tile: depthwise_team.py); each tap's sums are the same. (Tiles of
    channels ran loops of C/8 numbers: 512 x 4x4, 16 images, one thread, 0.13 -> 0.21 ms.)"""
    N, OH, OW, C = yt.shape
    part[t_from:t_to] = 0.0
    weight_grad_taps(xp, yt, part, KW, SH, SW, DH, DW, t_from, t_to)       # (depthwise_vectors.py)
    s = np.empty(C, yt.dtype)
    for t in range(t_from, t_to):
        acc = part[t]
        for c in range(C):
            s[c] = acc[0, 0, c]
        for oh in range(OH):
            for ow in range(OW):
                if oh > 0 or ow > 0:
                    a = acc[oh, ow]
                    for c in range(C):
                        s[c] += a[c]
        for c in range(C):
            dweight[c, 0, t // KW, t % KW] += s[c]
