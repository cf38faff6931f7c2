"""The transforms of Winograd F(4x4, 3x3) (Lavin & Gray, 2015): each 4x4 output tile from a 6x6
input tile with 36 products per channel pair instead of 144, against F(2x2, 3x3)'s 16 for 4
outputs: 2.25 multiplications per output instead of 4, and transformed arrays 36/16 = 2.25x the
input's size instead of 4x. netcli/ops/cpu/winograd.py runs them (its docstring: the GEMMs, the
backward, the chunks); the five kernels here have the signatures of its F(2x2, 3x3) ones.

    B^T = [4  0 -5  0 1 0]   G = [ 1/4     0    0]   A^T = [1 1  1 1  1 0]
          [0 -4 -4  1 1 0]       [-1/6 -1/6 -1/6]         [0 1 -1 2 -2 0]
          [0  4 -4 -1 1 0]       [-1/6  1/6 -1/6]         [0 1  1 4  4 0]
          [0 -2 -1  2 1 0]       [1/24 1/12  1/6]         [0 1 -1 8 -8 1]
          [0  2 -1 -2 1 0]       [1/24 -1/12 1/6]
          [0  4  0 -5 0 1]       [   0     0    1]

A transformed array's position e = 6*a + b holds entry (a, b) of the 6x6 tile. The points 0, +-1,
+-2 make the sums larger than F(2x2, 3x3)'s: float32 results differ from a direct convolution by
a few units in the 6th digit (tests/ops/test_winograd.py bounds them)."""
import numpy as np
from numba import njit
from numba.extending import register_jitable

from .tile_rows import copy_into, load_rows, store_rows

_2, _4, _5, _8 = np.float32(2), np.float32(4), np.float32(5), np.float32(8)


@register_jitable(inline="always")
def _bt(d0, d1, d2, d3, d4, d5):
    """B^T d for one column (or row) of a 6x6 input tile."""
    return (_4 * d0 - _5 * d2 + d4, d3 + d4 - _4 * (d1 + d2), _4 * (d1 - d2) - d3 + d4,
            _2 * (d3 - d1) - d2 + d4, _2 * (d1 - d3) - d2 + d4, _4 * d1 - _5 * d3 + d5)


@register_jitable(inline="always")
def _at(m0, m1, m2, m3, m4, m5):
    """A^T m: 4 outputs from one column (or row) of a 6x6 product tile."""
    return (m0 + m1 + m2 + m3 + m4, m1 - m2 + _2 * (m3 - m4), m1 + m2 + _4 * (m3 + m4),
            m1 - m2 + _8 * (m3 - m4) + m5)


@register_jitable(inline="always")
def _a(y0, y1, y2, y3):
    """A y (the adjoint of _at): 6 entries from 4 output gradients."""
    return (y0, y0 + y1 + y2 + y3, y0 - y1 + y2 - y3, y0 + _2 * y1 + _4 * y2 + _8 * y3,
            y0 - _2 * y1 + _4 * y2 - _8 * y3, y3)


@register_jitable(inline="always")
def _put6(tmp, e, tw, v):
    """tmp[e + i, tw] = v[i] for the 6 entries of one row of a transformed tile."""
    tmp[e, tw], tmp[e + 1, tw], tmp[e + 2, tw] = v[0], v[1], v[2]
    tmp[e + 3, tw], tmp[e + 4, tw], tmp[e + 5, tw] = v[3], v[4], v[5]


@register_jitable(inline="always")
def _put4(ybuf, r, j, b, v):
    """ybuf[r, j + i] = b + v[i]: one row of a 4x4 output tile, with the bias."""
    ybuf[r, j], ybuf[r, j + 1], ybuf[r, j + 2], ybuf[r, j + 3] = b + v[0], b + v[1], b + v[2], b + v[3]


@njit(cache=True, nogil=True)
def winograd4_weights(weight, U):
    """U[6*a + b, k, c] = (G g G^T)[a, b] for g = weight[k, c] (3x3), formed in float64."""
    K, C = weight.shape[0], weight.shape[1]
    t = np.empty((6, 3))
    for k in range(K):
        for c in range(C):
            g = weight[k, c]
            for j in range(3):          # t = G g
                g0, g1, g2 = float(g[0, j]), float(g[1, j]), float(g[2, j])
                t[0, j], t[5, j] = g0 / 4, g2
                t[1, j], t[2, j] = -(g0 + g1 + g2) / 6, -(g0 - g1 + g2) / 6
                t[3, j], t[4, j] = g0 / 24 + g1 / 12 + g2 / 6, g0 / 24 - g1 / 12 + g2 / 6
            for a in range(6):          # U = t G^T
                t0, t1, t2 = t[a, 0], t[a, 1], t[a, 2]
                U[a * 6 + 0, k, c], U[a * 6 + 5, k, c] = t0 / 4, t2
                U[a * 6 + 1, k, c], U[a * 6 + 2, k, c] = -(t0 + t1 + t2) / 6, -(t0 - t1 + t2) / 6
                U[a * 6 + 3, k, c] = t0 / 24 + t1 / 12 + t2 / 6
                U[a * 6 + 4, k, c] = t0 / 24 - t1 / 12 + t2 / 6


