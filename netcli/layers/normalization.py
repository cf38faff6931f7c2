"""BatchNorm, Scale and LRN (Caffe semantics)."""
from __future__ import annotations

import numpy as np

from ..config.schema import Field, Message, Problems, non_negative
from ..fillers import FILLER
from .base import Layer, LayerError, canon_axis, register

BATCH_NORM = Message("BatchNormParameter", [
    Field("use_global_stats", "bool", None, "normalise with the stored statistics (default: true in TEST)"),
    Field("moving_average_fraction", "float", 0.999, "decay of the running averages"),
    Field("eps", "float", 1e-5, "added to the variance"),
])


@register
class BatchNorm(Layer):
    type = "BatchNorm"
    doc = ("Normalise each channel over the batch and spatial axes (no learned affine: add a Scale layer "
           "with bias_term). Params: running mean sum, variance sum, and their scale factor, never learned.")
    params = {"batch_norm_param": BATCH_NORM}
    in_place_ok = True
    fixed_lr_mult = 0.0

    def setup(self, bottoms, tops):
        p = self.p.batch_norm_param
        x = bottoms[0]
        if x.data.ndim < 2:
            raise LayerError(f"BatchNorm needs (N, C, ...) input, got {x.shape} {self.where()}")
        self.global_stats = p.use_global_stats if p.use_global_stats is not None else self.phase != "TRAIN"
        if tops[0] is not x:
            tops[0].reshape(x.shape, x.data.dtype)
        C = x.shape[1]
        self.C = C
        self.axes = (0,) + tuple(range(2, x.data.ndim))
        self.bshape = (1, C) + (1,) * (x.data.ndim - 2)
        self.m = x.count // C
        for shape in ((C,), (C,), (1,)):
            self.add_param(shape, None)      # zeros, as Caffe
        self.inv_std = np.empty(C, np.float64)

    def forward(self, bottoms, tops):
        p = self.p.batch_norm_param
        x = bottoms[0].data
        mean_b, var_b, s_b = (b.data for b in self.blobs)
        if self.global_stats:
            f = 0.0 if s_b[0] == 0 else 1.0 / s_b[0]
            mean, var = mean_b * f, var_b * f
        else:
            mean = x.mean(axis=self.axes)
            var = ((x - mean.reshape(self.bshape)) ** 2).mean(axis=self.axes)
            maf = p.moving_average_fraction
            s_b[0] = s_b[0] * maf + 1
            mean_b[...] = mean + maf * mean_b
            var_b[...] = (self.m / max(self.m - 1, 1)) * var + maf * var_b
        self.inv_std[...] = 1.0 / np.sqrt(var + p.eps)
        np.copyto(tops[0].data, (x - mean.reshape(self.bshape)) * self.inv_std.reshape(self.bshape))

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        dy, y = tops[0].diff, tops[0].data
        inv = self.inv_std.reshape(self.bshape)
        if self.global_stats:
            np.copyto(bottoms[0].diff, dy * inv)
            return
        mdy = dy.mean(axis=self.axes, keepdims=True)
        mdyy = (dy * y).mean(axis=self.axes, keepdims=True)
        np.copyto(bottoms[0].diff, (dy - mdy - y * mdyy) * inv)


SCALE = Message("ScaleParameter", [
    Field("axis", "int", 1, "first axis of the bottom that the scale covers"),
    Field("num_axes", "int", 1, "how many axes the scale covers"),
    Field("filler", FILLER, None, "scale initialisation (default: constant 1)"),
    Field("bias_term", "bool", False, "also learn a bias"),
    Field("bias_filler", FILLER, None, "bias initialisation (default: constant 0)"),
])


