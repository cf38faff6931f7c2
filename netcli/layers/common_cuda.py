"""InnerProduct and Softmax on a CUDA device: the device methods the classes in common.py bind as
their forward_cuda/backward_cuda (netcli/layers/base.py says the contract). InnerProduct's mirror
its CPU forward_rows/backward_rows over the whole batch, calling the op of the same name and
signature in netcli/ops/cuda/ (dev.k); blobs are (data, diff) device arrays."""
from __future__ import annotations


# -- InnerProduct: netcli/ops/cuda/inner_product.py (a following in-place ReLU fused in) ------------
def ip_forward_cuda(self, bottoms, tops, ws, dev):
    [(x, _)], [(y, _)] = bottoms, tops
    bias = dev.param(self, 1)[0] if len(self.blobs) > 1 else None
    args = (y.reshape(self.M, self.N), x.reshape(self.M, self.K), dev.param(self, 0)[0], bias, None, self.transpose)
    slope = dev.fused_relu(self)
    if slope is None:
        dev.k.inner_product_forward(*args)
    else:
        dev.k.inner_product_forward_relu(*args, slope)


def ip_backward_cuda(self, tops, propagate_down, bottoms, ws, dev):
    [(x, dx)], [(_, dy)] = bottoms, tops
    weight, dweight = dev.param(self, 0)
    dbias = dev.param(self, 1)[1] if self.learns(1) else None
    dev.k.inner_product_backward(dx.reshape(self.M, self.K) if propagate_down[0] else None,
                                 dweight if self.learns(0) else None, dbias, dy.reshape(self.M, self.N),
                                 x.reshape(self.M, self.K), weight, None, self.transpose, False)


# -- Softmax along `axis` ---------------------------------------------------------------------------
def softmax_forward_cuda(self, bottoms, tops, ws, dev):
    [(x, _)], [(y, _)] = bottoms, tops
    dev.k.softmax_forward(x, y, self.axis)


def softmax_backward_cuda(self, tops, propagate_down, bottoms, ws, dev):
    if propagate_down[0]:
        [(_, dx)], [(y, dy)] = bottoms, tops
        dev.k.softmax_backward(y, dy, dx, self.axis)
