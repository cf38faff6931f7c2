"""Depthwise 2-D convolution (group == channels == num_output: one KH x KW filter per channel, as
MobileNet's 3x3 depthwise layers), forward and backward, as direct loops: no patch matrix and no
GEMM (as im2col + GEMM it is one 1 x KH*KW by KH*KW x OH*OW product per channel and image).

Arrays are NCHW: inp (N, C, H, W), out (N, C, OH, OW), weight (C, 1, KH, KW), bias (C,) or
empty; kernel KH x KW, stride SH x SW, padding PH x PW, dilation DH x DW.

Each image plane, zero-padded to Hp x Wp, is cut into SH*SW stride phases (flat planes of Hq
rows of Wq columns): padded pixel (hp, wp) goes to phase (hp % SH, wp % SW) at row hp // SH,
column wp // SW. The outputs are computed on a "wide" grid of OH rows of Wq columns (columns
from OW on are not outputs and are dropped). Output (oh, ow) of kernel tap (i, j) reads padded
pixel (oh*SH + i*DH, ow*SW + j*DW), which is phase ((i*DH) % SH, (j*DW) % SW) at wide-grid
position (oh, ow) shifted by ((i*DH) // SH, (j*DW) // SW): so each tap is ONE long contiguous
axpy over the wide grid, acc[q] += w[i, j] * phase[q + shift], which LLVM vectorises, whatever
the stride (a 3x3 kernel's nine in one pass, the same sums in the same order). The input
gradient scatters the same way into phases; the weight gradient keeps one partial sum per
wide-grid position and tap over the images, summed in order at the end of each channel (a
single running sum makes every add wait for the one before). Every sum runs in one fixed order
that depends only on the shapes. (Measured: bench/conv_algorithms.py.)
"""
import numpy as np
from numba import njit

from .depthwise_rows import depthwise_rows_backward_data, depthwise_rows_forward, rows_backward_fit, rows_fit


