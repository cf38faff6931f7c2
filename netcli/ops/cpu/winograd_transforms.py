"""The transforms of Winograd F(m x m, k x k) (Lavin & Gray, 2015) for F(2x2, 3x3), F(4x4, 3x3)
and F(2x2, 5x5), channels last: V = B^T d B for each r x r input tile d (r = m + k - 1),
U = G g G^T for each k x k filter g, and y = A^T M A for each tile of products M;
netcli/ops/cpu/winograd.py runs them (its docstring: the GEMMs, the backward, the chunks). A
transformed array's position e = r*a + b holds entry (a, b) of the tile. Layouts: inp, out
(n, C, H, W); V (E, tiles, C), M and Y (E, tiles, K), U (E, C, K), E = r^2, tiles counted
(n*TH + th)*TW + tw.

The matrices come from the Toom-Cook construction on the points 0, 1, -1, 2, -2 (as many as
r - 1 needs) and infinity (`toom_cook`): A^T[i, j] = p_j^i, G[j, :] = (p_j^0 .. p_j^(k-1)) / f_j
with f_j = prod over l != j of (p_j - p_l), B^T = the inverse of the points' Vandermonde matrix,
transposed, row j times f_j; each with a last row or column for infinity. F(2x2, 3x3):

    B^T = [-1  0 1 0]   G = [ -1    0   0]   A^T = [1 1  1 0]
          [ 0  1 1 0]       [1/2  1/2 1/2]         [0 1 -1 1]
          [ 0 -1 1 0]       [1/2 -1/2 1/2]
          [ 0 -1 0 1]       [  0    0   1]

F(4x4, 3x3) and F(2x2, 5x5) share their 6x6 B^T (points 0, +-1, +-2): [4 0 -5 0 1 0],
[0 -4 -4 1 1 0], [0 4 -4 -1 1 0], [0 -2 -1 2 1 0], [0 2 -1 -2 1 0], [0 4 0 -5 0 1]. Their
coefficients up to 8 make the sums larger than F(2x2, 3x3)'s: float32 results differ from a
direct convolution by a few units in the 6th digit (tests/ops/test_winograd.py bounds them).

Why channels last: a row of tiles is then one run of TW*C numbers per entry e, so each step of a
transform is a loop over hundreds of contiguous numbers that LLVM vectorises (`_mix`), where the
channels-first kernels ran one tile at a time in scalar code; and the GEMMs become V (T, C) @
U (C, K), which OpenBLAS runs faster than U (K, C) @ V (C, T) with C = 16-64. The image goes
into a zero-padded channels-last plane (padded, m phases of columns: column x at [x % m, x // m]),
so that the column jj of every tile of a row is one run (phase jj % m, moved by jj // m tiles).
Against the channels-first kernels they replaced (one thread, AMD EPYC Zen 5, best of 15 in each
of two alternating runs; forward / backward of a whole call, with winograd.py's blocks): ResNet-20's
16 ch 32x32, 32 images, 4.7 -> 3.1 ms / 8.7 -> 4.4 ms; 32 ch 16x16 3.0 -> 1.8 / 5.4 -> 3.1; 64 ch
8x8 2.2 -> 1.6 / 4.1 -> 3.3; F(4x4): 64 ch 56x56, 8 images, 18.2 -> 11.4 / 31.0 -> 21.8; 128 ch
28x28, 16 images, 25.5 -> 18.6 / 45.5 -> 40.3. The input transform alone, 16 ch 32x32, 32
images: 1.36 -> 0.80 ms."""
import functools
import math
from fractions import Fraction

import numpy as np
from numba import njit
from numba.extending import register_jitable

POINTS = (0, 1, -1, 2, -2)


