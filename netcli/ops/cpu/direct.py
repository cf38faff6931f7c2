"""Direct convolution ("direct"): each output a sum over the kernel's taps and the input channels,
computed image by image on channels-last copies (the input padded, dout padded for the input
gradient) in vector blocks held in registers (direct_vectors.py); no patch matrix, no GEMM.

- Forward: y[n, k, oh, ow] = b[k] + sum over (i, j), then c, of x[n, c, oh*SH + i - PH, ow*SW +
  j - PW] * w[k, c, i, j].
- Input gradient: a direct convolution of dout with the kernel turned 180 degrees and its
  channels swapped; with a stride, one per phase of the input (the input positions whose
  row % SH and column % SW are equal: the taps that reach them are a smaller kernel, stride 1).
  Its channels are rounded up to vectors of 16 (zero weights past C).
- Weight gradient: at each tap, blocks of input x output channels summed over every position,
  image after image.
Every number is a sum in one fixed order that neither the blocks nor the threads change: the
weight gradient sums each tile of images (direct_slots: fixed by the call's images) in its own
array, then the tiles in order, whoever ran them (direct_team.py). Nothing is kept from the
forward for the backward (the padded copy is made again, an image at a time): the scratch is an
image's copies in each tile's slot, and the channels-last weights. How a share's thread runs
them (alone, with a team, one image in tiles of positions): direct_passes.py.
"""
from __future__ import annotations

from numba import njit

from ...exec.claims import PHASE_TILES
from .direct_vectors import (FORWARD_BLOCKS, LANES, ROW_BLOCKS, grads4x1, grads8x2, grads16x1, rows1, rows2, sums1,
                             sums2, sums4)
from .im2col import nchw_to_nhwc_at, nhwc_to_nchw_at, rows_to_nchw

BLOCK_POSITIONS = max(FORWARD_BLOCKS.values())      # the most positions of a block (direct_vectors.py)
GRAD_ROWS_BYTES = 32768   # the weight gradient's blocks of dout rows
(ROW1, STEP1), (ROW2, STEP2) = ROW_BLOCKS[1], ROW_BLOCKS[2]      # (numbers: Numba reads no dict)


def direct_fits(KH, KW, SH, SW, PH, PW, DH, DW, group, K):
    """Whether "direct" computes this convolution: no groups or dilation, output channels in
    vectors of 16, a stride no larger than the kernel, padding under the kernel."""
    return group == DH == DW == 1 and K % LANES == 0 and SH <= KH and SW <= KW and PH < KH and PW < KW


