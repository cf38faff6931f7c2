"""2-D convolution on a CUDA device, forward and backward: the functions, parameters and meaning
of netcli/ops/cpu/conv2d.py (read its docstrings), over device arrays.

One patch layout on the device: per chunk of images, the columns (C*KH*KW, n*OH*OW) of
im2col.py (row (c, i, j), column (n, oh, ow)), one GEMM per group into (K, n*OH*OW), then into
NCHW with the bias: three launches forward for one group. `algorithm` (the CPU's choice per
shape, netcli/ops/cpu/conv2d_rule.py's conv2d_algorithm) is accepted and ignored. `fresh` only lets the
first weight-gradient GEMM overwrite instead of add (the gradients hold zeros then either way).

A chunk holds all n images unless its columns would pass COLS_LIMIT floats. With one chunk the
backward finds the forward's columns in the workspace; with several it takes the patches again
from the input.

conv2d_forward_relu is conv2d_forward with a ReLU (negative slope `slope`) fused into the move to
NCHW: the device-only form a Convolution uses when the executor fuses the in-place ReLU after it.
"""
from __future__ import annotations

from .gemm import gemm
from .im2col import col2im, cols_to_nchw, im2col, nchw_to_cols
from .reductions import sum_rows

COLS_LIMIT = 1 << 25          # floats in a convolution's column buffer (128 MB): images go in chunks


def conv2d_workspace(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype):
    """{name: (shape, dtype)} of the scratch one call on n images needs: the columns of a chunk
    of images, their gradient and the GEMM's (K, chunk*OH*OW) result."""
    P, rows = OH * OW, C * KH * KW
    m = max(1, min(n, COLS_LIMIT // max(1, rows * P)))
    return {"cols": ((rows, m * P), dtype), "dcols": ((rows, m * P), dtype), "z": ((K, m * P), dtype)}


def _chunks(n, ws, P):
    """(first, end, column slice) of each chunk of images the workspace's columns hold."""
    m = ws["cols"].shape[1] // P
    for a in range(0, n, m):
        b = min(n, a + m)
        yield a, b, slice(0, (b - a) * P)


def _forward(out, inp, weight, bias, ws, geometry, group, slope):
    n, K = out.shape[0], out.shape[1]
    P = out.shape[2] * out.shape[3]
    w = weight.reshape(K, weight.size // K)
    kg, ck = K // group, w.shape[1]
    for a, b, s in _chunks(n, ws, P):
        cols, z = ws["cols"][:, s], ws["z"][:, s]
        im2col(inp[a:b], cols, *geometry)
        for g in range(group):
            gemm(w[g * kg:(g + 1) * kg], cols[g * ck:(g + 1) * ck], z[g * kg:(g + 1) * kg])
        cols_to_nchw(z, out[a:b], bias, slope is not None, slope or 0.0)


def conv2d_forward(out, inp, weight, bias, ws, KH, KW, SH, SW, PH, PW, DH, DW, group, algorithm, after=None,
                   after_tile=None, keeps=True):
    """out (n, K, OH, OW) = inp (n, C, H, W) * weight (K, C/group, KH, KW) + bias (K,), or no
    bias when bias is None; after(0, n), where given, once out is final (the CPU op calls it
    per block of images, or after_tile per tile of one image; here there are no tiles). keeps:
    the CPU op's chunking (here the chunks follow the workspace, as the backward's)."""
    _forward(out, inp, weight, bias, ws, (KH, KW, SH, SW, PH, PW, DH, DW, out.shape[2], out.shape[3]),
             group, None)
    if after is not None:
        after(0, out.shape[0])


def conv2d_forward_relu(out, inp, weight, bias, ws, KH, KW, SH, SW, PH, PW, DH, DW, group, algorithm, after=None,
                        after_tile=None, keeps=True, slope=0.0):
    """conv2d_forward, then a ReLU with negative slope `slope`, in the same launches."""
    _forward(out, inp, weight, bias, ws, (KH, KW, SH, SW, PH, PW, DH, DW, out.shape[2], out.shape[3]),
             group, slope)
    if after is not None:
        after(0, out.shape[0])


def conv2d_backward(dinp, dweight, dbias, dout, inp, weight, ws, KH, KW, SH, SW, PH, PW, DH, DW, group,
                    algorithm, fresh):
    """From dout (n, K, OH, OW), the input inp and what conv2d_forward left in ws: dinp (n, C, H, W) (skipped
    when None) = the input gradient, written; dweight (K, C/group, KH, KW) and dbias (K,) += this
    call's gradients; either may be None (not computed). Per chunk: dout into the GEMM's layout,
    its row sums (the bias), dW += dY cols^T, dcols = W^T dY and col2im."""
    n, K, OH, OW = dout.shape
    P, geometry = OH * OW, (KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    w = weight.reshape(K, weight.size // K)
    kg, ck = K // group, w.shape[1]
    dw = dweight.reshape(K, ck) if dweight is not None else None
    several = ws["cols"].shape[1] < n * P
    for a, b, s in _chunks(n, ws, P):
        cols, dcols, z = ws["cols"][:, s], ws["dcols"][:, s], ws["z"][:, s]
        nchw_to_cols(dout[a:b], z)
        if dbias is not None:
            sum_rows(z, dbias)
        if dw is not None:
            if several:                  # the columns hold the last chunk's patches: take them again
                im2col(inp[a:b], cols, *geometry)
            beta = 0.0 if fresh and a == 0 else 1.0
            for g in range(group):
                gemm(z[g * kg:(g + 1) * kg], cols[g * ck:(g + 1) * ck], dw[g * kg:(g + 1) * kg], tb=True, beta=beta)
        if dinp is not None:
            for g in range(group):
                gemm(w[g * kg:(g + 1) * kg], z[g * kg:(g + 1) * kg], dcols[g * ck:(g + 1) * ck], ta=True)
            col2im(dcols, dinp[a:b], *geometry)
