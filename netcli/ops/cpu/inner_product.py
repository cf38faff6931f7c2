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


def inner_product_backward(dinp, dweight, dbias, dout, inp, weight, dw, transpose, fresh):
    """dinp (M, K) = dout @ W (skipped when None); dweight += dout^T @ inp (or = when `fresh`),
    using the scratch dw shaped like the weights; dbias (N,) += the column sums of dout. dweight
    or dbias None: not computed (no bias, or a frozen param)."""
    if dweight is not None:
        buf = dweight if fresh else dw
        if transpose:
            np.dot(inp.T, dout, out=buf)
        else:
            np.dot(dout.T, inp, out=buf)
        if buf is not dweight:
            dweight += buf
    if dbias is not None:
        dbias += dout.sum(axis=0)
    if dinp is not None:
        np.dot(dout, weight.T if transpose else weight, out=dinp)
