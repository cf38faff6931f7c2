"""Caffe's neuron layers (element-wise activations): top has the bottom's shape; in-place (top ==
bottom) allowed. Activations beyond Caffe's: neuron_extra.py; the Gaussian error linear unit: gelu.py."""
from __future__ import annotations

import numpy as np

from ..config.schema import Field, Message, engine_field, Problems
from ..exec import threads
from ..fillers import FILLER
from ..ops.cpu.dropout import dropout_backward, dropout_forward
from ..ops.cpu.relu_passes import relu_backward, relu_forward
from .base import Layer, LayerError, PerSample, register
from . import onnx_ops


class Neuron(Layer):
    in_place_ok = True
    draw_kind = "neuron"

    def setup(self, bottoms, tops):
        if tops[0] is not bottoms[0]:
            tops[0].reshape(bottoms[0].shape, bottoms[0].data.dtype)
        self.setup_neuron(bottoms[0])

    def setup_neuron(self, bottom):
        pass


# -- on a CUDA device: netcli/ops/cuda/activations.py's kernels (dev.k), one launch each way -----
def _squash_forward_cuda(self, bottoms, tops, ws, dev):
    dev.k.squash_forward(bottoms[0][0], tops[0][0], getattr(dev.k, self.squash))


def _squash_backward_cuda(self, tops, propagate_down, bottoms, ws, dev):
    if propagate_down[0]:
        (y, dy), (_, dx) = tops[0], bottoms[0]
        dev.k.squash_backward(y, dy, dx, getattr(dev.k, self.squash))


RELU = Message("ReLUParameter", [
    Field("negative_slope", "float", 0.0, "slope for x < 0 (leaky ReLU when > 0)", number=1),
    engine_field(2),
], number=123)
SIGMOID = Message("SigmoidParameter", [engine_field(1)], number=124)
TANH = Message("TanHParameter", [engine_field(1)], number=127)


class PerSampleNeuron(Neuron, PerSample):
    """An element-wise activation, per sample (so it joins the executor's stretches)."""


@register
class ReLU(PerSampleNeuron):
    type = "ReLU"
    to_onnx = onnx_ops.relu
    doc = "y = max(x, 0) + negative_slope * min(x, 0)."
    params = {"relu_param": RELU}

    @property
    def relu_slope(self):
        return self.p.relu_param.negative_slope

    def forward_cuda(self, bottoms, tops, ws, dev):
        dev.k.relu_forward(bottoms[0][0], tops[0][0], self.relu_slope)

    def backward_cuda(self, tops, propagate_down, bottoms, ws, dev):
        if propagate_down[0]:
            (y, dy), (_, dx) = tops[0], bottoms[0]
            dev.k.relu_backward(y, dy, dx, self.relu_slope)      # y > 0 exactly where x > 0

    keep_mask = False     # net_plan.relu_masks: a later layer writes the top in place (y no longer tells)

    def setup_neuron(self, bottom):
        self.shape, self.k = bottom.shape or (1,), np.array([self.relu_slope], bottom.data.dtype)   # k: as jobs read it

    def _masked(self):
        return self.keep_mask or self.relu_slope < 0

    def workspace(self, rows):   # pos: where x > 0, for the backward, where y cannot say
        return {"pos": ((rows,) + tuple(self.shape[1:]), np.bool_)} if self._masked() else {}

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        x, y, s = bottoms[0].data[lo:hi], tops[0].data[lo:hi], self.p.relu_param.negative_slope
        if not (self.keep_mask or s < 0):
            xf, yf, k = x.reshape(-1), y.reshape(-1), self.k
            return threads.sample_tiles(lambda i, j: relu_forward(xf[i:j], yf[i:j], k), yf.size, hi - lo)
        pos = np.greater(x, 0, out=ws["pos"][:hi - lo].reshape(x.shape))
        np.multiply(x, np.where(pos, 1.0, s).astype(x.dtype), out=y)

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if not propagate_down[0]:
            return
        dy, dx = tops[0].diff[lo:hi], bottoms[0].diff[lo:hi]
        s = self.relu_slope
        if not self._masked():
            relu_backward(tops[0].data[lo:hi].reshape(-1), dy.reshape(-1), dx.reshape(-1), self.k)
            return
        np.multiply(dy, np.where(ws["pos"][:hi - lo].reshape(dy.shape), 1.0, s).astype(dy.dtype), out=dx)


