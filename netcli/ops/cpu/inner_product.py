"""Inner product (fully connected), forward and backward: the kernel boundary of the InnerProduct
layer. inp (M, K) rows, weight (N, K) (or (K, N) when `transpose`), bias (N,) or None, out (M, N).
BLAS does the work; the output is formed transposed (W x^T runs ~1.6x faster in OpenBLAS than
x W^T for few rows) in the caller's scratch `yt` (N, M)."""
from __future__ import annotations

import numpy as np


def inner_product_forward(out, inp, weight, bias, yt, transpose):
    """out = inp @ W^T + bias."""
    np.dot(weight.T if transpose else weight, inp.T, out=yt)
    if bias is not None:
        np.add(yt.T, bias, out=out)
    else:
        out[...] = yt.T


# A weight of more than TILE_ELEMENTS has its gradient formed in tiles of TILE_ROWS rows (of its
# first axis): a scratch of one tile, not of the weight's size (VGG-16's fc6: 392 MB per thread),
# and the CPU executor forms such gradients after the pass (layers.base.PerSample.late_params).
TILE_ELEMENTS = 2 ** 20
TILE_ROWS = 64


def large_weight(A, B):
    """Whether an (A, B) weight has its gradient formed in tiles."""
    return A * B > TILE_ELEMENTS


def weight_tiles(A, B):
    """[(a0, a1)]: the row tiles of an (A, B) weight's gradient (one tile for a small weight)."""
    if not large_weight(A, B):
        return [(0, A)]
    return [(a, min(a + TILE_ROWS, A)) for a in range(0, A, TILE_ROWS)]


def inner_product_weight_grad(out, dout, inp, a0, a1, transpose):
    """out (a1 - a0, B) = rows a0..a1 of the weight gradient dout^T @ inp (inp^T @ dout when
    `transpose`: the weight is (K, N))."""
    if transpose:
        np.dot(inp[:, a0:a1].T, dout, out=out)
    else:
        np.dot(dout[:, a0:a1].T, inp, out=out)


def inner_product_backward(dinp, dweight, dbias, dout, inp, weight, dw, transpose, fresh):
    """dinp (M, K) = dout @ W (skipped when None); dweight += dout^T @ inp (or = when `fresh`),
    tile by tile (weight_tiles) through the scratch dw (one tile); dbias (N,) += the column sums
    of dout. dweight or dbias None: not computed (no bias, or a frozen param)."""
    if dweight is not None:
        for a0, a1 in weight_tiles(*dweight.shape):
            if fresh:
                inner_product_weight_grad(dweight[a0:a1], dout, inp, a0, a1, transpose)
            else:
                buf = dw[:a1 - a0]
                inner_product_weight_grad(buf, dout, inp, a0, a1, transpose)
                dweight[a0:a1] += buf
    if dbias is not None:
        dbias += dout.sum(axis=0)
    if dinp is not None:
        np.dot(dout, weight.T if transpose else weight, out=dinp)