@functools.lru_cache(maxsize=None)
def toom_cook(m, k):
    """(B^T (r, r), G (r, k), A^T (m, r)) of F(m x m, k x k), r = m + k - 1, in float64, from the
    first r - 1 POINTS and infinity (exact: computed in fractions)."""
    r = m + k - 1
    p = [Fraction(x) for x in POINTS[:r - 1]]
    f = [math.prod(pj - pl for pl in p if pl != pj) for pj in p]
    at = [[pj ** i for pj in p] + [int(i == m - 1)] for i in range(m)]
    g = [[pj ** j / fj for j in range(k)] for pj, fj in zip(p, f)] + [[int(j == k - 1) for j in range(k)]]
    vandermonde = [[pj ** i for i in range(r)] for pj in p] + [[int(i == r - 1) for i in range(r)]]
    inverse = _inverse(vandermonde)
    bt = [[inverse[i][j] * (f[j] if j < r - 1 else 1) for i in range(r)] for j in range(r)]
    return tuple(np.array(x, np.float64) for x in (bt, g, at))


def _inverse(a):
    """The inverse of a square matrix of Fractions, by Gauss-Jordan elimination."""
    n = len(a)
    rows = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(a)]
    for c in range(n):
        pivot = next(i for i in range(c, n) if rows[i][c] != 0)
        rows[c], rows[pivot] = rows[pivot], rows[c]
        rows[c] = [x / rows[c][c] for x in rows[c]]
        for i in range(n):
            if i != c and rows[i][c] != 0:
                rows[i] = [x - rows[i][c] * y for x, y in zip(rows[i], rows[c])]
    return [row[n:] for row in rows]


