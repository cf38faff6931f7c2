"""2-D convolution, forward and backward: the kernel boundary of the Convolution layer (a second
backend replaces these functions). Arrays are NCHW; geometry is given in full:
kernel KH x KW, stride SH x SW, padding PH x PW, dilation DH x DW, `group` channel groups.

Four algorithms, one per layer, picked from its shape by `conv2d_algorithm`:
- "depthwise": group == channels == num_output, direct loops (netcli/ops/cpu/depthwise.py).
- "1x1": a 1x1 kernel, stride 1, no padding: the input is its own patch matrix, so the
  per-image GEMMs read it (and the input gradient's write it) directly.
- "im2row": channels-last images and one GEMM per call, rows (n*OH*OW, KH*KW*C); for many
  channels (patch layouts in netcli/ops/cpu/im2col.py).
- "im2col": one column block per image, per-image GEMMs writing NCHW directly; for few channels
  (and groups).
Scratch comes from the caller, sized by `conv2d_workspace` for the n images of one call; the
forward's patches stay in it for the backward.
"""
from __future__ import annotations

import numpy as np

from . import im2col
from .depthwise import depthwise_backward_data, depthwise_backward_weight, depthwise_forward

ALGORITHMS = ("depthwise", "1x1", "im2row", "im2col")


def conv2d_algorithm(C, K, KH, KW, SH, SW, PH, PW, group):
    """The algorithm for a layer of this shape: a fixed rule (never a timing at run time, so the
    results are the same on every run). The measurements behind it: bench/conv_algorithms.py.
    - depthwise whenever group == C == K: a direct kernel instead of one 1 x KH*KW GEMM per
      channel and image (MobileNet's 3x3 depthwise at 32 channels, 32x32, 32 images: ~10x).
    - 1x1 for a 1x1 kernel with stride 1 and no padding (any dilation is the same kernel): no
      patch copy, GEMMs on the input itself.
    - im2row when a kernel row spans at least 16 floats (C*KW) and there are no groups, else
      im2col."""
    if group == C == K:
        return "depthwise"
    if KH == KW == 1 and SH == SW == 1 and PH == PW == 0:
        return "1x1"
    return "im2row" if group == 1 and C * KW >= 16 else "im2col"


def conv2d_workspace(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype):
    """{name: (shape, dtype)} of the scratch one call on n images needs."""
    P, CKK = OH * OW, C // group * KH * KW
    if algorithm == "depthwise":
        return {"no_bias": ((0,), dtype)}
    if algorithm == "1x1":
        return {"dw": ((n, K, CKK), dtype)}
    if algorithm == "im2row":
        return {"xt": ((n, H, W, C), dtype), "cols": ((n * P, CKK), dtype), "dcols": ((n * P, CKK), dtype),
                "res": ((n * P, K), dtype), "wr": ((K, KH, KW, C), dtype), "dw": ((K, CKK), dtype),
                "no_bias": ((0,), dtype)}
    return {"cols": ((n, group * CKK, P), dtype), "dcols": ((n, group * CKK, P), dtype),
            "dw": ((n, K, CKK), dtype), "no_bias": ((0,), dtype)}


def _rows_weights(weight, wr):
    """The weights as (K, KH*KW*C), the rows layout's column order (a copy in wr)."""
    np.copyto(wr, weight.transpose(0, 2, 3, 1))
    return wr.reshape(weight.shape[0], -1)


