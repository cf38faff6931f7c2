"""Activations beyond Caffe's neuron layers: the books' HardSigmoid, HardTanh/Clip, Maxout, and
Swish (y = x * sigmoid(beta * x), Caffe's later addition)."""
from __future__ import annotations

import numpy as np

from ..config.schema import Field, Message
from .base import LayerError, PerSample, register
from .neuron import PerSampleNeuron, _SavesInput
from . import onnx_ops

SWISH = Message("SwishParameter", [
    Field("beta", "float", 1.0, "y = x * sigmoid(beta * x)", number=1),
], number=147)


@register
class Swish(PerSampleNeuron):
    type = "Swish"
    to_onnx = onnx_ops.swish
    doc = "y = x * sigmoid(beta * x) (Ramachandran et al.; Caffe's Swish layer)."
    params = {"swish_param": SWISH}

    def setup_neuron(self, bottom):
        self.sig = np.empty(bottom.shape or (1,), bottom.data.dtype)   # sigmoid(beta x), for backward

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        x, y, sig = bottoms[0].data[lo:hi], tops[0].data[lo:hi], self.sig[lo:hi]
        beta = self.p.swish_param.beta
        np.multiply(x, 0.5 * beta, out=sig)          # sigmoid(z) = 0.5 tanh(z / 2) + 0.5: no overflow
        np.tanh(sig, out=sig)
        sig *= 0.5
        sig += 0.5
        np.multiply(x, sig, out=y)                   # y may be x (in place): sig is already kept

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            # dy/dx = sig + beta x sig (1 - sig) = beta y + sig (1 - beta y), from y and sig alone
            y, dy, dx, sig = tops[0].data[lo:hi], tops[0].diff[lo:hi], bottoms[0].diff[lo:hi], self.sig[lo:hi]
            by = self.p.swish_param.beta * y
            np.multiply(dy, by + sig * (1 - by), out=dx)


HARD_SIGMOID = Message("HardSigmoidParameter", [
    Field("slope", "float", 0.2, "slope of the linear part", number=1),
    Field("offset", "float", 0.5, "value at x = 0", number=2),
], number=10003)


@register
class HardSigmoid(_SavesInput):
    type = "HardSigmoid"
    to_onnx = onnx_ops.hard_sigmoid
    doc = "y = clip(slope * x + offset, 0, 1) (Keras' hard_sigmoid: slope 0.2, offset 0.5)."
    params = {"hard_sigmoid_param": HARD_SIGMOID}

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        self.keep_input(bottoms, lo, hi)
        p = self.p.hard_sigmoid_param
        np.clip(p.slope * bottoms[0].data[lo:hi] + p.offset, 0, 1, out=tops[0].data[lo:hi])

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            p = self.p.hard_sigmoid_param
            z = p.slope * self.input(bottoms, lo, hi) + p.offset
            np.multiply(tops[0].diff[lo:hi], p.slope * ((z > 0) & (z < 1)), out=bottoms[0].diff[lo:hi])


CLIP = Message("ClipParameter", [
    Field("min", "float", None, "lower bound", number=1),
    Field("max", "float", None, "upper bound", number=2),
], number=148)


@register
class Clip(_SavesInput):
    type = "Clip"
    to_onnx = onnx_ops.clip
    doc = "y = min(max(x, min), max); the gradient passes where min <= x <= max."
    params = {"clip_param": CLIP}
    default_bounds = None

    def setup(self, bottoms, tops):
        p = self.p.clip_param
        lo, hi = p.min, p.max
        if self.default_bounds:
            lo = self.default_bounds[0] if lo is None else lo
            hi = self.default_bounds[1] if hi is None else hi
        if lo is None or hi is None:
            raise LayerError("Clip needs both min and max", "clip_param.min" if lo is None else "clip_param.max")
        if lo > hi:
            raise LayerError(f"min {lo} is larger than max {hi}", "clip_param.min")
        self.lo, self.hi = lo, hi
        super().setup(bottoms, tops)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        self.keep_input(bottoms, lo, hi)
        np.clip(bottoms[0].data[lo:hi], self.lo, self.hi, out=tops[0].data[lo:hi])

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            x = self.input(bottoms, lo, hi)
            np.multiply(tops[0].diff[lo:hi], (x >= self.lo) & (x <= self.hi), out=bottoms[0].diff[lo:hi])


@register
class HardTanh(Clip):
    type = "HardTanh"
    doc = "Clip with default bounds [-1, 1] (clip_param may change them)."
    default_bounds = (-1.0, 1.0)


MAXOUT = Message("MaxoutParameter", [
    Field("num_pieces", "int", 2, "channels per group; the output has channels / num_pieces channels",
          check=lambda v: None if v >= 1 else f"must be >= 1, got {v}", number=1),
], number=10004)


@register
class Maxout(PerSample):
    type = "Maxout"
    draw_kind = "neuron"
    to_onnx = onnx_ops.maxout
    doc = "Max over groups of num_pieces consecutive channels (Goodfellow et al.'s maxout units)."
    params = {"maxout_param": MAXOUT}

    def setup(self, bottoms, tops):
        x = bottoms[0]
        k = self.p.maxout_param.num_pieces
        if x.data.ndim < 2 or x.shape[1] % k:
            raise LayerError(f"channels {x.shape[1] if x.data.ndim > 1 else '?'} {self.where()} are not divisible "
                             f"by num_pieces {k}", "maxout_param.num_pieces")
        self.k = k
        self.gshape = (x.shape[0], x.shape[1] // k, k) + x.shape[2:]
        tops[0].reshape((x.shape[0], x.shape[1] // k) + x.shape[2:], x.data.dtype)
        self.arg = np.empty(tops[0].shape, np.intp)

    def _groups(self, arr, lo, hi):
        return arr[lo:hi].reshape((hi - lo,) + self.gshape[1:])

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        g, arg = self._groups(bottoms[0].data, lo, hi), self.arg[lo:hi]
        arg[...] = g.argmax(axis=2)
        np.copyto(tops[0].data[lo:hi], np.take_along_axis(g, arg[:, :, None], 2)[:, :, 0])

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            dx = self._groups(bottoms[0].diff, lo, hi)
            dx[...] = 0
            np.put_along_axis(dx, self.arg[lo:hi, :, None], tops[0].diff[lo:hi, :, None], 2)