@register
class Sigmoid(PerSampleNeuron):
    type = "Sigmoid"
    params = {"sigmoid_param": SIGMOID}
    squash = "SIGMOID"                    # its CUDA kernel (ops/cuda/activations.py)
    forward_cuda, backward_cuda = _squash_forward_cuda, _squash_backward_cuda
    to_onnx = onnx_ops.simple("Sigmoid")
    doc = "y = 1 / (1 + exp(-x))."

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        x, y = bottoms[0].data[lo:hi], tops[0].data[lo:hi]
        # 0.5 * tanh(0.5 x) + 0.5 is the same function without overflow in exp
        np.multiply(x, 0.5, out=y)
        np.tanh(y, out=y)
        y *= 0.5
        y += 0.5

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            y, dy, dx = tops[0].data[lo:hi], tops[0].diff[lo:hi], bottoms[0].diff[lo:hi]
            np.multiply(dy, y * (1 - y), out=dx)


@register
class TanH(PerSampleNeuron):
    type = "TanH"
    params = {"tanh_param": TANH}
    squash = "TANH"                    # its CUDA kernel (ops/cuda/activations.py)
    forward_cuda, backward_cuda = _squash_forward_cuda, _squash_backward_cuda
    to_onnx = onnx_ops.simple("Tanh")
    doc = "y = tanh(x)."

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        np.tanh(bottoms[0].data[lo:hi], out=tops[0].data[lo:hi])

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            y, dy, dx = tops[0].data[lo:hi], tops[0].diff[lo:hi], bottoms[0].diff[lo:hi]
            np.multiply(dy, 1 - y * y, out=dx)


DROPOUT = Message("DropoutParameter", [
    Field("dropout_ratio", "float", 0.5, "probability of dropping a unit",
          check=lambda v: None if 0 <= v < 1 else f"must be in [0, 1), got {v}", number=1),
], number=108)


@register
class Dropout(PerSampleNeuron):
    type = "Dropout"
    to_onnx = onnx_ops.identity
    doc = ("TRAIN: zero each unit with probability dropout_ratio and scale the rest by 1/(1-ratio); TEST: identity. "
           "The mask of each sample comes from a counter-based stream (the same for any thread count).")
    params = {"dropout_param": DROPOUT}

    def setup_neuron(self, bottom):
        self.train = self.phase == "TRAIN"
        n = bottom.shape[0] if bottom.data.ndim else 1
        self.E = bottom.count // max(n, 1)
        self.keep = np.empty((n, self.E), bool) if self.train else None
        self.scale = 1.0 / (1.0 - self.p.dropout_param.dropout_ratio)
        self.key = int(self.rng.integers(0, 2 ** 63))    # this layer's stream
        self.passes = 0                                  # forward passes so far: the counter

    def _rows(self, arr, lo, hi):
        return arr.reshape(-1, self.E)[lo:hi]

    # -- on a CUDA device: netcli/ops/cuda/dropout.py, the CPU's masks bit for bit ---------------------
    def cuda_workspace(self, bottoms, tops):
        return {"keep": (self.keep.shape, np.bool_)} if self.train else {}

    def forward_cuda(self, bottoms, tops, ws, dev):
        x, y = bottoms[0][0], tops[0][0]
        if not self.train:
            if x is not y:
                y.copy_to_device(x)
            return
        rows = self.keep.shape
        dev.k.dropout_forward(x.reshape(*rows), y.reshape(*rows), ws["keep"], self.key, self.passes, 0,
                              self.p.dropout_param.dropout_ratio, self.scale)
        self.passes += 1

    def backward_cuda(self, tops, propagate_down, bottoms, ws, dev):
        dy, dx = tops[0][1], bottoms[0][1]
        if not propagate_down[0]:
            return
        if not self.train:
            if dx is not dy:
                dx.copy_to_device(dy)
            return
        rows = self.keep.shape
        dev.k.dropout_backward(dy.reshape(*rows), ws["keep"], dx.reshape(*rows), self.scale)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        x, y = self._rows(bottoms[0].data, lo, hi), self._rows(tops[0].data, lo, hi)
        if not self.train:
            if tops[0] is not bottoms[0]:
                np.copyto(y, x)
            return
        dropout_forward(x, y, self.keep[lo:hi], self.key, self.passes, lo,
                        self.p.dropout_param.dropout_ratio, self.scale)

    def finish_rows(self, tops, workspaces):
        if self.train:
            self.passes += 1

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if not propagate_down[0]:
            return
        dy, dx = self._rows(tops[0].diff, lo, hi), self._rows(bottoms[0].diff, lo, hi)
        if not self.train:
            if tops[0] is not bottoms[0]:
                np.copyto(dx, dy)
            return
        dropout_backward(dy, self.keep[lo:hi], dx, self.scale)

    def get_state(self):
        return {"key": self.key, "passes": self.passes}

    def set_state(self, state):
        self.key, self.passes = int(state["key"]), int(state["passes"])


