"""The 1x1 kernels' pieces that conv2d.py's "1x1" and "1x1-strided" share: the pixels a strided
1x1 kernel reads, and the backward on an input that is its own patch matrix."""
from __future__ import annotations

import numpy as np

from . import im2col
from .image_gemms import image_gemms


def pixels_read(inp, xs, SH, SW):
    """xs (n, C, OH, OW) = the pixels a 1x1 kernel of stride SH x SW reads from inp (no padding)."""
    np.copyto(xs, inp[:, :, ::SH, ::SW])
    return xs


def gathered_weight_gradient(C, K, P, group):
    """1x1: True when the per-image weight gradients (K x C/group per image) would move more
    floats than copying dout and the input to (channels, n*P) for one GEMM over all pixels."""
    return K * (C // group) > P * (K + C)


def backward_1x1(dinp, dweight, dbias, dout, inp, weight, ws, group, fresh):
    """conv2d_backward of "1x1": the input (n, C, P) is its own patch matrix and the input
    gradient is written by per-image GEMMs. The weight gradient: per image into ws["dw"]
    (n, K, C/group), then summed; or, where gathered_weight_gradient says, one GEMM per group
    over (channels, n*P) copies of dout (its bias sum on the way) and of the input."""
    n, K = dout.shape[:2]
    C = inp.shape[1]
    kg, cg = K // group, C // group
    w = weight.reshape(K, cg)
    x3, dy3 = inp.reshape(n, C, -1), dout.reshape(n, K, -1)
    gathered = "xg" in ws and dweight is not None
    if dbias is not None and not gathered:
        im2col.sum_bias(dy3, dbias)
    if dweight is not None:
        dw, dw2 = ws["dw"], dweight.reshape(K, cg)
        if gathered:
            dres, xg = ws["dres"], ws["xg"]
            im2col.nchw_to_gemm(dout, dres, ws["no_bias"] if dbias is None else dbias)
            im2col.nchw_to_gemm(inp, xg, ws["no_bias"])
            for g in range(group):
                np.dot(dres[g * kg:(g + 1) * kg], xg[g * cg:(g + 1) * cg].T, out=dw[g * kg:(g + 1) * kg])
        else:
            for g in range(group):      # per image: dy[n] (kg, P) @ x[n].T (P, cg)
                image_gemms(dy3[:, g * kg:(g + 1) * kg], x3[:, g * cg:(g + 1) * cg].transpose(0, 2, 1),
                            dw[:, g * kg:(g + 1) * kg])
            dw = dw.sum(axis=0)
        if fresh:
            np.copyto(dw2, dw)
        else:
            dw2 += dw
    if dinp is not None:
        dx3 = dinp.reshape(n, C, -1)
        for g in range(group):
            image_gemms(w[g * kg:(g + 1) * kg].T, dy3[:, g * kg:(g + 1) * kg], dx3[:, g * cg:(g + 1) * cg])
