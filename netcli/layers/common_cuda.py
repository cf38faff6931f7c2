"""InnerProduct and Softmax on a CUDA device: the device ops the classes in common.py bind as
their forward_cuda/backward_cuda/cuda_refusal (netcli/layers/base.py says the contract).
Kernels: netcli/ops/cuda/ (dev.k); blobs are (data, diff) device arrays."""
from __future__ import annotations


# -- InnerProduct (axis 1): one GEMM, then the bias (and a fused ReLU) in one launch ----------------
def ip_refusal(self, bottoms):
    return None if self.R == 1 and not self.transpose else "only axis 1 without transpose"


def ip_forward_cuda(self, bottoms, tops, ws, dev):
    [(x, _)], [(y, _)] = bottoms, tops
    dev.k.gemm(x.reshape(self.M, self.K), dev.param(self, 0)[0], y, tb=True)
    bias = dev.param(self, 1)[0] if len(self.blobs) > 1 else None
    slope = dev.fused_relu(self)
    if bias is not None or slope is not None:
        dev.k.bias_act(y, bias, slope is not None, slope or 0.0)


def ip_backward_cuda(self, tops, propagate_down, bottoms, ws, dev):
    [(x, dx)], [(_, dy)] = bottoms, tops
    w, dw = dev.param(self, 0)
    if self.learns(0):
        dev.k.gemm(dy, x.reshape(self.M, self.K), dw, ta=True, beta=1.0)
    if self.learns(1):
        dev.k.sum_bias(dy, dev.param(self, 1)[1])
    if propagate_down[0]:
        dev.k.gemm(dy, w, dx.reshape(self.M, self.K))


# -- Softmax along `axis` ---------------------------------------------------------------------------
def softmax_forward_cuda(self, bottoms, tops, ws, dev):
    [(x, _)], [(y, _)] = bottoms, tops
    dev.k.softmax_forward(x, y, self.axis)


def softmax_backward_cuda(self, tops, propagate_down, bottoms, ws, dev):
    if propagate_down[0]:
        [(_, dx)], [(y, dy)] = bottoms, tops
        dev.k.softmax_backward(y, dy, dx, self.axis)