@register
class Scale(Layer):
    type = "Scale"
    doc = "y = x * gamma (+ beta), gamma broadcast over axes [axis, axis + num_axes); the affine part after BatchNorm."
    params = {"scale_param": SCALE}
    in_place_ok = True

    def setup(self, bottoms, tops):
        p = self.p.scale_param
        x = bottoms[0]
        nd = x.data.ndim
        a = canon_axis(p.axis, nd, "scale_param.axis")
        if p.num_axes < 0 or a + p.num_axes > nd:
            raise LayerError(f"num_axes {p.num_axes} from axis {a} does not fit a {nd}-D input", "scale_param.num_axes")
        pshape = x.shape[a:a + p.num_axes]
        self.bshape = (1,) * a + pshape + (1,) * (nd - a - p.num_axes)
        self.sum_axes = tuple(range(a)) + tuple(range(a + p.num_axes, nd))
        self.inplace = tops[0] is x
        if not self.inplace:
            tops[0].reshape(x.shape, x.data.dtype)
        self.x_copy = np.empty(x.shape, x.data.dtype) if self.inplace else None
        one = FILLER.parse({"type": "constant", "value": 1.0}, Problems(), None, "")
        self.add_param(pshape, p.filler if p.has("filler") else one)
        if p.bias_term:
            self.add_param(pshape, p.bias_filler)

    def forward(self, bottoms, tops):
        x = bottoms[0].data
        if self.inplace:
            np.copyto(self.x_copy, x)
        y = x * self.blobs[0].data.reshape(self.bshape)
        if len(self.blobs) > 1:
            y += self.blobs[1].data.reshape(self.bshape)
        np.copyto(tops[0].data, y)

    def backward(self, tops, propagate_down, bottoms):
        dy = tops[0].diff
        x = self.x_copy if self.inplace else bottoms[0].data
        self.blobs[0].diff += (dy * x).sum(axis=self.sum_axes).reshape(self.blobs[0].shape)
        if len(self.blobs) > 1:
            self.blobs[1].diff += dy.sum(axis=self.sum_axes).reshape(self.blobs[1].shape)
        if propagate_down[0]:
            np.copyto(bottoms[0].diff, dy * self.blobs[0].data.reshape(self.bshape))


LRN = Message("LRNParameter", [
    Field("local_size", "int", 5, "channels (ACROSS) or window side (WITHIN) summed over; odd",
          check=lambda v: None if v > 0 and v % 2 == 1 else f"must be a positive odd number, got {v}"),
    Field("alpha", "float", 1.0, "scaling parameter"),
    Field("beta", "float", 0.75, "exponent"),
    Field("norm_region", ("ACROSS_CHANNELS", "WITHIN_CHANNEL"), "ACROSS_CHANNELS", "normalise across channels or within one"),
    Field("k", "float", 1.0, "ACROSS_CHANNELS: added to the sum (WITHIN_CHANNEL uses 1, as Caffe)", check=non_negative),
])


@register
class LRN(Layer):
    type = "LRN"
    doc = ("Local response normalisation: y = x / (k + alpha/n sum x^2)^beta over n neighbouring channels, or "
           "y = x / (1 + alpha * mean of x^2 over an n x n window)^beta within each channel.")
    params = {"lrn_param": LRN}

    def setup(self, bottoms, tops):
        x = bottoms[0]
        if x.data.ndim != 4:
            raise LayerError(f"LRN needs a 4-D input, got {x.shape} {self.where()}")
        tops[0].reshape(x.shape, x.data.dtype)
        self.scale = np.empty(x.shape, x.data.dtype)

    def _window_sum_channels(self, v):
        """sum over the n channels centred on each channel (zero padded)."""
        n = self.p.lrn_param.local_size
        pad = (n - 1) // 2
        c = np.cumsum(np.pad(v, ((0, 0), (pad + 1, pad), (0, 0), (0, 0))), axis=1)
        return c[:, n:] - c[:, :-n]

    def forward(self, bottoms, tops):
        p = self.p.lrn_param
        x = bottoms[0].data
        n = p.local_size
        if p.norm_region == "ACROSS_CHANNELS":
            self.scale[...] = p.k + (p.alpha / n) * self._window_sum_channels(x * x)
        else:
            from ..kernels.pool import avepool_forward
            pad = (n - 1) // 2
            avg = np.empty_like(x)
            avepool_forward(np.ascontiguousarray(x * x), avg, n, n, 1, 1, pad, pad)
            self.scale[...] = 1 + p.alpha * avg
        np.multiply(x, self.scale ** -p.beta, out=tops[0].data)

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        p = self.p.lrn_param
        x, y, dy = bottoms[0].data, tops[0].data, tops[0].diff
        n = p.local_size
        t = dy * y / self.scale
        if p.norm_region == "ACROSS_CHANNELS":
            acc = self._window_sum_channels(t) * (p.alpha / n)
        else:
            from ..kernels.pool import avepool_backward
            pad = (n - 1) // 2
            acc = np.empty_like(x)
            avepool_backward(np.ascontiguousarray(t), acc, n, n, 1, 1, pad, pad)
            acc *= p.alpha
        np.copyto(bottoms[0].diff, dy * self.scale ** -p.beta - 2 * p.beta * x * acc)
