"""Inner product (fully connected) on a CUDA device, forward and backward: the functions,
parameters and meaning of netcli/ops/cpu/inner_product.py (read its docstrings), over device
arrays. inp (M, K) rows, weight (N, K) (or (K, N) when `transpose`), bias (N,) or None, out (M, N).
One GEMM each way (gemm.py), the bias in one launch. The CPU's scratch arrays (`yt`, `dw`) are
accepted and ignored (pass None): the GEMM writes the output and accumulates the weight gradient
in place. `fresh` lets the weight-gradient GEMM overwrite instead of add.

inner_product_forward_relu is inner_product_forward with a ReLU (negative slope `slope`) fused
into the bias launch: the device-only form an InnerProduct uses when the executor fuses the
in-place ReLU after it.
"""
from __future__ import annotations

from .gemm import gemm
from .im2col import bias_act
from .reductions import sum_bias


def _forward(out, inp, weight, bias, transpose, slope):
    gemm(inp, weight, out, tb=not transpose)
    if bias is not None or slope is not None:
        bias_act(out, bias, slope is not None, slope or 0.0)


def inner_product_forward(out, inp, weight, bias, yt, transpose):
    """out = inp @ W^T + bias."""
    _forward(out, inp, weight, bias, transpose, None)


def inner_product_forward_relu(out, inp, weight, bias, yt, transpose, slope):
    """inner_product_forward, then a ReLU with negative slope `slope`, in the same launches."""
    _forward(out, inp, weight, bias, transpose, slope)


def inner_product_backward(dinp, dweight, dbias, dout, inp, weight, dw, transpose, fresh):
    """dinp (M, K) = dout @ W (skipped when None); dweight += dout^T @ inp (or = when `fresh`);
    dbias (N,) += the column sums of dout. dweight or dbias None: not computed."""
    beta = 0.0 if fresh else 1.0
    if dweight is not None:
        if transpose:
            gemm(inp, dout, dweight, ta=True, beta=beta)
        else:
            gemm(dout, inp, dweight, ta=True, beta=beta)
    if dbias is not None:
        sum_bias(dout, dbias)
    if dinp is not None:
        gemm(dout, weight, dinp, tb=transpose)