@njit(cache=True, nogil=True, inline="always")
def _phase_shape(H, W, KW, SH, SW, PH, PW, DW):
    """(Hq, Wq) of one stride phase: room for every padded pixel, one spare row for the wide
    grid's overhang past the last row (and a kernel's reach along it)."""
    Hq = (H + 2 * PH + SH - 1) // SH + 1
    Wq = (W + 2 * PW + SW - 1) // SW
    return Hq + ((KW - 1) * DW // SW) // Wq + 1, Wq


@njit(cache=True, nogil=True, inline="always")
def _shift(i, j, SH, SW, DH, DW, PL, Wq):
    """Where tap (i, j)'s reads start in the phases buffer (phase base + shift)."""
    a, b = i * DH, j * DW
    return ((a % SH) * SW + b % SW) * PL + (a // SH) * Wq + b // SW


@njit(cache=True, nogil=True, inline="always")
def _phase_run(W, PW, SW, rw):
    """Along a row: the pixels w of column phase rw (w + PW = v*SW + rw) are w0, w0 + SW, ...
    (count of them), at phase columns v0, v0 + 1, ... (divisions per row, not per pixel)."""
    v0 = max(0, (PW - rw + SW - 1) // SW)
    w0 = v0 * SW + rw - PW
    return v0, w0, max(0, (W - w0 + SW - 1) // SW)


@njit(cache=True, nogil=True, inline="always")
def _row_to_two_phases(src, da, db, wa, wb):
    """_to_phases' row for a column stride of 2: pixels wa, wa + 2, ... into da (column phase 0)
    and wb, wb + 2, ... into db (phase 1; wa, wb = 0, 1 or 1, 0), in one loop over the pairs:
    loads at constant offsets 2k and 2k + 1, which LLVM vectorises (against one loop per phase at
    a stride it does not know, 64 channels of 32x32, 32 images, one thread, AMD EPYC Zen 4: the
    copy 2.2 -> 1.3 ms, the forward 3.0 -> 1.6 ms, the input gradient 2.9 -> 1.9 ms)."""
    pairs = min(da.shape[0], db.shape[0])
    if wa < wb:
        run = src[wa:]
        for k in range(pairs):
            da[k] = run[2 * k]
            db[k] = run[2 * k + 1]
    else:
        run = src[wb:]
        for k in range(pairs):
            db[k] = run[2 * k]
            da[k] = run[2 * k + 1]
    if da.shape[0] > pairs:
        da[pairs] = src[wa + 2 * pairs]
    if db.shape[0] > pairs:
        db[pairs] = src[wb + 2 * pairs]


@njit(cache=True, nogil=True, inline="always")
def _row_from_two_phases(dst, da, db, wa, wb):
    """The adjoint of _row_to_two_phases: dst's pixels wa, wa + 2, ... from da and wb, wb + 2, ...
    from db."""
    pairs = min(da.shape[0], db.shape[0])
    if wa < wb:
        run = dst[wa:]
        for k in range(pairs):
            run[2 * k] = da[k]
            run[2 * k + 1] = db[k]
    else:
        run = dst[wb:]
        for k in range(pairs):
            run[2 * k] = db[k]
            run[2 * k + 1] = da[k]
    if da.shape[0] > pairs:
        dst[wa + 2 * pairs] = da[pairs]
    if db.shape[0] > pairs:
        dst[wb + 2 * pairs] = db[pairs]


@njit(cache=True, nogil=True)
def _to_phases(x, xq, PH, PW, SH, SW, PL, Wq):
    """The plane x (H, W) into its stride phases in xq (the padding there is left as it is)."""
    H, W = x.shape
    if SW == 2:
        va, wa, ma = _phase_run(W, PW, 2, 0)
        vb, wb, mb = _phase_run(W, PW, 2, 1)
        for h in range(H):
            hp = h + PH
            base = ((hp % SH) * 2) * PL + (hp // SH) * Wq
            _row_to_two_phases(x[h], xq[base + va:base + va + ma], xq[base + PL + vb:base + PL + vb + mb], wa, wb)
        return
    for h in range(H):
        hp = h + PH
        src = x[h]
        for rw in range(SW):
            v0, w0, m = _phase_run(W, PW, SW, rw)
            base = ((hp % SH) * SW + rw) * PL + (hp // SH) * Wq + v0
            dst = xq[base:base + m]
            if SW == 1:
                for k in range(m):
                    dst[k] = src[k]
            else:
                for k in range(m):
                    dst[k] = src[w0 + k * SW]


@njit(cache=True, nogil=True)
def _from_phases(xq, x, PH, PW, SH, SW, PL, Wq):
    """The adjoint's copy back: x (H, W) = its pixels in the stride phases xq."""
    H, W = x.shape
    if SW == 2:
        va, wa, ma = _phase_run(W, PW, 2, 0)
        vb, wb, mb = _phase_run(W, PW, 2, 1)
        for h in range(H):
            hp = h + PH
            base = ((hp % SH) * 2) * PL + (hp // SH) * Wq
            _row_from_two_phases(x[h], xq[base + va:base + va + ma], xq[base + PL + vb:base + PL + vb + mb], wa, wb)
        return
    for h in range(H):
        hp = h + PH
        dst = x[h]
        for rw in range(SW):
            v0, w0, m = _phase_run(W, PW, SW, rw)
            base = ((hp % SH) * SW + rw) * PL + (hp // SH) * Wq + v0
            src = xq[base:base + m]
            if SW == 1:
                for k in range(m):
                    dst[k] = src[k]
            else:
                for k in range(m):
                    dst[w0 + k * SW] = src[k]


@njit(cache=True, nogil=True, inline="always")
def _taps3x3(acc, xq, w, b, SH, SW, DH, DW, PL, Wq, L):
    """acc[q] = b + the nine taps' terms in (i, j) order, in one pass: the same sums as one pass
    per tap, which loads and stores acc nine times (32 channels of 32x32, 32 images, one thread,
    AMD EPYC Zen 4: the forward 0.95 -> 0.72 ms)."""
    s0, s1, s2 = _tap(xq, 0, 0, SH, SW, DH, DW, PL, Wq, L), _tap(xq, 0, 1, SH, SW, DH, DW, PL, Wq, L), \
        _tap(xq, 0, 2, SH, SW, DH, DW, PL, Wq, L)
    s3, s4, s5 = _tap(xq, 1, 0, SH, SW, DH, DW, PL, Wq, L), _tap(xq, 1, 1, SH, SW, DH, DW, PL, Wq, L), \
        _tap(xq, 1, 2, SH, SW, DH, DW, PL, Wq, L)
    s6, s7, s8 = _tap(xq, 2, 0, SH, SW, DH, DW, PL, Wq, L), _tap(xq, 2, 1, SH, SW, DH, DW, PL, Wq, L), \
        _tap(xq, 2, 2, SH, SW, DH, DW, PL, Wq, L)
    w0, w1, w2, w3, w4, w5, w6, w7, w8 = w[0, 0], w[0, 1], w[0, 2], w[1, 0], w[1, 1], w[1, 2], w[2, 0], w[2, 1], w[2, 2]
    acc[0] = b                          # b in the data's type (as the per-tap form stores it)
    b0 = acc[0]
    for q in range(L):
        acc[q] = (((((((((b0 + w0 * s0[q]) + w1 * s1[q]) + w2 * s2[q]) + w3 * s3[q]) + w4 * s4[q]) + w5 * s5[q])
                   + w6 * s6[q]) + w7 * s7[q]) + w8 * s8[q])


@njit(cache=True, nogil=True, inline="always")
def _tap(xq, i, j, SH, SW, DH, DW, PL, Wq, L):
    off = _shift(i, j, SH, SW, DH, DW, PL, Wq)
    return xq[off:off + L]


@njit(cache=True, nogil=True)
def depthwise_forward(out, inp, weight, bias, KH, KW, SH, SW, PH, PW, DH, DW):
    """out[n, c, oh, ow] = bias[c] + sum over i, j of weight[c, 0, i, j] *
    inp[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW] (zero outside the image); in vectors along
    the rows where they fit (depthwise_rows.py: the same bits)."""
    N, C, OH, OW = out.shape
    if rows_fit(KH, KW, SH, SW, PH, PW, DH, DW, inp.shape[2], inp.shape[3], OW):
        depthwise_rows_forward(out, inp, weight, bias, SH, SW, PH, PW)
        return
    Hq, Wq = _phase_shape(inp.shape[2], inp.shape[3], KW, SH, SW, PH, PW, DW)
    PL, L = Hq * Wq, OH * Wq
    xq = np.zeros(SH * SW * PL, out.dtype)
    acc = np.empty(L, out.dtype)
    has_bias = bias.shape[0] > 0
    for n in range(N):
        for c in range(C):
            _to_phases(inp[n, c], xq, PH, PW, SH, SW, PL, Wq)
            b = bias[c] if has_bias else 0.0
            if KH == 3 and KW == 3:
                _taps3x3(acc, xq, weight[c, 0], b, SH, SW, DH, DW, PL, Wq, L)
            else:
                for q in range(L):
                    acc[q] = b
                for i in range(KH):
                    for j in range(KW):
                        wv = weight[c, 0, i, j]
                        off = _shift(i, j, SH, SW, DH, DW, PL, Wq)
                        src = xq[off:off + L]
                        for q in range(L):
                            acc[q] += wv * src[q]
            _from_phases(acc, out[n, c], 0, 0, 1, 1, L, Wq)


@njit(cache=True, nogil=True)
def depthwise_backward_data(dinp, dout, weight, KH, KW, SH, SW, PH, PW, DH, DW):
    """The adjoint of depthwise_forward's input term: dinp = 0, then dinp[n, c, h, w] +=
    weight[c, 0, i, j] * dout[n, c, oh, ow] for every output that read (h, w); in vectors along
    the rows where they fit (depthwise_rows.py: the taps in reverse order)."""
    N, C, OH, OW = dout.shape
    if rows_backward_fit(KH, KW, SH, SW, PH, PW, DH, DW, dinp.shape[2], dinp.shape[3], OH, OW):
        depthwise_rows_backward_data(dinp, dout, weight, PH, PW)
        return
    Hq, Wq = _phase_shape(dinp.shape[2], dinp.shape[3], KW, SH, SW, PH, PW, DW)
    PL, L = Hq * Wq, OH * Wq
    dxq = np.empty(SH * SW * PL, dout.dtype)
    dyw = np.zeros(L, dout.dtype)             # dout on the wide grid: columns from OW on stay 0
    for n in range(N):
        for c in range(C):
            dxq[:] = 0.0
            _to_phases(dout[n, c], dyw, 0, 0, 1, 1, L, Wq)
            for i in range(KH):
                for j in range(KW):
                    wv = weight[c, 0, i, j]
                    off = _shift(i, j, SH, SW, DH, DW, PL, Wq)
                    dst = dxq[off:off + L]
                    for q in range(L):
                        dst[q] += wv * dyw[q]
            _from_phases(dxq, dinp[n, c], PH, PW, SH, SW, PL, Wq)


@njit(cache=True, nogil=True)
def depthwise_backward_weight(dweight, dout, inp, KH, KW, SH, SW, PH, PW, DH, DW):
    """dweight[c, 0, i, j] += sum over n, oh, ow of dout[n, c, oh, ow] *
    inp[n, c, oh*SH - PH + i*DH, ow*SW - PW + j*DW]: per tap, one partial sum per wide-grid
    position over the images, then those summed in order."""
    depthwise_backward_weight_part(dweight, dout, inp, KH, KW, SH, SW, PH, PW, DH, DW, 0, dout.shape[1])


@njit(cache=True, nogil=True)
def depthwise_backward_weight_part(dweight, dout, inp, KH, KW, SH, SW, PH, PW, DH, DW, c_from, c_to):
    """depthwise_backward_weight of the channels c_from..c_to alone (a team's tile:
    depthwise_team.py); each channel's sums are the same."""
    N, C, OH, OW = dout.shape
    Hq, Wq = _phase_shape(inp.shape[2], inp.shape[3], KW, SH, SW, PH, PW, DW)
    PL, L = Hq * Wq, OH * Wq
    xq = np.zeros(SH * SW * PL, dout.dtype)
    dyw = np.zeros(L, dout.dtype)             # columns from OW on stay 0: they add nothing
    part = np.empty((KH * KW, L), dout.dtype)
    for c in range(c_from, c_to):
        part[...] = 0.0
        for n in range(N):
            _to_phases(inp[n, c], xq, PH, PW, SH, SW, PL, Wq)
            _to_phases(dout[n, c], dyw, 0, 0, 1, 1, L, Wq)
            for i in range(KH):
                for j in range(KW):
                    acc = part[i * KW + j]
                    off = _shift(i, j, SH, SW, DH, DW, PL, Wq)
                    src = xq[off:off + L]
                    for q in range(L):
                        acc[q] += dyw[q] * src[q]
        for t in range(KH * KW):
            acc = part[t]
            s = acc[0]
            for q in range(1, L):
                s += acc[q]
            dweight[c, 0, t // KW, t % KW] += s
