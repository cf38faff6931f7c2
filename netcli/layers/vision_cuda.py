"""Convolution and Pooling on a CUDA device: the device methods that Convolution (vision.py) and
Pooling (pooling.py) bind as their forward_cuda/backward_cuda/cuda_workspace/cuda_refusal
(netcli/layers/base.py says the contract). Each mirrors the layer's CPU forward/backward, calling
the op of the same name and signature in netcli/ops/cuda/ (dev.k) instead of netcli/ops/cpu/;
blobs are (data, diff) device arrays."""
from __future__ import annotations

import numpy as np


# -- Convolution: netcli/ops/cuda/conv2d.py, one workspace per bottom (as the CPU's) ---------------
def conv_workspace(self, bottoms, tops):
    from ..ops.cuda.conv2d import conv2d_workspace      # a shape computation: no device touched
    one = conv2d_workspace(bottoms[0].shape[0], self.C, self.H, self.W, self.K, self.KH, self.KW,
                           self.OH, self.OW, self.G, self.algorithm, np.float32)
    return {(f"{j}/{k}" if j else k): v for j in range(len(self.bottom_names)) for k, v in one.items()}


def conv_forward_cuda(self, bottoms, tops, ws, dev):
    weight = dev.param(self, 0)[0]
    bias = dev.param(self, 1)[0] if len(self.blobs) > 1 else None
    slope = dev.fused_relu(self)
    for j, ((x, _), (y, _)) in enumerate(zip(bottoms, tops)):
        args = (y, x, weight, bias, self._scratch(ws, j), *self._geometry())
        if slope is None:
            dev.k.conv2d_forward(*args)
        else:
            dev.k.conv2d_forward_relu(*args, slope=slope)


def conv_backward_cuda(self, tops, propagate_down, bottoms, ws, dev):
    weight, dweight = dev.param(self, 0)
    dweight = dweight if self.learns(0) else None
    dbias = dev.param(self, 1)[1] if self.learns(1) else None
    for j, ((x, dx), (_, dy)) in enumerate(zip(bottoms, tops)):
        dev.k.conv2d_backward(dx if propagate_down[j] else None, dweight, dbias, dy, x, weight,
                              self._scratch(ws, j), *self._geometry(), False)


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
        if self.max:
            dev.k.maxpool_backward(dy, ws["mask"], dx)
        else:
            dev.k.avepool_backward(dy, dx, self.KH, self.KW, self.SH, self.SW, self.PH, self.PW)


# what the classes bind: (forward_cuda, backward_cuda, cuda_workspace[, cuda_refusal])
CONVOLUTION = (conv_forward_cuda, conv_backward_cuda, conv_workspace)
POOLING = (pool_forward_cuda, pool_backward_cuda, pool_workspace, pool_refusal)