def direct_positions(H, W, OH, OW, SH, SW):
    """Whether each pass has the positions of a whole block: the output plane, and each phase
    of the input gradient's."""
    return min(OH * OW, (H // SH) * (W // SW)) >= BLOCK_POSITIONS


def _round(c, to):
    return -(-c // to) * to


@njit(cache=True, nogil=True)
def _pairs(C, K):
    """Whether the weight gradient goes in blocks of 8 input channels x 2 vectors (else 16 x 1,
    then 4 x 1)."""
    return K % 32 == 0 and C >= 8


def _grad_channels(C, K):
    """The weight gradient's input channels, rounded up to its blocks'."""
    return _round(C, 8) if _pairs(C, K) else _round(C, 4)


def direct_scratch(n, C, H, W, K, KH, KW, OH, OW, dtype, keeps=True):
    """{name: (shape, dtype)}: in `direct_slots` slots (one per tile of a team job), one image's
    padded channels-last input (xp) and output (yt), and for a backward (`keeps`) its dout padded
    (dyp) and input gradient (dxt), channels last, with a weight gradient for each tile of images
    (dw); the weights channels last (forward: wt, input gradient: wf); zeros for the bias."""
    Cg, Cv, slots = _grad_channels(C, K), _round(C, LANES), direct_slots(n)
    out = {"xp": ((slots, H + 2 * KH - 2, W + 2 * KW - 2, Cg), dtype), "yt": ((slots, OH, OW, K), dtype),
           "wt": ((KH, KW, C, K), dtype), "zeros": ((max(K, Cv),), dtype)}
    if keeps:          # (dout's rows reach OH + KH - 1 + each phase's taps: direct_backward_images)
        out.update({"dyp": ((slots, OH + 2 * KH - 2, OW + 2 * KW - 2, K), dtype), "dxt": ((slots, H, W, Cv), dtype),
                    "wf": ((KH, KW, K, Cv), dtype), "dw": ((slots, KH, KW, Cg, K), dtype)})
    return out


def direct_slots(n):
    """The tiles of images of a call on n images (each image's copies in its own slot in a team
    job, exec/team.py; the weight gradient summed tile by tile whoever runs them)."""
    return min(n, PHASE_TILES)


@njit(cache=True, nogil=True, inline="always")
def tile_images(t, tiles, n):
    """Tile t's images, of `tiles` over n."""
    return n * t // tiles, n * (t + 1) // tiles


@njit(cache=True, nogil=True)
def _strides(a):
    return a.strides[0] // a.itemsize, a.strides[1] // a.itemsize


@njit(cache=True, nogil=True)
def _sums(x, y, w, b, C, OW, SH, SW, p0, p1):
    """y[oh, ow, k] = b[k] + sum over taps (i, j), then c < C, of x[oh*SH + i, ow*SW + j, c] *
    w[i, j, c, k], for the positions p0 <= p < p1 (oh = p // OW, ow = p % OW; at least a block's)
    and k < w's last axis (a multiple of 16)."""
    KH, KW, K = w.shape[0], w.shape[1], w.shape[3]
    size = x.itemsize
    if x.strides[2] != size or y.strides[2] != size or w.strides[3] != size:
        raise ValueError("the vectors need each position's channels one after another")
    if p1 - p0 < BLOCK_POSITIONS:
        raise ValueError("direct_positions: fewer positions than a block")
    strides = _strides(x) + _strides(y) + (w.strides[0] // size, w.strides[1] // size, w.strides[2] // size)
    rows = p0 % OW == 0 and p1 % OW == 0          # whole rows: blocks of a row where ROW_BLOCKS fit
    if K % 64 == 0:
        for k0 in range(0, K, 64):
            for p in range(p0, p1, 6):     # the last block ends at p1 (positions done twice: the same bits)
                sums4(x, y, w, b, min(p, p1 - 6), k0, C, KH, KW, OW, SH, SW, strides)
    elif K % 32 == 0 and rows and OW % ROW2 == 0 and strides[1] * SW == STEP2:
        for k0 in range(0, K, 32):
            for p in range(p0, p1, ROW2):
                rows2(x, y, w, b, p, k0, C, KH, KW, OW, SH, SW, strides)
    elif K % 32 == 0:
        for k0 in range(0, K, 32):
            for p in range(p0, p1, 12):
                sums2(x, y, w, b, min(p, p1 - 12), k0, C, KH, KW, OW, SH, SW, strides)
    elif rows and OW % ROW1 == 0 and strides[1] * SW == STEP1:
        for k0 in range(0, K, 16):
            for p in range(p0, p1, ROW1):
                rows1(x, y, w, b, p, k0, C, KH, KW, OW, SH, SW, strides)
    else:
        for k0 in range(0, K, 16):
            for p in range(p0, p1, 24):
                sums1(x, y, w, b, min(p, p1 - 24), k0, C, KH, KW, OW, SH, SW, strides)


@njit(cache=True, nogil=True)
def _grads(x, dy, dw, OH, OW, SH, SW):
    """dw[i, j, c, k] += the sum over (oh, ow) in order of x[oh*SH + i, ow*SW + j, c] * dy[oh,
    ow, k], for every tap, c < dw.shape[2] and k; in blocks of GRAD_ROWS_BYTES of dy's rows, each
    block's reads staying in cache over the taps."""
    KH, KW, Cg, K = dw.shape
    size = x.itemsize
    if x.strides[2] != size or dy.strides[2] != size or dw.strides[3] != size:
        raise ValueError("the vectors need each position's channels one after another")
    strides = _strides(x) + _strides(dy) + (dw.strides[0] // size, dw.strides[1] // size, dw.strides[2] // size)
    rows = max(1, GRAD_ROWS_BYTES // (OW * K * size))
    pairs = _pairs(Cg, K)
    for r0 in range(0, OH, rows):
        r1 = min(OH, r0 + rows)
        for i in range(KH):
            for j in range(KW):
                if pairs:
                    for k0 in range(0, K, 32):
                        for c0 in range(0, Cg, 8):
                            grads8x2(x, dy, dw, c0, k0, i, j, r0, r1, OW, SH, SW, strides)
                    continue
                wide = Cg - Cg % 16
                for k0 in range(0, K, 16):
                    for c0 in range(0, wide, 16):
                        grads16x1(x, dy, dw, c0, k0, i, j, r0, r1, OW, SH, SW, strides)
                    for c0 in range(wide, Cg, 4):
                        grads4x1(x, dy, dw, c0, k0, i, j, r0, r1, OW, SH, SW, strides)


@njit(cache=True, nogil=True)
def direct_forward_images(out, inp, wt, b, xp, yt, SH, SW, PH, PW):
    """out (n, K, OH, OW) = inp (n, C, H, W) * the weights wt (KH, KW, C, K) + b (K,), image by
    image through xp (its padded copy, channels last) and yt (its output, channels last)."""
    N, C = inp.shape[0], inp.shape[1]
    OH, OW = out.shape[2], out.shape[3]
    xp[...] = 0.0
    for n in range(N):
        nchw_to_nhwc_at(inp[n:n + 1], xp, PH, PW)
        _sums(xp[0], yt[0], wt, b, C, OW, SH, SW, 0, OH * OW)
        nhwc_to_nchw_at(yt, out[n:n + 1], 0, 0)


@njit(cache=True, nogil=True)
def direct_backward_images(dinp, dw, dout, inp, wf, xp, dyp, dxt, zeros, SH, SW, PH, PW, data, weights):
    """From dout (n, K, OH, OW) and inp (n, C, H, W), image by image: where `weights`, dw (KH,
    KW, Cg, K) += the weight gradient (channels last); where `data`, dinp (n, C, H, W) = the
    input gradient, through wf (KH, KW, K, Cv): the weights channels last, zero past C."""
    N, C, H, W = inp.shape
    K, OH, OW = dout.shape[1], dout.shape[2], dout.shape[3]
    KH, KW = wf.shape[0], wf.shape[1]
    TH, TW = KH - 1, KW - 1               # dout's place in dyp: every phase's taps reach inside
    xp[...] = 0.0
    dyp[...] = 0.0
    for n in range(N):
        nchw_to_nhwc_at(dout[n:n + 1], dyp, TH, TW)
        if weights:
            nchw_to_nhwc_at(inp[n:n + 1], xp, PH, PW)
            _grads(xp[0], dyp[0, TH:TH + OH, TW:TW + OW], dw, OH, OW, SH, SW)
        if not data:
            continue
        for r in range(SH):              # input rows h with (h + PH) % SH == r: taps i = r + SH*q
            Qr = (KH - 1 - r) // SH + 1
            a0, a1 = (PH - r + SH - 1) // SH, (PH + H - r + SH - 1) // SH
            for s in range(SW):
                Qs = (KW - 1 - s) // SW + 1
                b0, b1 = (PW - s + SW - 1) // SW, (PW + W - s + SW - 1) // SW
                h0, w0 = SH * a0 + r - PH, SW * b0 + s - PW
                y = dxt[0, h0:h0 + SH * (a1 - a0 - 1) + 1:SH, w0:w0 + SW * (b1 - b0 - 1) + 1:SW]
                x = dyp[0, a0 - Qr + 1 + TH:, b0 - Qs + 1 + TW:]
                _sums(x, y, wf[r::SH, s::SW][::-1, ::-1], zeros, K, b1 - b0, 1, 1, 0, (a1 - a0) * (b1 - b0))
        nhwc_to_nchw_at(dxt, dinp[n:n + 1], 0, 0)


@njit(cache=True, nogil=True)
def direct_forward_tile(t, tiles, out, inp, wt, b, xp, yt, SH, SW, PH, PW):
    """Tile t of a call's forward in `tiles` tiles of images: its images through slot t."""
    n0, n1 = tile_images(t, tiles, inp.shape[0])
    direct_forward_images(out[n0:n1], inp[n0:n1], wt, b, xp[t:t + 1], yt[t:t + 1], SH, SW, PH, PW)


@njit(cache=True, nogil=True)
def direct_backward_tile(t, tiles, dinp, dw, dout, inp, wf, xp, dyp, dxt, zeros, SH, SW, PH, PW, data, weights, slot):
    """Tile t of a call's backward in `tiles` tiles of images: its images (through slot `slot`),
    their weight gradient in dw[t] (written)."""
    n0, n1 = tile_images(t, tiles, inp.shape[0])
    dw[t] = 0.0
    direct_backward_images(dinp[n0:n1] if data else dinp, dw[t], dout[n0:n1], inp[n0:n1], wf, xp[slot:slot + 1],
                           dyp[slot:slot + 1], dxt[slot:slot + 1], zeros, SH, SW, PH, PW, data, weights)


@njit(cache=True, nogil=True)
def direct_positions_tile(out, xp, yt, wt, b, SH, SW, p0, p1):
    """One image's forward (its padded copy made: xp[0]) for its positions p0..p1: yt[0]'s rows,
    then out's."""
    OW, K = out.shape[3], out.shape[1]
    _sums(xp[0], yt[0], wt, b, wt.shape[2], OW, SH, SW, p0, p1)
    rows_to_nchw(yt[0].reshape(-1, K)[p0:p1], b[:0], out, p0)


@njit(cache=True, nogil=True)
def direct_pad(inp, xp, PH, PW):
    """xp[0] = inp[0] padded, channels last."""
    xp[0] = 0.0
    nchw_to_nhwc_at(inp[:1], xp[:1], PH, PW)


@njit(cache=True, nogil=True)
def direct_weight_sum(dw, tiles, into, fresh):
    """into (K, C, KH, KW) = (fresh) or += the tiles' weight gradients dw[t] (KH, KW, Cg, K),
    summed in tile order (into dw[0])."""
    K, C, KH, KW = into.shape
    first = dw[0].reshape(-1)
    for t in range(1, tiles):
        first += dw[t].reshape(-1)
    for k in range(K):
        for c in range(C):
            for i in range(KH):
                for j in range(KW):
                    into[k, c, i, j] = dw[0, i, j, c, k] if fresh else into[k, c, i, j] + dw[0, i, j, c, k]