def conv2d_forward(out, inp, weight, bias, ws, KH, KW, SH, SW, PH, PW, DH, DW, group, algorithm):
    """out (n, K, OH, OW) = inp (n, C, H, W) * weight (K, C/group, KH, KW) + bias (K,), or no
    bias when bias is None."""
    n, K, OH, OW = out.shape
    geometry = (KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    if algorithm == "depthwise":
        depthwise_forward(out, inp, weight, ws["no_bias"] if bias is None else bias, *geometry[:8])
        return
    if algorithm == "im2row":
        cols = ws["cols"]
        im2col.nchw_to_nhwc(inp, ws["xt"])
        im2col.im2row(ws["xt"], cols, *geometry)
        np.dot(cols, _rows_weights(weight, ws["wr"]).T, out=ws["res"])
        im2col.rows_to_nchw(ws["res"], ws["no_bias"] if bias is None else bias, out)
        return
    w = weight.reshape(K, -1)
    kg, ck = K // group, w.shape[1]
    if algorithm == "1x1":
        cols = inp.reshape(n, -1, OH * OW)
    else:
        cols = ws["cols"]
        im2col.im2col_images(inp, cols, *geometry)
    y3 = out.reshape(n, K, -1)
    for g in range(group):
        np.matmul(w[g * kg:(g + 1) * kg], cols[:, g * ck:(g + 1) * ck], out=y3[:, g * kg:(g + 1) * kg])
    if bias is not None:
        im2col.add_bias(y3, bias)


def conv2d_backward(dinp, dweight, dbias, dout, inp, weight, ws, KH, KW, SH, SW, PH, PW, DH, DW, group,
                    algorithm, fresh):
    """From dout (n, K, OH, OW), the input inp (n, C, H, W) and the patches conv2d_forward left
    in ws: dinp (n, C, H, W) (skipped when None) = the input gradient, written; dweight
    (K, C/group, KH, KW) and dbias (K,) += this call's gradients, or = when `fresh` (they hold
    zeros); either may be None (no bias, or a frozen param: not computed). The input gradient
    uses the current weights, as Caffe's."""
    n, K, OH, OW = dout.shape
    geometry = (KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    if algorithm == "depthwise":      # the kernels add: `fresh` targets are cleared first
        for target in (dbias, dweight) if fresh else ():
            if target is not None:
                target[...] = 0.0
        if dbias is not None:
            im2col.sum_bias(dout.reshape(n, K, -1), dbias)
        if dweight is not None:
            depthwise_backward_weight(dweight, dout, inp, *geometry[:8])
        if dinp is not None:
            depthwise_backward_data(dinp, dout, weight, *geometry[:8])
        return
    dw = ws["dw"]
    if algorithm == "im2row":
        cols, dcols = ws["cols"], ws["dcols"]
        db = ws["no_bias"] if dbias is None else dbias
        dres = ws["res"].reshape(K, -1)              # the forward's buffer, as (K, n*P)
        im2col.nchw_to_gemm(dout, dres, db)            # dout as (K, n*P), and the bias gradient
        if dweight is not None:
            np.dot(dres, cols, out=dw)               # weight gradient, columns (i, j, c)
            dw4 = dw.reshape(K, KH, KW, -1).transpose(0, 3, 1, 2)
            if fresh:
                np.copyto(dweight, dw4)
            else:
                dweight += dw4
        if dinp is not None:
            np.dot(dres.T, _rows_weights(weight, ws["wr"]), out=dcols)
            im2col.row2im(dcols, ws["xt"], *geometry)
            im2col.nhwc_to_nchw(ws["xt"], dinp)
        return
    w = weight.reshape(K, -1)
    kg, ck = K // group, w.shape[1]
    if algorithm == "1x1":             # the input is its own patch matrix; dinp is its gradient's
        cols = inp.reshape(n, ck * group, -1)
        dcols = None if dinp is None else dinp.reshape(n, ck * group, -1)
    else:
        cols, dcols = ws["cols"], ws["dcols"]
    dy3 = dout.reshape(n, K, -1)
    if dbias is not None:
        im2col.sum_bias(dy3, dbias)
    if dweight is not None:
        for g in range(group):      # per image: dy[n] (kg, P) @ cols[n].T (P, ck)
            np.matmul(dy3[:, g * kg:(g + 1) * kg], cols[:, g * ck:(g + 1) * ck].transpose(0, 2, 1),
                      out=dw[:, g * kg:(g + 1) * kg])
        if fresh:
            np.sum(dw, axis=0, out=dweight.reshape(K, ck))
        else:
            dweight.reshape(K, ck)[...] += dw.sum(axis=0)
    if dinp is not None:
        for g in range(group):
            np.matmul(w[g * kg:(g + 1) * kg].T, dy3[:, g * kg:(g + 1) * kg], out=dcols[:, g * ck:(g + 1) * ck])
        if algorithm != "1x1":
            im2col.col2im_images(dcols, dinp, *geometry)
