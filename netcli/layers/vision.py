"""Convolution and Pooling: setup (checks, shapes, params) here; the computation in netcli.kernels."""
from __future__ import annotations

import math

import numpy as np

from ..config.schema import Field, Message, REQUIRED, positive, non_negative
from ..fillers import FILLER
from ..kernels import pool
from ..kernels.conv2d import conv2d_backward, conv2d_forward, conv2d_layout, conv2d_workspace
from .base import LayerError, PerSample, register


def _pair(p, base, default, prefix, required=False):
    """Resolve Caffe's `base` (repeated, 1 or 2 values) versus `base_h`/`base_w`."""
    rep = getattr(p, base)
    if rep is not None and not isinstance(rep, list):
        rep = [rep]
    short = "kernel" if base == "kernel_size" else base
    h, w = getattr(p, short + "_h", None), getattr(p, short + "_w", None)
    if h is not None or w is not None:
        if rep:
            raise LayerError(f"give either {base} or {short}_h/{short}_w, not both", f"{prefix}.{base}")
        if h is None or w is None:
            raise LayerError(f"{short}_h and {short}_w must be given together", f"{prefix}.{short}_h")
        return h, w
    if not rep:
        if required:
            raise LayerError(f"{base} (or {short}_h and {short}_w) is required", f"{prefix}.{base}")
        return default, default
    if len(rep) == 1:
        return rep[0], rep[0]
    if len(rep) == 2:
        return rep[0], rep[1]
    raise LayerError(f"{base} takes 1 or 2 values for 2-D data, got {len(rep)}", f"{prefix}.{base}")


def _need_4d(layer, bottom, what):
    if bottom.data.ndim != 4:
        raise LayerError(f"{what} needs a 4-D input (num, channels, height, width), got shape "
                         f"{tuple(bottom.shape)} {layer.where()}")


CONVOLUTION = Message("ConvolutionParameter", [
    Field("num_output", "int", REQUIRED, "number of output channels", check=positive),
    Field("bias_term", "bool", True, "add a learned bias per output channel"),
    Field("pad", "int", None, "zero padding (1 value, or h and w)", repeated=True, check=non_negative),
    Field("kernel_size", "int", None, "kernel size (1 value, or h and w)", repeated=True, check=positive),
    Field("stride", "int", None, "stride (1 value, or h and w); default 1", repeated=True, check=positive),
    Field("dilation", "int", None, "dilation (1 value, or h and w); default 1", repeated=True, check=positive),
    Field("pad_h", "int", None, "vertical padding", check=non_negative),
    Field("pad_w", "int", None, "horizontal padding", check=non_negative),
    Field("kernel_h", "int", None, "kernel height", check=positive),
    Field("kernel_w", "int", None, "kernel width", check=positive),
    Field("stride_h", "int", None, "vertical stride", check=positive),
    Field("stride_w", "int", None, "horizontal stride", check=positive),
    Field("group", "int", 1, "split channels into groups convolved separately", check=positive),
    Field("weight_filler", FILLER, None, "weight initialisation (default: constant 0)"),
    Field("bias_filler", FILLER, None, "bias initialisation (default: constant 0)"),
    Field("axis", "int", 1, "channel axis (only 1 is supported)"),
])