class _SavesInput(PerSampleNeuron):
    """A neuron whose backward needs its input: in place, a copy is kept (as Caffe does)."""

    def setup_neuron(self, bottom):
        self.x_copy = None
        self.inplace = False

    def setup(self, bottoms, tops):
        super().setup(bottoms, tops)
        self.inplace = tops[0] is bottoms[0]
        if self.inplace:
            self.x_copy = np.empty(bottoms[0].shape or (1,), bottoms[0].data.dtype)

    def input(self, bottoms, lo, hi):
        return self.x_copy[lo:hi] if self.inplace else bottoms[0].data[lo:hi]

    def keep_input(self, bottoms, lo, hi):
        if self.inplace:
            np.copyto(self.x_copy[lo:hi], bottoms[0].data[lo:hi])


PRELU = Message("PReLUParameter", [
    Field("filler", FILLER, None, "initial slopes (default: constant 0.25)", number=1),
    Field("channel_shared", "bool", False, "one slope for all channels", number=2),
], number=131)


@register
class PReLU(_SavesInput):
    type = "PReLU"
    to_onnx = onnx_ops.prelu
    doc = ("Leaky ReLU with a learned slope per channel: y = max(x, 0) + a * min(x, 0). The slopes' "
           "gradient is summed per share of the batch, the shares combined in a fixed order.")
    params = {"prelu_param": PRELU}

    def setup(self, bottoms, tops):
        super().setup(bottoms, tops)
        p = self.p.prelu_param
        x = bottoms[0]
        if x.data.ndim < 2 and not p.channel_shared:
            raise LayerError("PReLU needs an input with a channel axis (or channel_shared: true)", "prelu_param")
        self.C = 1 if p.channel_shared else x.shape[1]
        filler = p.filler if p.has("filler") else FILLER.parse({"type": "constant", "value": 0.25}, Problems(), None, "")
        self.add_param((self.C,), filler)
        self.bshape = (1, self.C) + (1,) * (x.data.ndim - 2) if not p.channel_shared else (1,) * max(x.data.ndim, 1)
        self.axes = tuple(i for i in range(max(x.data.ndim, 1)) if not (i == 1 and not p.channel_shared))

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        self.keep_input(bottoms, lo, hi)
        x = bottoms[0].data[lo:hi]
        a = self.blobs[0].data.reshape(self.bshape)
        np.copyto(tops[0].data[lo:hi], np.where(x > 0, x, a * x))

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        x, dy = self.input(bottoms, lo, hi), tops[0].diff[lo:hi]
        a = self.blobs[0].data.reshape(self.bshape)
        neg = x <= 0
        da = self.param_grad(grads, 0)
        if da is not None:
            part = (dy * x * neg).sum(axis=self.axes).reshape(-1)
            if fresh:
                np.copyto(da, part)
            else:
                da += part
        if propagate_down[0]:
            np.copyto(bottoms[0].diff[lo:hi], np.where(neg, a * dy, dy))


ELU = Message("ELUParameter", [Field("alpha", "float", 1.0, "scale of the negative part", number=1)], number=140)


@register
class ELU(PerSampleNeuron):
    type = "ELU"
    to_onnx = onnx_ops.elu
    doc = "y = x for x > 0, alpha * (exp(x) - 1) otherwise."
    params = {"elu_param": ELU}

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        x, a = bottoms[0].data[lo:hi], self.p.elu_param.alpha
        np.copyto(tops[0].data[lo:hi], np.where(x > 0, x, a * np.expm1(np.minimum(x, 0))))

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            y, dy, a = tops[0].data[lo:hi], tops[0].diff[lo:hi], self.p.elu_param.alpha
            np.copyto(bottoms[0].diff[lo:hi], np.where(y > 0, dy, dy * (y + a)))


@register
class AbsVal(_SavesInput):
    type = "AbsVal"
    to_onnx = onnx_ops.simple("Abs")
    doc = "y = |x|."

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        self.keep_input(bottoms, lo, hi)
        np.abs(bottoms[0].data[lo:hi], out=tops[0].data[lo:hi])

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            np.multiply(tops[0].diff[lo:hi], np.sign(self.input(bottoms, lo, hi)), out=bottoms[0].diff[lo:hi])


POWER = Message("PowerParameter", [
    Field("power", "float", 1.0, "exponent", number=1),
    Field("scale", "float", 1.0, "multiplier of x", number=2),
    Field("shift", "float", 0.0, "added after scaling", number=3),
], number=122)