@njit(cache=True, nogil=True)
def winograd4_inputs(inp, V, PH, PW, TH, TW):
    """V[e, c, (n*TH + th)*TW + tw] = (B^T d B)[e] for d the 6x6 tile of image n, channel c at
    rows 4*th - PH.., columns 4*tw - PW.. (zero outside the image), through a zero-padded plane
    and a row of tiles in tmp (36, TW), as winograd.winograd_inputs does."""
    N, C, H, W = inp.shape
    Hx, Wx = 4 * TH + 2, 4 * TW + 2
    xp = np.zeros((Hx, Wx), V.dtype)
    tmp = np.empty((36, TW), V.dtype)
    for n in range(N):
        for c in range(C):
            copy_into(inp[n, c], xp, PH, PW)
            for th in range(TH):
                i = 4 * th
                for tw in range(TW):
                    j = 4 * tw
                    c0 = _bt(xp[i, j], xp[i + 1, j], xp[i + 2, j], xp[i + 3, j], xp[i + 4, j], xp[i + 5, j])
                    c1 = _bt(xp[i, j + 1], xp[i + 1, j + 1], xp[i + 2, j + 1], xp[i + 3, j + 1], xp[i + 4, j + 1],
                             xp[i + 5, j + 1])
                    c2 = _bt(xp[i, j + 2], xp[i + 1, j + 2], xp[i + 2, j + 2], xp[i + 3, j + 2], xp[i + 4, j + 2],
                             xp[i + 5, j + 2])
                    c3 = _bt(xp[i, j + 3], xp[i + 1, j + 3], xp[i + 2, j + 3], xp[i + 3, j + 3], xp[i + 4, j + 3],
                             xp[i + 5, j + 3])
                    c4 = _bt(xp[i, j + 4], xp[i + 1, j + 4], xp[i + 2, j + 4], xp[i + 3, j + 4], xp[i + 4, j + 4],
                             xp[i + 5, j + 4])
                    c5 = _bt(xp[i, j + 5], xp[i + 1, j + 5], xp[i + 2, j + 5], xp[i + 3, j + 5], xp[i + 4, j + 5],
                             xp[i + 5, j + 5])
                    # the rows of B^T d, each times B
                    _put6(tmp, 0, tw, _bt(c0[0], c1[0], c2[0], c3[0], c4[0], c5[0]))
                    _put6(tmp, 6, tw, _bt(c0[1], c1[1], c2[1], c3[1], c4[1], c5[1]))
                    _put6(tmp, 12, tw, _bt(c0[2], c1[2], c2[2], c3[2], c4[2], c5[2]))
                    _put6(tmp, 18, tw, _bt(c0[3], c1[3], c2[3], c3[3], c4[3], c5[3]))
                    _put6(tmp, 24, tw, _bt(c0[4], c1[4], c2[4], c3[4], c4[4], c5[4]))
                    _put6(tmp, 30, tw, _bt(c0[5], c1[5], c2[5], c3[5], c4[5], c5[5]))
                store_rows(tmp, V, c, (n * TH + th) * TW)


@njit(cache=True, nogil=True)
def winograd4_outputs(M, out, bias, TH, TW):
    """out[n, k, 4*th + r, 4*tw + s] = bias[k] + (A^T m A)[r, s] for m = M[:, k, tile] (6x6),
    inside the image; bias may be empty. A row of tiles through tmp (36, TW) and ybuf (4, 4*TW)."""
    N, K, OH, OW = out.shape
    has_bias = bias.shape[0] > 0
    tmp = np.empty((36, TW), M.dtype)
    ybuf = np.empty((4, 4 * TW), M.dtype)
    for n in range(N):
        for k in range(K):
            b = bias[k] if has_bias else 0.0
            y = out[n, k]
            for th in range(TH):
                load_rows(M, k, (n * TH + th) * TW, tmp)
                for tw in range(TW):
                    r0 = _at(tmp[0, tw], tmp[6, tw], tmp[12, tw], tmp[18, tw], tmp[24, tw], tmp[30, tw])
                    r1 = _at(tmp[1, tw], tmp[7, tw], tmp[13, tw], tmp[19, tw], tmp[25, tw], tmp[31, tw])
                    r2 = _at(tmp[2, tw], tmp[8, tw], tmp[14, tw], tmp[20, tw], tmp[26, tw], tmp[32, tw])
                    r3 = _at(tmp[3, tw], tmp[9, tw], tmp[15, tw], tmp[21, tw], tmp[27, tw], tmp[33, tw])
                    r4 = _at(tmp[4, tw], tmp[10, tw], tmp[16, tw], tmp[22, tw], tmp[28, tw], tmp[34, tw])
                    r5 = _at(tmp[5, tw], tmp[11, tw], tmp[17, tw], tmp[23, tw], tmp[29, tw], tmp[35, tw])
                    # the rows of A^T m, each times A
                    _put4(ybuf, 0, 4 * tw, b, _at(r0[0], r1[0], r2[0], r3[0], r4[0], r5[0]))
                    _put4(ybuf, 1, 4 * tw, b, _at(r0[1], r1[1], r2[1], r3[1], r4[1], r5[1]))
                    _put4(ybuf, 2, 4 * tw, b, _at(r0[2], r1[2], r2[2], r3[2], r4[2], r5[2]))
                    _put4(ybuf, 3, 4 * tw, b, _at(r0[3], r1[3], r2[3], r3[3], r4[3], r5[3]))
                copy_into(ybuf, y, 4 * th, 0)