@register
class Convolution(PerSample):
    type = "Convolution"
    doc = "2-D convolution as GEMMs over patch matrices (channels-last im2row, or per-image im2col)."
    params = {"convolution_param": CONVOLUTION}

    def setup(self, bottoms, tops):
        p = self.p.convolution_param
        f = "convolution_param"
        if p.axis != 1:
            raise LayerError("only axis 1 (NCHW) is supported", f"{f}.axis")
        x = bottoms[0]
        _need_4d(self, x, "Convolution")
        self.KH, self.KW = _pair(p, "kernel_size", None, f, required=True)
        self.PH, self.PW = _pair(p, "pad", 0, f)
        self.SH, self.SW = _pair(p, "stride", 1, f)
        dil = p.dilation or [1]
        if len(dil) > 2:
            raise LayerError(f"dilation takes 1 or 2 values for 2-D data, got {len(dil)}", f"{f}.dilation")
        self.DH, self.DW = (dil[0], dil[-1])
        N, C, H, W = x.shape
        G, K = p.group, p.num_output
        if C % G:
            raise LayerError(f"input channels {C} {self.where()} are not divisible by group {G}", f"{f}.group")
        if K % G:
            raise LayerError(f"num_output {K} is not divisible by group {G}", f"{f}.group")
        ekh, ekw = self.DH * (self.KH - 1) + 1, self.DW * (self.KW - 1) + 1
        Hp, Wp = H + 2 * self.PH, W + 2 * self.PW
        if ekh > Hp or ekw > Wp:
            raise LayerError(f"kernel {ekh}x{ekw} larger than padded input {Hp}x{Wp} {self.where()}",
                             f"{f}.kernel_size")
        self.OH = (Hp - ekh) // self.SH + 1
        self.OW = (Wp - ekw) // self.SW + 1
        self.N, self.C, self.K, self.G = N, C, K, G
        self.CKK = C // G * self.KH * self.KW
        tops[0].reshape((N, K, self.OH, self.OW), x.data.dtype)
        self.add_param((K, C // G, self.KH, self.KW), p.weight_filler)
        if p.bias_term:
            self.add_param((K,), p.bias_filler)
        self.H, self.W, self.dtype = H, W, x.data.dtype
        self.rows_layout = conv2d_layout(C, self.KW, G)     # the patch layout: netcli/kernels/conv2d.py

    def workspace(self, n):
        return conv2d_workspace(n, self.C, self.H, self.W, self.K, self.KH, self.KW, self.OH, self.OW,
                                self.G, self.rows_layout, self.dtype)

    def _geometry(self):
        return (self.KH, self.KW, self.SH, self.SW, self.PH, self.PW, self.DH, self.DW, self.G, self.rows_layout)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        bias = self.blobs[1].data if len(self.blobs) > 1 else None
        conv2d_forward(tops[0].data[lo:hi], bottoms[0].data[lo:hi], self.blobs[0].data, bias, ws, *self._geometry())

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        dinp = bottoms[0].diff[lo:hi] if propagate_down[0] else None
        conv2d_backward(dinp, grads[0], grads[1] if len(grads) > 1 else None, tops[0].diff[lo:hi],
                        self.blobs[0].data, ws, *self._geometry(), fresh)

    def flops(self, bottoms, tops):
        return 2 * self.K * self.CKK * self.OH * self.OW


POOLING = Message("PoolingParameter", [
    Field("pool", ("MAX", "AVE"), "MAX", "pooling method"),
    Field("kernel_size", "int", None, "square kernel size", check=positive),
    Field("kernel_h", "int", None, "kernel height", check=positive),
    Field("kernel_w", "int", None, "kernel width", check=positive),
    Field("pad", "int", None, "zero padding (default 0)", check=non_negative),
    Field("pad_h", "int", None, "vertical padding", check=non_negative),
    Field("pad_w", "int", None, "horizontal padding", check=non_negative),
    Field("stride", "int", None, "stride (default 1)", check=positive),
    Field("stride_h", "int", None, "vertical stride", check=positive),
    Field("stride_w", "int", None, "horizontal stride", check=positive),
    Field("global_pooling", "bool", False, "pool over the whole height and width"),
    Field("round_mode", ("CEIL", "FLOOR"), "CEIL", "rounding of the output size (Caffe: CEIL)"),
])


@register
class Pooling(PerSample):
    type = "Pooling"
    doc = "Max or average pooling with Caffe's output size and padding rules."
    params = {"pooling_param": POOLING}
    tops = (1, 2)

    def setup(self, bottoms, tops):
        p = self.p.pooling_param
        f = "pooling_param"
        x = bottoms[0]
        _need_4d(self, x, "Pooling")
        N, C, H, W = x.shape
        if p.global_pooling:
            if p.kernel_size is not None or p.kernel_h is not None or p.kernel_w is not None:
                raise LayerError("with global_pooling: true the kernel size cannot be given",
                                 f"{f}.kernel_size")
            self.KH, self.KW = H, W
        else:
            self.KH, self.KW = _pair(p, "kernel_size", None, f, required=True)
        self.PH, self.PW = _pair(p, "pad", 0, f)
        self.SH, self.SW = _pair(p, "stride", 1, f)
        if p.global_pooling and (self.PH or self.PW or self.SH != 1 or self.SW != 1):
            raise LayerError("with global_pooling: true only pad 0 and stride 1 are allowed", f"{f}.global_pooling")
        if self.PH >= self.KH or self.PW >= self.KW:
            raise LayerError(f"pad {self.PH}x{self.PW} must be smaller than kernel {self.KH}x{self.KW}", f"{f}.pad")
        Hp, Wp = H + 2 * self.PH, W + 2 * self.PW
        if self.KH > Hp or self.KW > Wp:
            raise LayerError(f"kernel {self.KH}x{self.KW} larger than padded input {Hp}x{Wp} {self.where()}",
                             f"{f}.kernel_size")
        rnd = math.ceil if p.round_mode == "CEIL" else math.floor
        OH = int(rnd((Hp - self.KH) / self.SH)) + 1
        OW = int(rnd((Wp - self.KW) / self.SW)) + 1
        if self.PH or self.PW:  # the last window must start inside the image (plus left pad)
            if (OH - 1) * self.SH >= H + self.PH:
                OH -= 1
            if (OW - 1) * self.SW >= W + self.PW:
                OW -= 1
        self.max = p.pool == "MAX"
        if len(tops) > 1 and not self.max:
            raise LayerError("a second top (the argmax mask) needs pool: MAX", f"{f}.pool")
        tops[0].reshape((N, C, OH, OW), x.data.dtype)
        if len(tops) > 1:
            tops[1].reshape((N, C, OH, OW), x.data.dtype)
        self.mask = np.empty((N, C, OH, OW), np.int32) if self.max else None
        self.fast2x2 = (self.max and (self.KH, self.KW, self.SH, self.SW, self.PH, self.PW) == (2, 2, 2, 2, 0, 0)
                        and H % 2 == 0 and W % 2 == 0)
        self.k3x3 = (self.KH, self.KW) == (3, 3)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        x, y = bottoms[0].data[lo:hi], tops[0].data[lo:hi]
        if not self.max:
            if self.k3x3:
                pool.avepool3x3_forward(x, y, self.SH, self.SW, self.PH, self.PW)
            else:
                pool.avepool_forward(x, y, self.KH, self.KW, self.SH, self.SW, self.PH, self.PW)
            return
        m = self.mask[lo:hi]
        if self.fast2x2:
            pool.maxpool2x2_forward(x, y, m)
        elif self.k3x3:
            pool.maxpool3x3_forward(x, y, m, self.SH, self.SW, self.PH, self.PW)
        else:
            pool.maxpool_forward(x, y, m, self.KH, self.KW, self.SH, self.SW, self.PH, self.PW)
        if len(tops) > 1:
            tops[1].data[lo:hi] = m

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if not propagate_down[0]:
            return
        dy, dx = tops[0].diff[lo:hi], bottoms[0].diff[lo:hi]
        if self.max:
            pool.maxpool_backward(dy, self.mask[lo:hi], dx)
        elif self.k3x3:
            pool.avepool3x3_backward(dy, dx, self.SH, self.SW, self.PH, self.PW)
        else:
            pool.avepool_backward(dy, dx, self.KH, self.KW, self.SH, self.SW, self.PH, self.PW)