@register
class Power(_SavesInput):
    type = "Power"
    to_onnx = onnx_ops.power
    doc = "y = (shift + scale * x) ^ power."
    params = {"power_param": POWER}

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        self.keep_input(bottoms, lo, hi)
        p = self.p.power_param
        np.power(p.shift + p.scale * bottoms[0].data[lo:hi], p.power, out=tops[0].data[lo:hi])

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            p = self.p.power_param
            z = p.shift + p.scale * self.input(bottoms, lo, hi)
            g = p.power * p.scale * np.power(z, p.power - 1) if p.power != 1 else np.full_like(z, p.scale)
            np.multiply(tops[0].diff[lo:hi], g, out=bottoms[0].diff[lo:hi])


EXP = Message("ExpParameter", [
    Field("base", "float", -1.0, "base (-1: e)", number=1),
    Field("scale", "float", 1.0, "multiplier of x", number=2),
    Field("shift", "float", 0.0, "added after scaling", number=3),
], number=111)


@register
class Exp(PerSampleNeuron):
    type = "Exp"
    to_onnx = onnx_ops.exp
    doc = "y = base ^ (shift + scale * x) (base -1: e)."
    params = {"exp_param": EXP}

    def setup_neuron(self, bottom):
        p = self.p.exp_param
        if p.base != -1 and p.base <= 0:
            raise LayerError(f"base must be positive or -1 (for e), got {p.base}", "exp_param.base")
        self.ln_base = 1.0 if p.base == -1 else float(np.log(p.base))

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        p = self.p.exp_param
        np.exp(self.ln_base * (p.shift + p.scale * bottoms[0].data[lo:hi]), out=tops[0].data[lo:hi])

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            y, dy = tops[0].data[lo:hi], tops[0].diff[lo:hi]
            np.multiply(dy, y * (self.ln_base * self.p.exp_param.scale), out=bottoms[0].diff[lo:hi])


LOG = Message("LogParameter", [
    Field("base", "float", -1.0, "base (-1: e)", number=1),
    Field("scale", "float", 1.0, "multiplier of x", number=2),
    Field("shift", "float", 0.0, "added after scaling", number=3),
], number=134)


@register
class Log(_SavesInput):
    type = "Log"
    to_onnx = onnx_ops.log
    doc = "y = log_base(shift + scale * x) (base -1: e)."
    params = {"log_param": LOG}

    def setup(self, bottoms, tops):
        p = self.p.log_param
        if p.base != -1 and (p.base <= 0 or p.base == 1):
            raise LayerError(f"base must be positive and not 1, or -1 (for e), got {p.base}", "log_param.base")
        self.ln_base = 1.0 if p.base == -1 else float(np.log(p.base))
        super().setup(bottoms, tops)

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        self.keep_input(bottoms, lo, hi)
        p, y = self.p.log_param, tops[0].data[lo:hi]
        np.log(p.shift + p.scale * bottoms[0].data[lo:hi], out=y)
        y /= self.ln_base

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            p = self.p.log_param
            z = p.shift + p.scale * self.input(bottoms, lo, hi)
            np.multiply(tops[0].diff[lo:hi], p.scale / (z * self.ln_base), out=bottoms[0].diff[lo:hi])


@register
class BNLL(_SavesInput):
    type = "BNLL"
    to_onnx = onnx_ops.simple("Softplus")
    doc = "Binomial normal log likelihood (softplus): y = log(1 + exp(x))."

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        self.keep_input(bottoms, lo, hi)
        x = bottoms[0].data[lo:hi]
        np.copyto(tops[0].data[lo:hi], np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x))))

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        if propagate_down[0]:
            x = self.input(bottoms, lo, hi)
            np.multiply(tops[0].diff[lo:hi], 0.5 * np.tanh(0.5 * x) + 0.5, out=bottoms[0].diff[lo:hi])


THRESHOLD = Message("ThresholdParameter", [Field("threshold", "float", 0.0, "y = 1 where x > threshold, else 0", number=1)], number=128)


@register
class Threshold(PerSampleNeuron):
    type = "Threshold"
    to_onnx = onnx_ops.threshold
    doc = "y = 1 if x > threshold else 0 (no gradient)."
    params = {"threshold_param": THRESHOLD}
    has_backward = False

    def forward_rows(self, bottoms, tops, lo, hi, ws):
        np.greater(bottoms[0].data[lo:hi], self.p.threshold_param.threshold, out=tops[0].data[lo:hi], casting="unsafe")

    def backward_rows(self, tops, propagate_down, bottoms, lo, hi, ws, grads, fresh):
        pass
