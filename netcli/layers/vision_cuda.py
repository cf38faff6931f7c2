"""Convolution and Pooling on a CUDA device: the device ops that Convolution (vision.py) and
Pooling (pooling.py) bind as their forward_cuda/backward_cuda/cuda_workspace/cuda_refusal
(netcli/layers/base.py says the contract). Kernels: netcli/ops/cuda/ (dev.k); blobs are (data, diff) device arrays."""
from __future__ import annotations

import numpy as np

COLS_LIMIT = 1 << 25          # floats in a convolution's column buffer (128 MB): images go in chunks


# -- Convolution: per chunk of images, im2col, one GEMM, the result into NCHW -----------------------
def conv_refusal(self, bottoms):
    if self.G != 1 or (self.DH, self.DW) != (1, 1) or len(bottoms) != 1:
        return "groups, dilation and several bottoms are not on the GPU yet"
    return None


def conv_workspace(self, bottoms, tops):
    """The columns of a chunk of images (all of them, unless they would pass COLS_LIMIT), their
    gradient, and the GEMM's (K, n*P) result."""
    P = self.OH * self.OW
    n = max(1, min(bottoms[0].shape[0], COLS_LIMIT // max(1, self.CKK * P)))
    return {"cols": ((self.CKK, n * P), np.float32), "dcols": ((self.CKK, n * P), np.float32),
            "z": ((self.K, n * P), np.float32)}


def _geometry(self):
    return (self.KH, self.KW, self.SH, self.SW, self.PH, self.PW, self.OH, self.OW)


def conv_forward_cuda(self, bottoms, tops, ws, dev):
    """Per chunk: im2col, (K, CKK) x (CKK, n*P), then into NCHW with the bias (and a fused ReLU):
    three launches."""
    [(x, _)], [(y, _)] = bottoms, tops
    w2 = dev.param(self, 0)[0].reshape(self.K, self.CKK)
    bias = dev.param(self, 1)[0] if len(self.blobs) > 1 else None
    slope = dev.fused_relu(self)
    cols, z = ws["cols"], ws["z"]
    N, P = x.shape[0], self.OH * self.OW
    n = cols.shape[1] // P
    for a in range(0, N, n):
        b = min(N, a + n)
        c, zz = cols[:, :(b - a) * P], z[:, :(b - a) * P]
        dev.k.im2col(x[a:b], c, *_geometry(self))
        dev.k.gemm(w2, c, zz)
        dev.k.cols_to_nchw(zz, y[a:b], bias, slope is not None, slope or 0.0)


def conv_backward_cuda(self, tops, propagate_down, bottoms, ws, dev):
    """Per chunk: the output gradient into the GEMM's layout, its row sums (the bias), dW += dY
    cols^T (im2col again when there were several chunks), dcols = W^T dY and col2im."""
    [(x, dx)], [(_, dy)] = bottoms, tops
    w, dw = dev.param(self, 0)
    cols, dcols, z = ws["cols"], ws["dcols"], ws["z"]
    K, P, geo = self.K, self.OH * self.OW, _geometry(self)
    learn, N, n = self.learns(0), x.shape[0], cols.shape[1] // P
    for a in range(0, N, n):
        b = min(N, a + n)
        c, dc, zz = cols[:, :(b - a) * P], dcols[:, :(b - a) * P], z[:, :(b - a) * P]
        dev.k.nchw_to_cols(dy[a:b], zz)
        if self.learns(1):
            dev.k.sum_rows(zz, dev.param(self, 1)[1])
        if learn:
            if n < N:                # one chunk: the forward's columns are still there
                dev.k.im2col(x[a:b], c, *geo)
            dev.k.gemm(zz, c, dw.reshape(K, self.CKK), tb=True, beta=1.0)
        if propagate_down[0]:
            dev.k.gemm(w.reshape(K, self.CKK), zz, dc, ta=True)
            dev.k.col2im(dc, dx[a:b], *geo)


# -- Pooling: MAX (with its argmax mask on the device) and AVE, one launch each way ------------------
def pool_refusal(self, bottoms):
    return None if self.p.pooling_param.pool in ("MAX", "AVE") and len(self.top_names) == 1 else \
        "only MAX and AVE pooling with one top"


def pool_workspace(self, bottoms, tops):
    return {"mask": (tops[0].shape, np.int32)} if self.max else {}


def pool_forward_cuda(self, bottoms, tops, ws, dev):
    [(x, _)], [(y, _)] = bottoms, tops
    geo = (self.KH, self.KW, self.SH, self.SW, self.PH, self.PW)
    if self.max:
        dev.k.maxpool_forward(x, y, ws["mask"], *geo)
    else:
        dev.k.avepool_forward(x, y, *geo)


def pool_backward_cuda(self, tops, propagate_down, bottoms, ws, dev):
    if propagate_down[0]:
        [(_, dx)], [(_, dy)] = bottoms, tops
        geo = (self.KH, self.KW, self.SH, self.SW, self.PH, self.PW)
        if self.max:
            dev.k.maxpool_backward(dy, ws["mask"], dx, *geo)
        else:
            dev.k.avepool_backward(dy, dx, *geo)


# what the classes bind: (forward_cuda, backward_cuda, cuda_workspace, cuda_refusal)
CONVOLUTION = (conv_forward_cuda, conv_backward_cuda, conv_workspace, conv_refusal)
POOLING = (pool_forward_cuda, pool_backward_cuda, pool_workspace, pool_refusal)