@njit(cache=True, nogil=True)
def winograd4_output_grads(dout, Y, TH, TW):
    """The adjoint of winograd4_outputs: Y[e, k, (n*TH + th)*TW + tw] = (A dy A^T)[e] for dy the
    4x4 tile of dout[n, k] at (4*th, 4*tw) (zero outside the image)."""
    N, K, OH, OW = dout.shape
    yp = np.zeros((4 * TH, 4 * TW), Y.dtype)
    tmp = np.empty((36, TW), Y.dtype)
    for n in range(N):
        for k in range(K):
            copy_into(dout[n, k], yp, 0, 0)
            for th in range(TH):
                i = 4 * th
                for tw in range(TW):
                    j = 4 * tw
                    c0 = _a(yp[i, j], yp[i + 1, j], yp[i + 2, j], yp[i + 3, j])           # A dy, column by column
                    c1 = _a(yp[i, j + 1], yp[i + 1, j + 1], yp[i + 2, j + 1], yp[i + 3, j + 1])
                    c2 = _a(yp[i, j + 2], yp[i + 1, j + 2], yp[i + 2, j + 2], yp[i + 3, j + 2])
                    c3 = _a(yp[i, j + 3], yp[i + 1, j + 3], yp[i + 2, j + 3], yp[i + 3, j + 3])
                    # the rows of A dy, each times A^T
                    _put6(tmp, 0, tw, _a(c0[0], c1[0], c2[0], c3[0]))
                    _put6(tmp, 6, tw, _a(c0[1], c1[1], c2[1], c3[1]))
                    _put6(tmp, 12, tw, _a(c0[2], c1[2], c2[2], c3[2]))
                    _put6(tmp, 18, tw, _a(c0[3], c1[3], c2[3], c3[3]))
                    _put6(tmp, 24, tw, _a(c0[4], c1[4], c2[4], c3[4]))
                    _put6(tmp, 30, tw, _a(c0[5], c1[5], c2[5], c3[5]))
                store_rows(tmp, Y, k, (n * TH + th) * TW)


@njit(cache=True, nogil=True)
def winograd4_weight_grads(dU, dweight):
    """The adjoint of winograd4_weights: dweight[k, c] += G^T dU[:, k, c] G (6x6 -> 3x3), in float64."""
    K, C = dweight.shape[0], dweight.shape[1]
    t = np.empty((3, 6))
    for k in range(K):
        for c in range(C):
            for b in range(6):          # t = G^T dU
                u0, u1, u2 = float(dU[b, k, c]), float(dU[6 + b, k, c]), float(dU[12 + b, k, c])
                u3, u4, u5 = float(dU[18 + b, k, c]), float(dU[24 + b, k, c]), float(dU[30 + b, k, c])
                t[0, b] = u0 / 4 - (u1 + u2) / 6 + (u3 + u4) / 24
                t[1, b] = (u2 - u1) / 6 + (u3 - u4) / 12
                t[2, b] = (u3 + u4 - u1 - u2) / 6 + u5
            for i in range(3):          # dg = t G
                s0, s1, s2, s3, s4, s5 = t[i, 0], t[i, 1], t[i, 2], t[i, 3], t[i, 4], t[i, 5]
                dweight[k, c, i, 0] += s0 / 4 - (s1 + s2) / 6 + (s3 + s4) / 24
                dweight[k, c, i, 1] += (s2 - s1) / 6 + (s3 - s4) / 12
                dweight[k, c, i, 2] += (s3 + s4 - s1 - s2) / 6 + s5
