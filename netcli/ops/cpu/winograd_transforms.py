"""The transforms of Winograd F(m x m, k x k) (Lavin & Gray, 2015) for F(2x2, 3x3), F(4x4, 3x3)
and F(4x4, 5x5), channels last: V = B^T d B for each r x r input tile d (r = m + k - 1) and
y = A^T M A for each tile of products M (the filters' U = G g G^T: winograd_filters.py);
netcli/ops/cpu/winograd.py runs them (its docstring: the GEMMs, the backward, the chunks). A
transformed array's position e = r*a + b holds entry (a, b) of the tile. Layouts: inp, out
(n, C, H, W); V (E, tiles, C), M and Y (E, tiles, K), U (E, C, K), E = r^2, tiles counted
(n*TH + th)*TW + tw.

The matrices come from the Toom-Cook construction on the points 0, 1, -1, 2, -2, 1/2, -1/2 (as
many as r - 1 needs) and infinity (`toom_cook`): A^T[i, j] = p_j^i, G[j, :] = (p_j^0 .. p_j^(k-1)) / f_j
with f_j = prod over l != j of (p_j - p_l), B^T = the inverse of the points' Vandermonde matrix,
transposed, row j times f_j; each with a last row or column for infinity. F(2x2, 3x3):

    B^T = [-1  0 1 0]   G = [ -1    0   0]   A^T = [1 1  1 0]
          [ 0  1 1 0]       [1/2  1/2 1/2]         [0 1 -1 1]
          [ 0 -1 1 0]       [1/2 -1/2 1/2]
          [ 0 -1 0 1]       [  0    0   1]

F(4x4, 3x3)'s 6x6 B^T (points 0, +-1, +-2): [4 0 -5 0 1 0], [0 -4 -4 1 1 0], [0 4 -4 -1 1 0],
[0 -2 -1 2 1 0], [0 2 -1 -2 1 0], [0 4 0 -5 0 1]; F(4x4, 5x5)'s 8x8 (and +-1/2) in _bt8. Their
coefficients up to 8 make the sums larger than F(2x2, 3x3)'s: float32 results differ from a
direct convolution by a few units in the 6th digit (tests/ops/test_winograd.py bounds them).
Every coefficient is a power of two times a small integer, exact in float32.

Why channels last: a row of tiles is then one run of TW*C numbers per entry e, so each step of a
transform is a loop over hundreds of contiguous numbers that LLVM vectorises (`ROWS`), where the
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

from .transpose import BLOCK, aliased, from_channels_last, steps, through_buffer, to_channels_last

POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))


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


# The matrices' products, written out with the sums they share (ROWS, below): input row j is
# x[xb + xo[j]:][:n], output row i y[yb + yo[i]:][:n] (x and y 1-D, apart), one loop over the n
# contiguous numbers of all rows at once, reading each input row once. Against one pass per pair
# of a row's terms (the general form they replaced), F(4x4, 3x3), 32 images of 16 channels at
# 32x32, one thread, AMD EPYC Zen 4, best of 15: input transform 0.99 -> 0.60 ms (0.39 of it was
# the copy into the channels-last plane, since cut: _into_phases), output transform 0.65 -> 0.47,
# output gradient's 0.66 -> 0.49; forward 2.08 -> 1.55-1.60, backward 3.34 -> 2.74-2.93 (3 runs).
# Inlined into their callers (inline="always") they were 3-5% faster still but took 2.3x the
# compile time (7 -> 19 s cold for float32). The constants are float32 (exact), so that float32
# data stays float32 (float64 constants turned the loops into float64 with conversions: 1.8x
# slower).
_TWO, _FOUR, _FIVE, _EIGHT = np.float32(2.0), np.float32(4.0), np.float32(5.0), np.float32(8.0)
_HALF, _QUARTER, _EIGHTH = np.float32(0.5), np.float32(0.25), np.float32(0.125)
_5_4, _17_4, _21_4, _5_2 = np.float32(1.25), np.float32(4.25), np.float32(5.25), np.float32(2.5)


@register_jitable(inline="always")
def _row(a, base, offsets, j, n):
    s = base + offsets[j]
    return a[s:s + n]


@register_jitable
def _bt4(x, xb, xo, y, yb, yo, n):
    """[-1 0 1 0] [0 1 1 0] [0 -1 1 0] [0 -1 0 1]"""
    x0, x1, x2, x3 = _row(x, xb, xo, 0, n), _row(x, xb, xo, 1, n), _row(x, xb, xo, 2, n), _row(x, xb, xo, 3, n)
    y0, y1, y2, y3 = _row(y, yb, yo, 0, n), _row(y, yb, yo, 1, n), _row(y, yb, yo, 2, n), _row(y, yb, yo, 3, n)
    for u in range(n):
        a, b, c, d = x0[u], x1[u], x2[u], x3[u]
        y0[u], y1[u], y2[u], y3[u] = c - a, b + c, c - b, d - b


@register_jitable
def _bt6(x, xb, xo, y, yb, yo, n):
    """[4 0 -5 0 1 0] [0 -4 -4 1 1 0] [0 4 -4 -1 1 0] [0 -2 -1 2 1 0] [0 2 -1 -2 1 0] [0 4 0 -5 0 1]"""
    x0, x1, x2, x3 = _row(x, xb, xo, 0, n), _row(x, xb, xo, 1, n), _row(x, xb, xo, 2, n), _row(x, xb, xo, 3, n)
    x4, x5 = _row(x, xb, xo, 4, n), _row(x, xb, xo, 5, n)
    y0, y1, y2, y3 = _row(y, yb, yo, 0, n), _row(y, yb, yo, 1, n), _row(y, yb, yo, 2, n), _row(y, yb, yo, 3, n)
    y4, y5 = _row(y, yb, yo, 4, n), _row(y, yb, yo, 5, n)
    for u in range(n):
        a1, a2, a3, a4 = x1[u], x2[u], x3[u], x4[u]
        p, q, s, t = a4 - _FOUR * a2, a3 - _FOUR * a1, a4 - a2, _TWO * (a3 - a1)
        y0[u] = _FOUR * x0[u] - _FIVE * a2 + a4
        y1[u], y2[u], y3[u], y4[u] = p + q, p - q, s + t, s - t
        y5[u] = _FOUR * a1 - _FIVE * a3 + x5[u]


@register_jitable
def _bt8(x, xb, xo, y, yb, yo, n):
    """[-1 0 21/4 0 -21/4 0 1 0] [0 1 1 -17/4 -17/4 1 1 0] [0 -1 1 17/4 -17/4 -1 1 0]
    [0 1/2 1/4 -5/2 -5/4 2 1 0] [0 -1/2 1/4 5/2 -5/4 -2 1 0] [0 2 4 -5/2 -5 1/2 1 0]
    [0 -2 4 5/2 -5 -1/2 1 0] [0 -1 0 21/4 0 -21/4 0 1]"""
    x0, x1, x2, x3 = _row(x, xb, xo, 0, n), _row(x, xb, xo, 1, n), _row(x, xb, xo, 2, n), _row(x, xb, xo, 3, n)
    x4, x5, x6, x7 = _row(x, xb, xo, 4, n), _row(x, xb, xo, 5, n), _row(x, xb, xo, 6, n), _row(x, xb, xo, 7, n)
    y0, y1, y2, y3 = _row(y, yb, yo, 0, n), _row(y, yb, yo, 1, n), _row(y, yb, yo, 2, n), _row(y, yb, yo, 3, n)
    y4, y5, y6, y7 = _row(y, yb, yo, 4, n), _row(y, yb, yo, 5, n), _row(y, yb, yo, 6, n), _row(y, yb, yo, 7, n)
    for u in range(n):
        a1, a2, a3, a4, a5, a6 = x1[u], x2[u], x3[u], x4[u], x5[u], x6[u]
        y0[u] = a6 - x0[u] + _21_4 * (a2 - a4)
        y7[u] = x7[u] - a1 + _21_4 * (a3 - a5)
        p, q = a2 + a6 - _17_4 * a4, a1 + a5 - _17_4 * a3
        y1[u], y2[u] = p + q, p - q
        p, q = _QUARTER * a2 - _5_4 * a4 + a6, _HALF * a1 - _5_2 * a3 + _TWO * a5
        y3[u], y4[u] = p + q, p - q
        p, q = _FOUR * a2 - _FIVE * a4 + a6, _TWO * a1 - _5_2 * a3 + _HALF * a5
        y5[u], y6[u] = p + q, p - q


@register_jitable
def _at24(x, xb, xo, y, yb, yo, n):
    """[1 1 1 0] [0 1 -1 1]"""
    x0, x1, x2, x3 = _row(x, xb, xo, 0, n), _row(x, xb, xo, 1, n), _row(x, xb, xo, 2, n), _row(x, xb, xo, 3, n)
    y0, y1 = _row(y, yb, yo, 0, n), _row(y, yb, yo, 1, n)
    for u in range(n):
        b, c = x1[u], x2[u]
        y0[u], y1[u] = x0[u] + b + c, b - c + x3[u]


@register_jitable
def _at46(x, xb, xo, y, yb, yo, n):
    """[1 1 1 1 1 0] [0 1 -1 2 -2 0] [0 1 1 4 4 0] [0 1 -1 8 -8 1]"""
    x0, x1, x2, x3 = _row(x, xb, xo, 0, n), _row(x, xb, xo, 1, n), _row(x, xb, xo, 2, n), _row(x, xb, xo, 3, n)
    x4, x5 = _row(x, xb, xo, 4, n), _row(x, xb, xo, 5, n)
    y0, y1, y2, y3 = _row(y, yb, yo, 0, n), _row(y, yb, yo, 1, n), _row(y, yb, yo, 2, n), _row(y, yb, yo, 3, n)
    for u in range(n):
        s, d, S, D = x1[u] + x2[u], x1[u] - x2[u], x3[u] + x4[u], x3[u] - x4[u]
        y0[u], y1[u] = x0[u] + s + S, d + _TWO * D
        y2[u], y3[u] = s + _FOUR * S, d + _EIGHT * D + x5[u]


@register_jitable
def _at48(x, xb, xo, y, yb, yo, n):
    """[1 1 1 1 1 1 1 0] [0 1 -1 2 -2 1/2 -1/2 0] [0 1 1 4 4 1/4 1/4 0] [0 1 -1 8 -8 1/8 -1/8 1]"""
    x0, x1, x2, x3 = _row(x, xb, xo, 0, n), _row(x, xb, xo, 1, n), _row(x, xb, xo, 2, n), _row(x, xb, xo, 3, n)
    x4, x5, x6, x7 = _row(x, xb, xo, 4, n), _row(x, xb, xo, 5, n), _row(x, xb, xo, 6, n), _row(x, xb, xo, 7, n)
    y0, y1, y2, y3 = _row(y, yb, yo, 0, n), _row(y, yb, yo, 1, n), _row(y, yb, yo, 2, n), _row(y, yb, yo, 3, n)
    for u in range(n):
        s, d, S, D = x1[u] + x2[u], x1[u] - x2[u], x3[u] + x4[u], x3[u] - x4[u]
        s2, d2 = x5[u] + x6[u], x5[u] - x6[u]
        y0[u], y1[u] = x0[u] + s + S + s2, d + _TWO * D + _HALF * d2
        y2[u], y3[u] = s + _FOUR * S + _QUARTER * s2, d + _EIGHT * D + _EIGHTH * d2 + x7[u]


@register_jitable
def _a24(x, xb, xo, y, yb, yo, n):
    """[1 0] [1 1] [1 -1] [0 1]"""
    x0, x1 = _row(x, xb, xo, 0, n), _row(x, xb, xo, 1, n)
    y0, y1, y2, y3 = _row(y, yb, yo, 0, n), _row(y, yb, yo, 1, n), _row(y, yb, yo, 2, n), _row(y, yb, yo, 3, n)
    for u in range(n):
        a, b = x0[u], x1[u]
        y0[u], y1[u], y2[u], y3[u] = a, a + b, a - b, b


@register_jitable
def _a46(x, xb, xo, y, yb, yo, n):
    """[1 0 0 0] [1 1 1 1] [1 -1 1 -1] [1 2 4 8] [1 -2 4 -8] [0 0 0 1]"""
    x0, x1, x2, x3 = _row(x, xb, xo, 0, n), _row(x, xb, xo, 1, n), _row(x, xb, xo, 2, n), _row(x, xb, xo, 3, n)
    y0, y1, y2, y3 = _row(y, yb, yo, 0, n), _row(y, yb, yo, 1, n), _row(y, yb, yo, 2, n), _row(y, yb, yo, 3, n)
    y4, y5 = _row(y, yb, yo, 4, n), _row(y, yb, yo, 5, n)
    for u in range(n):
        a, d = x0[u], x3[u]
        e, o = a + x2[u], x1[u] + d
        e2, o2 = a + _FOUR * x2[u], _TWO * x1[u] + _EIGHT * d
        y0[u], y1[u], y2[u], y3[u], y4[u], y5[u] = a, e + o, e - o, e2 + o2, e2 - o2, d


@register_jitable
def _a48(x, xb, xo, y, yb, yo, n):
    """[1 0 0 0] [1 1 1 1] [1 -1 1 -1] [1 2 4 8] [1 -2 4 -8] [1 1/2 1/4 1/8] [1 -1/2 1/4 -1/8] [0 0 0 1]"""
    x0, x1, x2, x3 = _row(x, xb, xo, 0, n), _row(x, xb, xo, 1, n), _row(x, xb, xo, 2, n), _row(x, xb, xo, 3, n)
    y0, y1, y2, y3 = _row(y, yb, yo, 0, n), _row(y, yb, yo, 1, n), _row(y, yb, yo, 2, n), _row(y, yb, yo, 3, n)
    y4, y5, y6, y7 = _row(y, yb, yo, 4, n), _row(y, yb, yo, 5, n), _row(y, yb, yo, 6, n), _row(y, yb, yo, 7, n)
    for u in range(n):
        a, d = x0[u], x3[u]
        e, o = a + x2[u], x1[u] + d
        e2, o2 = a + _FOUR * x2[u], _TWO * x1[u] + _EIGHT * d
        e3, o3 = a + _QUARTER * x2[u], _HALF * x1[u] + _EIGHTH * d
        y0[u], y1[u], y2[u], y3[u], y4[u], y5[u], y6[u], y7[u] = a, e + o, e - o, e2 + o2, e2 - o2, e3 + o3, e3 - o3, d


# Which loop computes which of toom_cook's matrices: (matrix, m, k) -> rows function.
ROWS = {("BT", 2, 3): _bt4, ("BT", 4, 3): _bt6, ("BT", 4, 5): _bt8, ("AT", 2, 3): _at24, ("AT", 4, 3): _at46,
        ("AT", 4, 5): _at48, ("A", 2, 3): _a24, ("A", 4, 3): _a46, ("A", 4, 5): _a48}


# The copies between an image's rows (channels first) and the transforms' channels-last rows move
# blocks of 8 channels x 8 columns, transposed in vector registers (transpose.py: to_channels_last,
# from_channels_last), each column's
# 8 channels straight to its place in the row of phases (a few KB: in the core's L1 cache); the
# channels and columns past the last whole block one number at a time. Against a buffer of one
# row (columns, channels) written number by number, each column then moved as one run of C
# numbers: input / output / output gradient's transform, ms, one thread, AMD EPYC Zen 5, best of
# 30 (images): 16 ch 32x32 0.32 / 0.27 / 0.33 -> 0.16 / 0.24 / 0.19 (32), 32 ch 16x16 0.14 /
# 0.13 / 0.14 -> 0.08 / 0.08 / 0.10 (32), 64 ch 8x8 0.070 / 0.065 / 0.069 -> 0.044 / 0.041 /
# 0.049 (32), 64 ch 56x56 0.43 / 0.34 / 0.40 -> 0.25 / 0.23 / 0.25 (4), 128 ch 28x28 0.43 / 0.35
# / 0.37 -> 0.30 / 0.27 / 0.28 (8), F(2x2) 256 ch 14x14 0.51 / 0.46 / 0.46 -> 0.43 / 0.41 / 0.42
# (16); ResNet-20 training at batch 32, one thread: 57.4-58.0 -> 50.0-50.3 ms an iteration. (And
# that buffer against writing each number straight to its place across the whole plane, stride
# C over 80 KB: 16 ch 32x32 0.44 -> 0.25 ms, 32 ch 16x16 0.23 -> 0.11, 64 ch 8x8 0.12 -> 0.05;
# 32 images, one thread, AMD EPYC Zen 4.)
@register_jitable
def phase_columns(W, P, m, L, C):
    """Where column w of a row starts in its m phases (rows of L numbers one after another, the C
    channels of column x = P + w together at (x % m)*L + (x // m)*C)."""
    at = np.empty(W, np.int64)
    for w in range(W):
        x = w + P
        at[w] = (x % m) * L + (x // m) * C
    return at


@njit(cache=True, nogil=True)   # th0, th1 with defaults: Numba compiled both transforms 1.5x slower
def winograd_inputs(inp, V, t0, PH, PW, TH, TW, m, r, th0, th1):
    """V[r*a + b, t0 + (n*TH + th)*TW + tw, c] = (B^T d B)[a, b] for d the r x r tile of
    image n, channel c at rows m*th - PH.., columns m*tw - PW.. (zero outside the image), for
    the rows of tiles th0 <= th < th1 (0, TH: all; a tile of one image's call: winograd.py).
    The image rows they read go into the padded plane xp (rows from m*th0, phase, column // m,
    channel) first; then for each row of tiles z = B^T (its r rows, all phases at once), and
    V's rows = z B, entry row by entry row. (Each matrix has its own loop over the rows of
    tiles: with the choice inside it, the input transform took 0.64 ms against 0.60.)"""
    if inp.strides[3] != inp.itemsize:       # (transpose.py's blocks count a row's numbers one after another)
        raise ValueError("Winograd's images need their rows' numbers one after another")
    N, C, H, W = inp.shape
    groups = TW + (r - 1) // m                     # columns // m of the padded plane
    L, TC = groups * C, TW * C
    R = max(0, m * (th1 - th0) + r - m)            # the padded rows read, from row m*th0
    xp = np.zeros((R, m, groups, C), V.dtype)
    x1 = xp.reshape(-1)
    z = np.empty(r * m * L, V.dtype)               # B^T d for a row of tiles: (a, phase, column // m, c)
    V1 = V.reshape(-1)
    S = V.shape[1] * C                             # V's entry rows, apart
    column = (np.arange(r) % m) * L + (np.arange(r) // m) * C    # where a tile's column j starts in z's rows
    rows, entries = np.arange(r) * (m * L), np.arange(r) * S
    at, xrows, down = phase_columns(W, PW, m, L, C), xp.reshape(R, m * L), steps(BLOCK, inp.strides[1] // inp.itemsize)
    for n in range(N):
        for h in range(max(0, m * th0 - PH), min(H, m * th0 + R - PH)):
            to_channels_last(inp[n, :, h], xrows[PH + h - m * th0], at, down)
        o = (t0 + n * TH * TW) * C
        if r == 4:
            for th in range(th0, th1):
                _bt4(x1, m * (th - th0) * m * L, rows, z, 0, rows, m * L)
                for a in range(r):
                    _bt4(z, a * m * L, column, V1, a * r * S + o + th * TC, entries, TC)
        elif r == 6:
            for th in range(th0, th1):
                _bt6(x1, m * (th - th0) * m * L, rows, z, 0, rows, m * L)
                for a in range(r):
                    _bt6(z, a * m * L, column, V1, a * r * S + o + th * TC, entries, TC)
        else:
            for th in range(th0, th1):
                _bt8(x1, m * (th - th0) * m * L, rows, z, 0, rows, m * L)
                for a in range(r):
                    _bt8(z, a * m * L, column, V1, a * r * S + o + th * TC, entries, TC)


@njit(cache=True, nogil=True)
def winograd_outputs(M, t0, out, bias, TH, TW, m, r, th0, th1):
    """out[n, k, m*th + i, m*tw + j] = bias[k] + (A^T M A)[i, j] for M the tile's entries
    M[:, t0 + (n*TH + th)*TW + tw, k], inside the image, for the rows of tiles th0 <= th < th1
    (0, TH: all; a tile of one image's call: winograd.py); bias may be empty. For each row of tiles of an
    image: q = M A (entry rows a, output columns j), y = A^T q; then y goes into the image,
    channels first."""
    if out.strides[3] != out.itemsize:       # (transpose.py's blocks count a row's numbers one after another)
        raise ValueError("Winograd's images need their rows' numbers one after another")
    N, K, OH, OW = out.shape
    TK = TW * K
    at, q = phase_columns(OW, 0, m, TK, K), np.empty((m, r, TK), M.dtype)
    down = steps(BLOCK, out.strides[1] // out.itemsize)
    buf = np.empty((OW, K) if aliased(out.strides[1], K) else (0, 0), M.dtype)      # (transpose.py)
    y = np.empty((max(0, th1 - th0), m, m, TK), M.dtype)
    q1, y1, M1 = q.reshape(-1), y.reshape(-1), M.reshape(-1)
    S = M.shape[1] * K                             # M's entry rows, apart
    entries, q_columns = np.arange(r) * S, np.arange(m) * (r * TK)
    q_rows, y_rows = np.arange(r) * TK, np.arange(m) * (m * TK)
    for n in range(N):
        o = (t0 + n * TH * TW) * K
        if r == 4:
            for th in range(th0, th1):
                for a in range(r):
                    _at24(M1, a * r * S + o + th * TK, entries, q1, a * TK, q_columns, TK)
                for j in range(m):
                    _at24(q1, j * r * TK, q_rows, y1, ((th - th0) * m * m + j) * TK, y_rows, TK)
        elif r == 6:
            for th in range(th0, th1):
                for a in range(r):
                    _at46(M1, a * r * S + o + th * TK, entries, q1, a * TK, q_columns, TK)
                for j in range(m):
                    _at46(q1, j * r * TK, q_rows, y1, ((th - th0) * m * m + j) * TK, y_rows, TK)
        else:
            for th in range(th0, th1):
                for a in range(r):
                    _at48(M1, a * r * S + o + th * TK, entries, q1, a * TK, q_columns, TK)
                for j in range(m):
                    _at48(q1, j * r * TK, q_rows, y1, ((th - th0) * m * m + j) * TK, y_rows, TK)
        for h in range(m * th0, min(OH, m * th1)):
            if buf.shape[0] > 0:
                through_buffer(y[h // m - th0, h % m].reshape(-1), out[n, :, h], bias, at, buf)
            else:
                from_channels_last(y[h // m - th0, h % m].reshape(-1), out[n, :, h], bias, at, down)


@njit(cache=True, nogil=True)
def winograd_output_grads(dout, Y, t0, TH, TW, m, r):
    """The adjoint of winograd_outputs: Y[r*a + b, t0 + (n*TH + th)*TW + tw, k] = (A dy A^T)[a, b]
    for dy the m x m tile of dout[n, k] at (m*th, m*tw) (zero outside the image). For each
    image: dy into yp (row of tiles, output row i, column j, tw*K + k); then for each row of
    tiles w = A dy, Y's rows = w A^T."""
    if dout.strides[3] != dout.itemsize:       # (transpose.py's blocks count a row's numbers one after another)
        raise ValueError("Winograd's images need their rows' numbers one after another")
    N, K, OH, OW = dout.shape
    TK = TW * K
    yp = np.zeros((TH, m, m, TK), Y.dtype)
    at, down = phase_columns(OW, 0, m, TK, K), steps(BLOCK, dout.strides[1] // dout.itemsize)
    w = np.empty((r, m, TK), Y.dtype)
    yp1, w1, Y1 = yp.reshape(-1), w.reshape(-1), Y.reshape(-1)
    S = Y.shape[1] * K                             # Y's entry rows, apart
    yp_rows, w_rows = np.arange(m) * (m * TK), np.arange(r) * (m * TK)
    w_columns, entries = np.arange(m) * TK, np.arange(r) * S
    for n in range(N):
        for h in range(OH):         # (rows past the image stay zero: yp starts zero, and they are never written)
            to_channels_last(dout[n, :, h], yp[h // m, h % m].reshape(-1), at, down)
        o = (t0 + n * TH * TW) * K
        if r == 4:
            for th in range(TH):
                for j in range(m):
                    _a24(yp1, (th * m * m + j) * TK, yp_rows, w1, j * TK, w_rows, TK)
                for a in range(r):
                    _a24(w1, a * m * TK, w_columns, Y1, a * r * S + o + th * TK, entries, TK)
        elif r == 6:
            for th in range(TH):
                for j in range(m):
                    _a46(yp1, (th * m * m + j) * TK, yp_rows, w1, j * TK, w_rows, TK)
                for a in range(r):
                    _a46(w1, a * m * TK, w_columns, Y1, a * r * S + o + th * TK, entries, TK)
        else:
            for th in range(TH):
                for j in range(m):
                    _a48(yp1, (th * m * m + j) * TK, yp_rows, w1, j * TK, w_rows, TK)
                for a in range(r):
                    _a48(w1, a * m * TK, w_columns, Y1, a * r * S + o + th * TK, entries, TK)
