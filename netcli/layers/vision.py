"""Convolution, Deconvolution and Crop: setup (checks, shapes, params) here; the computation in
netcli.kernels (Pooling and SPP: pooling.py)."""
from __future__ import annotations

import numpy as np

from ..config.schema import Field, Message, engine_field, REQUIRED, positive, non_negative
from ..fillers import FILLER
from ..ops.cpu import im2col
from ..ops.cpu.blas import gemm_address
from ..ops.cpu.conv2d import conv2d_backward, conv2d_forward, conv2d_scratch, conv2d_workspace
from ..ops.cpu.conv2d_rule import GEMM_TEAM_ALGORITHMS, KERNEL_TEAM_ALGORITHMS, conv2d_algorithm
from .base import LayerError, PerSample, canon_axis, register
from . import onnx_ops, vision_cuda as cu


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


def _kernel_geometry(layer, p, f):
    """Set layer.KH, KW, PH, PW, SH, SW, DH, DW from a ConvolutionParameter."""
    layer.KH, layer.KW = _pair(p, "kernel_size", None, f, required=True)
    layer.PH, layer.PW = _pair(p, "pad", 0, f)
    layer.SH, layer.SW = _pair(p, "stride", 1, f)
    dil = p.dilation or [1]
    if len(dil) > 2:
        raise LayerError(f"dilation takes 1 or 2 values for 2-D data, got {len(dil)}", f"{f}.dilation")
    layer.DH, layer.DW = (dil[0], dil[-1])


def _conv_common(layer, x):
    """What Convolution and Deconvolution check alike: axis 1, a 4-D input, the kernel geometry
    (set on the layer), channels and outputs divisible by group. Returns (param, field prefix,
    (N, C, H, W), group, num_output)."""
    p, f = layer.p.convolution_param, "convolution_param"
    if p.axis != 1:
        raise LayerError("only axis 1 (NCHW) is supported", f"{f}.axis")
    _need_4d(layer, x, layer.type)
    _kernel_geometry(layer, p, f)
    C, G, K = x.shape[1], p.group, p.num_output
    if C % G:
        raise LayerError(f"input channels {C} {layer.where()} are not divisible by group {G}", f"{f}.group")
    if K % G:
        raise LayerError(f"num_output {K} is not divisible by group {G}", f"{f}.group")
    return p, f, tuple(x.shape), G, K


def _same_shapes(layer, bottoms, tops):
    """Caffe's several bottoms of one Convolution: each its own top, one set of weights."""
    if len(tops) != len(bottoms):
        raise LayerError(f"{len(bottoms)} bottoms need {len(bottoms)} tops, got {len(tops)}")
    for i, b in enumerate(bottoms[1:], 1):
        if b.shape != bottoms[0].shape:
            raise LayerError(f"all bottoms need the same shape: {tuple(bottoms[0].shape)} {layer.where()} but "
                             f"{tuple(b.shape)} {layer.where(i)}")


CONVOLUTION = Message("ConvolutionParameter", [
    Field("num_output", "int", REQUIRED, "number of output channels", check=positive, number=1),
    Field("bias_term", "bool", True, "add a learned bias per output channel", number=2),
    Field("pad", "int", None, "zero padding (1 value, or h and w)", repeated=True, check=non_negative, number=3),
    Field("kernel_size", "int", None, "kernel size (1 value, or h and w)", repeated=True, check=positive, number=4),
    Field("stride", "int", None, "stride (1 value, or h and w); default 1", repeated=True, check=positive, number=6),
    Field("dilation", "int", None, "dilation (1 value, or h and w); default 1", repeated=True, check=positive, number=18),
    Field("pad_h", "int", None, "vertical padding", check=non_negative, number=9, proto={"default": 0}),
    Field("pad_w", "int", None, "horizontal padding", check=non_negative, number=10, proto={"default": 0}),
    Field("kernel_h", "int", None, "kernel height", check=positive, number=11),
    Field("kernel_w", "int", None, "kernel width", check=positive, number=12),
    Field("stride_h", "int", None, "vertical stride", check=positive, number=13),
    Field("stride_w", "int", None, "horizontal stride", check=positive, number=14),
    Field("group", "int", 1, "split channels into groups convolved separately", check=positive, number=5),
    Field("weight_filler", FILLER, None, "weight initialisation (default: constant 0)", number=7),
    Field("bias_filler", FILLER, None, "bias initialisation (default: constant 0)", number=8),
    Field("axis", "int", 1, "channel axis (only 1 is supported)", number=16),
    engine_field(15),
    Field("force_nd_im2col", "bool", False, "accepted for Caffe compatibility and ignored (the same result)",
          number=17),
], number=106)