def sums(matrix, dtype):
    """A matrix's rows as passes for _mix: (terms (rows, passes, 2) int64, coefs (rows, passes, 2)
    in the data's type): each pass adds coefs[.., 0] * term 0 + coefs[.., 1] * term 1 (the
    nonzero entries of the row, in order, two at a time; term -1: none)."""
    rows = [[(j, c) for j, c in enumerate(row) if c != 0] for row in matrix]
    passes = max((len(r) + 1) // 2 for r in rows)
    terms, coefs = np.full((len(rows), passes, 2), -1, np.int64), np.zeros((len(rows), passes, 2), dtype)
    for i, r in enumerate(rows):
        for t, (j, c) in enumerate(r):
            terms[i, t // 2, t % 2], coefs[i, t // 2, t % 2] = j, c
    return terms, coefs


@register_jitable(inline="always")
def _mix(dst, src, i0, di, j0, dj, s0, shift, matrix, row):
    """dst[u] = sum over j of matrix[row, j] * src[i0 + di*j, j0 + dj*j, s0 + shift[j] + u] for
    u < len(dst), `matrix` as `sums` gives it: one loop over dst per pass, over contiguous numbers,
    that LLVM vectorises (src is a C-contiguous 3-D array)."""
    terms, coefs = matrix
    n = dst.shape[0]
    for q in range(terms.shape[1]):
        j, k = terms[row, q, 0], terms[row, q, 1]
        if j < 0:
            break
        c0, a0 = coefs[row, q, 0], src[i0 + di * j, j0 + dj * j, s0 + shift[j]:s0 + shift[j] + n]
        if k >= 0:
            c1, a1 = coefs[row, q, 1], src[i0 + di * k, j0 + dj * k, s0 + shift[k]:s0 + shift[k] + n]
            if q == 0:
                for u in range(n):
                    dst[u] = c0 * a0[u] + c1 * a1[u]
            else:
                for u in range(n):
                    dst[u] += c0 * a0[u] + c1 * a1[u]
        elif q == 0:
            for u in range(n):
                dst[u] = c0 * a0[u]
        else:
            for u in range(n):
                dst[u] += c0 * a0[u]


@register_jitable(inline="always")
def _into_phases(plane, xp, PH, PW, mask, shift, c, C):
    """xp[PH + h, x & mask, (x >> shift)*C + c] = plane[h, w] for x = PW + w: a plane (channel c
    of C) into m = mask + 1 phases of columns, channels last."""
    for h in range(plane.shape[0]):
        row = plane[h]
        for w in range(plane.shape[1]):
            x = w + PW
            xp[h + PH, x & mask, (x >> shift) * C + c] = row[w]


@register_jitable(inline="always")
def _from_phases(y, orow, k, K, b, mask, shift):
    """orow[x] = b + y[x & mask, (x >> shift)*K + k] for every x of orow: channel k of K from a
    row in m = mask + 1 phases of columns, channels last."""
    for x in range(orow.shape[0]):
        orow[x] = b + y[x & mask, (x >> shift) * K + k]


@njit(cache=True, nogil=True)
def winograd_weights(weight, U, G):
    """U[e, i, o] = (G g G^T)[e] for g = weight[o, i] (k x k), formed in float64, for all o at
    once (loops over o that LLVM vectorises; against one filter at a time, 64 x 64 filters, one
    thread: F(4x4, 3x3) 0.57 -> 0.05 ms, F(2x2, 3x3) 0.17 -> 0.03 ms; winograd_weight_grads
    1.5 -> 0.09 ms and 0.52 -> 0.06 ms)."""
    O, I = weight.shape[0], weight.shape[1]
    r, k = G.shape[0], G.shape[1]
    g = np.empty((k * k, O))
    t = np.empty((r, k, O))
    for i in range(I):
        for o in range(O):
            for x in range(k * k):
                g[x, o] = weight[o, i, x // k, x % k]
        for a in range(r):              # t = G g
            for j in range(k):
                ta = t[a, j]
                ta[:] = 0.0
                for x in range(k):
                    c, gx = G[a, x], g[x * k + j]
                    for o in range(O):
                        ta[o] += c * gx[o]
        for a in range(r):              # U = t G^T
            for b in range(r):
                u = U[a * r + b, i]
                u[:] = 0.0
                for x in range(k):
                    c, tx = G[b, x], t[a, x]
                    for o in range(O):
                        u[o] += tx[o] * c


@njit(cache=True, nogil=True)
def winograd_weight_grads(dU, dweight, G):
    """The adjoint of winograd_weights: dweight[o, i] += G^T dU[:, i, o] G (r x r -> k x k), in
    float64, for all o at once."""
    O, I = dweight.shape[0], dweight.shape[1]
    r, k = G.shape[0], G.shape[1]
    t = np.empty((k, r, O))
    d = np.empty((k * k, O))
    for i in range(I):
        for a in range(k):              # t = G^T dU
            for b in range(r):
                ta = t[a, b]
                ta[:] = 0.0
                for e in range(r):
                    c, du = G[e, a], dU[e * r + b, i]
                    for o in range(O):
                        ta[o] += c * du[o]
        for a in range(k):              # dg = t G
            for b in range(k):
                da = d[a * k + b]
                da[:] = 0.0
                for e in range(r):
                    c, te = G[e, b], t[a, e]
                    for o in range(O):
                        da[o] += te[o] * c
        for o in range(O):
            for x in range(k * k):
                dweight[o, i, x // k, x % k] += d[x, o]


@njit(cache=True, nogil=True)
def winograd_inputs(inp, V, t0, PH, PW, TH, TW, m, BT):
    """V[r*a + b, t0 + (n*TH + th)*TW + tw, c] = (B^T d B)[a, b] for d the r x r tile of
    image n, channel c at rows m*th - PH.., columns m*tw - PW.. (zero outside the image). The
    image goes into the padded plane xp (rows, phase, column // m, channel) first; then for each
    row of tiles z = B^T (its r rows), phase by phase, and V's rows = z B, entry by entry."""
    N, C, H, W = inp.shape
    r = BT[0].shape[0]
    groups = TW + (r - 1) // m                     # columns // m of the padded plane
    L, TC = groups * C, TW * C
    xp = np.zeros((m * TH + r - m, m, groups, C), V.dtype)
    xf = xp.reshape(m * TH + r - m, m, L)
    z = np.empty((r, 1, m * L), V.dtype)           # B^T d for a row of tiles: (a, phase, column // m, c)
    V2 = V.reshape(V.shape[0], -1)
    column = (np.arange(r) % m) * L + (np.arange(r) // m) * C    # where a tile's column j starts in z[a]
    none = np.zeros(r, np.int64)
    for n in range(N):
        for c in range(C):
            if m == 2:          # (constant masks: LLVM then makes the copy 2x faster)
                _into_phases(inp[n, c], xf, PH, PW, 1, 1, c, C)
            else:
                _into_phases(inp[n, c], xf, PH, PW, 3, 2, c, C)
        for th in range(TH):
            for p in range(m):
                for a in range(r):
                    _mix(z[a, 0, p * L:(p + 1) * L], xf, m * th, 1, p, 0, 0, none, BT, a)
            o = (t0 + (n * TH + th) * TW) * C
            for a in range(r):
                for b in range(r):
                    _mix(V2[a * r + b, o:o + TC], z, a, 0, 0, 0, 0, column, BT, b)


@njit(cache=True, nogil=True)
def winograd_outputs(M, out, bias, TH, TW, r, AT):
    """out[n, k, m*th + i, m*tw + j] = bias[k] + (A^T M A)[i, j] for M the tile's entries
    M[:, tile, k], inside the image; bias may be empty. For each row of tiles: q = M A (entry
    rows a, output columns j), y = A^T q, then y goes into the image, channels first."""
    N, K, OH, OW = out.shape
    m = AT[0].shape[0]
    TK = TW * K
    has_bias = bias.shape[0] > 0
    q = np.empty((m, r, TK), M.dtype)
    y = np.empty((m, m, TK), M.dtype)
    M3 = M.reshape(M.shape[0], 1, -1)
    none = np.zeros(r, np.int64)
    for n in range(N):
        for th in range(TH):
            o = (n * TH + th) * TK
            for a in range(r):
                for j in range(m):
                    _mix(q[j, a], M3, a * r, 1, 0, 0, o, none, AT, j)
            for i in range(m):
                for j in range(m):
                    _mix(y[i, j], q, j, 0, 0, 1, 0, none, AT, i)
            for k in range(K):
                b = bias[k] if has_bias else 0.0
                for i in range(min(m, OH - m * th)):
                    if m == 2:
                        _from_phases(y[i], out[n, k, m * th + i], k, K, b, 1, 1)
                    else:
                        _from_phases(y[i], out[n, k, m * th + i], k, K, b, 3, 2)


@njit(cache=True, nogil=True)
def winograd_output_grads(dout, Y, TH, TW, m, A):
    """The adjoint of winograd_outputs: Y[r*a + b, (n*TH + th)*TW + tw, k] = (A dy A^T)[a, b]
    for dy the m x m tile of dout[n, k] at (m*th, m*tw) (zero outside the image). For each row of
    tiles: dy into yp (output row i, column j, tw*K + k), w = A dy, Y's rows = w A^T."""
    N, K, OH, OW = dout.shape
    r = A[0].shape[0]
    TK = TW * K
    yp = np.zeros((m, m, TK), Y.dtype)
    w = np.empty((r, m, TK), Y.dtype)
    Y2 = Y.reshape(Y.shape[0], -1)
    none = np.zeros(m, np.int64)
    for n in range(N):
        for th in range(TH):
            for k in range(K):
                for i in range(m):
                    if m * th + i < OH and m == 2:
                        _into_phases(dout[n, k, m * th + i:m * th + i + 1], yp[i:i + 1], 0, 0, 1, 1, k, K)
                    elif m * th + i < OH:
                        _into_phases(dout[n, k, m * th + i:m * th + i + 1], yp[i:i + 1], 0, 0, 3, 2, k, K)
                    else:
                        for j in range(m):
                            for tw in range(TW):
                                yp[i, j, tw * K + k] = 0.0
            for a in range(r):
                for j in range(m):
                    _mix(w[a, j], yp, 0, 1, j, 0, 0, none, A, a)
            o = (n * TH + th) * TK
            for a in range(r):
                for b in range(r):
                    _mix(Y2[a * r + b, o:o + TK], w, a, 0, 0, 1, 0, none, A, b)