def _conv_label(self):
    return [f"{self.KH}x{self.KW}/{self.SH} pad {self.PH}, {self.p.convolution_param.num_output} out"]


@register
class Convolution(PerSample):
    type = "Convolution"
    absorbs_relu = True
    draw_kind = "conv"
    draw_label = _conv_label
    to_onnx = onnx_ops.convolution
    doc = ("2-D convolution: GEMMs over patch matrices (channels-last im2row, or per-image im2col), "
           "GEMMs on the input itself for 1x1 stride-1 kernels, a direct kernel for depthwise ones, "
           "Winograd F(2x2, 3x3) for 3x3 stride-1 ones from 16 channels; "
           "several bottoms of one shape give as many tops, with one set of weights.")
    params = {"convolution_param": CONVOLUTION}
    forward_cuda, backward_cuda, cuda_workspace = cu.CONVOLUTION      # vision_cuda.py
    bottoms = (1, None)
    tops = (1, None)

    def setup(self, bottoms, tops):
        x = bottoms[0]
        p, f, (N, C, H, W), G, K = _conv_common(self, x)
        _same_shapes(self, bottoms, tops)
        ekh, ekw = self.DH * (self.KH - 1) + 1, self.DW * (self.KW - 1) + 1
        Hp, Wp = H + 2 * self.PH, W + 2 * self.PW
        if ekh > Hp or ekw > Wp:
            raise LayerError(f"kernel {ekh}x{ekw} larger than padded input {Hp}x{Wp} {self.where()}",
                             f"{f}.kernel_size")
        self.OH = (Hp - ekh) // self.SH + 1
        self.OW = (Wp - ekw) // self.SW + 1
        self.N, self.C, self.K, self.G = N, C, K, G
        self.CKK = C // G * self.KH * self.KW
        for t in tops:
            t.reshape((N, K, self.OH, self.OW), x.data.dtype)
        self.add_param((K, C // G, self.KH, self.KW), p.weight_filler)
        if p.bias_term:
            self.add_param((K,), p.bias_filler)
        self.H, self.W, self.dtype = H, W, x.data.dtype
        # one of ops/cpu/conv2d_rule.py ALGORITHMS, from the shape
        self.algorithm = conv2d_algorithm(C, H, W, K, self.KH, self.KW, self.SH, self.SW, self.PH, self.PW,
                                          self.DH, self.DW, G, images=N)

    def timing_label(self):
        """What `netcli time` shows after the layer's name: the CPU algorithm."""
        return self.algorithm

    @property
    def team_jobs(self):
        """Whether threads beyond a run's shares can help this layer (exec/team.py)."""
        if self.algorithm in KERNEL_TEAM_ALGORITHMS:
            return True
        return self.G == 1 and self.algorithm in GEMM_TEAM_ALGORITHMS and gemm_address(self.dtype) != 0

    def workspace(self, n):
        return self._per_bottom(conv2d_workspace, n) if self.keeps_for_backward else {}

    def scratch(self, n):
        return self._per_bottom(lambda *shape: conv2d_scratch(*shape, keeps=self.keeps_for_backward), n)

    def _per_bottom(self, spec, n):
        one = spec(n, self.C, self.H, self.W, self.K, self.KH, self.KW, self.OH, self.OW,
                   self.G, self.algorithm, self.dtype)
        # bottom j > 0 keeps its own patches (the backward reads them) under "j/<name>"
        return {(f"{j}/{k}" if j else k): v for j in range(len(self.bottom_names)) for k, v in one.items()}

    @staticmethod
    def _scratch(ws, j):
        return ws if j == 0 else {k.split("/", 1)[1]: v for k, v in ws.items() if k.startswith(f"{j}/")}

    def _geometry(self):
        return (self.KH, self.KW, self.SH, self.SW, self.PH, self.PW, self.DH, self.DW, self.G, self.algorithm)

    def forward_rows(self, bottoms, tops, lo, hi, ws, after=None, after_tile=None):
        """after(a, b) (a single bottom only): once rows a..b of the top are final, in blocks;
        after_tile(a, tile), where given: once a tile of row a is (ops/cpu/conv2d.py)."""
        bias = self.blobs[1].data if len(self.blobs) > 1 else None
        then = None if after is None else (lambda a, b: after(lo + a, lo + b))
        then_tile = None if after_tile is None else (lambda a, tile: after_tile(lo + a, tile))
        for j, (x, y) in enumerate(zip(bottoms, tops)):
            conv2d_forward(y.data[lo:hi], x.data[lo:hi], self.blobs[0].data, bias, self._scratch(ws, j),
                           *self._geometry(), after=then, after_tile=then_tile, keeps=self.keeps_for_backward)

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        dweight, dbias = self.param_grad(grads, 0), self.param_grad(grads, 1)
        for j, (x, y) in enumerate(zip(bottoms, tops)):
            dinp = x.diff[lo:hi] if propagate_down[j] else None
            conv2d_backward(dinp, dweight, dbias, y.diff[lo:hi], x.data[lo:hi], self.blobs[0].data,
                            self._scratch(ws, j), *self._geometry(), fresh and j == 0)

    def flops(self, bottoms, tops):
        return 2 * self.K * self.CKK * self.OH * self.OW * len(bottoms)


@register
class Deconvolution(PerSample):
    type = "Deconvolution"
    draw_kind = "conv"
    draw_label = _conv_label
    to_onnx = onnx_ops.deconvolution
    doc = ("Transposed convolution (Caffe's Deconvolution): the adjoint of Convolution with the same "
           "convolution_param; output size stride*(H-1) + dilation*(kernel-1) + 1 - 2*pad.")
    params = {"convolution_param": CONVOLUTION}

    def setup(self, bottoms, tops):
        x = bottoms[0]
        p, f, (N, C, H, W), G, K = _conv_common(self, x)
        ekh, ekw = self.DH * (self.KH - 1) + 1, self.DW * (self.KW - 1) + 1
        self.OH = self.SH * (H - 1) + ekh - 2 * self.PH
        self.OW = self.SW * (W - 1) + ekw - 2 * self.PW
        if self.OH < 1 or self.OW < 1:
            raise LayerError(f"pad {self.PH}x{self.PW} leaves no output for input {H}x{W} {self.where()}", f"{f}.pad")
        self.N, self.C, self.H, self.W, self.K, self.G = N, C, H, W, K, G
        tops[0].reshape((N, K, self.OH, self.OW), x.data.dtype)
        self.add_param((C, K // G, self.KH, self.KW), p.weight_filler)   # Caffe's order: (in, out/group, kh, kw)
        if p.bias_term:
            self.add_param((K,), p.bias_filler)
        self.dtype = x.data.dtype

    def scratch(self, n):
        # the columns of the convolution this layer is the adjoint of: it maps the output back
        # onto an H x W grid, so its patch matrix is (K*KH*KW, H*W) per image; the forward and
        # the backward each write them before reading (as the weight gradient's buffer)
        shape = (n, self.K * self.KH * self.KW, self.H * self.W)
        return {"cols": (shape, self.dtype), "dw": ((self.C // self.G, self.K // self.G * self.KH * self.KW), self.dtype)}

    def _geometry(self):
        return (self.KH, self.KW, self.SH, self.SW, self.PH, self.PW, self.DH, self.DW, self.H, self.W)

    def _groups(self):
        cg, kk = self.C // self.G, self.K // self.G * self.KH * self.KW
        w = self.blobs[0].data.reshape(self.C, -1)
        return [(slice(g * cg, (g + 1) * cg), slice(g * kk, (g + 1) * kk)) for g in range(self.G)], w

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        x3 = bottoms[0].data[lo:hi].reshape(hi - lo, self.C, -1)
        cols = ws["cols"]
        groups, w = self._groups()
        for cs, ks in groups:          # per image: cols[n] (K/G*KH*KW, H*W) = W_g^T @ x[n, group]
            np.matmul(w[cs].T, x3[:, cs], out=cols[:, ks])
        im2col.col2im_images(cols, tops[0].data[lo:hi], *self._geometry())
        if len(self.blobs) > 1:
            im2col.add_bias(tops[0].data[lo:hi].reshape(hi - lo, self.K, -1), self.blobs[1].data)

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        dy = tops[0].diff[lo:hi]
        n = hi - lo
        dbias, dweight = self.param_grad(grads, 1), self.param_grad(grads, 0)
        if dbias is not None:
            im2col.sum_bias(dy.reshape(n, self.K, -1), dbias)
        cols = ws["cols"]
        im2col.im2col_images(dy, cols, *self._geometry())
        groups, w = self._groups()
        x3 = bottoms[0].data[lo:hi].reshape(n, self.C, -1)
        if dweight is not None:
            dw = dweight.reshape(self.C, -1)
            for cs, ks in groups:      # dW_g += sum over n of x[n, group] (C/G, H*W) @ cols[n].T
                np.einsum("nch,nkh->ck", x3[:, cs], cols[:, ks], out=ws["dw"])
                dw[cs] += ws["dw"]
        if propagate_down[0]:
            dx3 = bottoms[0].diff[lo:hi].reshape(n, self.C, -1)
            for cs, ks in groups:
                np.matmul(w[cs], cols[:, ks], out=dx3[:, cs])

    def flops(self, bottoms, tops):
        return 2 * self.C * self.K // self.G * self.KH * self.KW * self.H * self.W


CROP = Message("CropParameter", [
    Field("axis", "int", 2, "the first axis cropped; earlier axes keep the first bottom's size", number=1),
    Field("offset", "int", None, "where the crop starts: one value for every cropped axis, or one per axis "
          "(default 0)", repeated=True, check=non_negative, number=2),
], number=144)


@register
class Crop(PerSample):
    type = "Crop"
    to_onnx = onnx_ops.crop
    doc = ("Crop the first bottom to the second bottom's size on the axes from `axis` on, starting at "
           "`offset` (Caffe's Crop, as used by fully convolutional nets).")
    params = {"crop_param": CROP}
    bottoms = (2, 2)
    no_grad_bottoms = (1,)

    def setup(self, bottoms, tops):
        p = self.p.crop_param
        x, ref = bottoms
        nd = x.data.ndim
        a = canon_axis(p.axis, nd, "crop_param.axis")
        if ref.data.ndim != nd:
            raise LayerError(f"the bottoms need the same number of axes: {tuple(x.shape)} {self.where()} and "
                             f"{tuple(ref.shape)} {self.where(1)}")
        off = list(p.offset or [0])
        if len(off) == 1:
            off *= nd - a
        if len(off) != nd - a:
            raise LayerError(f"offset takes 1 value or one per cropped axis ({nd - a}), got {len(off)}",
                             "crop_param.offset")
        shape = list(x.shape)
        self.region = [slice(None)] * a
        for i, o in zip(range(a, nd), off):
            if o + ref.shape[i] > x.shape[i]:
                raise LayerError(f"axis {i}: offset {o} + size {ref.shape[i]} {self.where(1)} exceeds "
                                 f"{x.shape[i]} {self.where()}", "crop_param.offset")
            shape[i] = ref.shape[i]
            self.region.append(slice(o, o + ref.shape[i]))
        self.region = tuple(self.region)
        self.per_sample = a >= 1        # cropping the batch axis takes other rows: the whole batch
        tops[0].reshape(tuple(shape), x.data.dtype)

    def forward(self, bottoms, tops):
        self.forward_rows(bottoms, tops, 0, None, None)

    def backward(self, tops, propagate_down, bottoms):
        self.backward_rows(tops, propagate_down, bottoms, 0, None, None, None, False)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        np.copyto(tops[0].data[lo:hi], bottoms[0].data[lo:hi][self.region])

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            dx = bottoms[0].diff[lo:hi]
            dx[...] = 0
            dx[self.region] = tops[0].diff[lo:hi]
