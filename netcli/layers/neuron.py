"""Element-wise activations: top has the bottom's shape; in-place (top == bottom) allowed."""
from __future__ import annotations

import numpy as np

from ..config.schema import Field, Message
from .base import Layer, register


class Neuron(Layer):
    in_place_ok = True

    def setup(self, bottoms, tops):
        if tops[0] is not bottoms[0]:
            tops[0].reshape(bottoms[0].shape, bottoms[0].data.dtype)
        self.setup_neuron(bottoms[0])

    def setup_neuron(self, bottom):
        pass


RELU = Message("ReLUParameter", [
    Field("negative_slope", "float", 0.0, "slope for x < 0 (leaky ReLU when > 0)"),
])


@register
class ReLU(Neuron):
    type = "ReLU"
    doc = "y = max(x, 0) + negative_slope * min(x, 0)."
    params = {"relu_param": RELU}

    def setup_neuron(self, bottom):
        self.pos = np.empty(bottom.shape, bool)

    def forward(self, bottoms, tops):
        x, y = bottoms[0].data, tops[0].data
        s = self.p.relu_param.negative_slope
        np.greater(x, 0, out=self.pos)
        if s == 0:
            np.maximum(x, 0, out=y)
        else:
            np.multiply(x, np.where(self.pos, 1.0, s).astype(x.dtype), out=y)

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        dy, dx = tops[0].diff, bottoms[0].diff
        s = self.p.relu_param.negative_slope
        if s == 0:
            np.multiply(dy, self.pos, out=dx)
        else:
            np.multiply(dy, np.where(self.pos, 1.0, s).astype(dy.dtype), out=dx)


@register
class Sigmoid(Neuron):
    type = "Sigmoid"
    doc = "y = 1 / (1 + exp(-x))."

    def forward(self, bottoms, tops):
        x, y = bottoms[0].data, tops[0].data
        # 0.5 * tanh(0.5 x) + 0.5 is the same function without overflow in exp
        np.multiply(x, 0.5, out=y)
        np.tanh(y, out=y)
        y *= 0.5
        y += 0.5

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            y, dy, dx = tops[0].data, tops[0].diff, bottoms[0].diff
            np.multiply(dy, y * (1 - y), out=dx)


@register
class TanH(Neuron):
    type = "TanH"
    doc = "y = tanh(x)."

    def forward(self, bottoms, tops):
        np.tanh(bottoms[0].data, out=tops[0].data)

    def backward(self, tops, propagate_down, bottoms):
        if propagate_down[0]:
            y, dy, dx = tops[0].data, tops[0].diff, bottoms[0].diff
            np.multiply(dy, 1 - y * y, out=dx)


DROPOUT = Message("DropoutParameter", [
    Field("dropout_ratio", "float", 0.5, "probability of dropping a unit",
          check=lambda v: None if 0 <= v < 1 else f"must be in [0, 1), got {v}"),
])


@register
class Dropout(Neuron):
    type = "Dropout"
    doc = "TRAIN: zero each unit with probability dropout_ratio and scale the rest by 1/(1-ratio); TEST: identity."
    params = {"dropout_param": DROPOUT}

    def setup_neuron(self, bottom):
        self.u = np.empty(bottom.shape, np.float32)
        self.keep = np.empty(bottom.shape, bool)
        self.scale = 1.0 / (1.0 - self.p.dropout_param.dropout_ratio)

    def forward(self, bottoms, tops):
        x, y = bottoms[0].data, tops[0].data
        if self.phase != "TRAIN":
            if y is not x:
                y[...] = x
            return
        self.rng.random(out=self.u, dtype=np.float32)
        np.greater_equal(self.u, self.p.dropout_param.dropout_ratio, out=self.keep)
        np.multiply(x, self.keep, out=y)
        y *= self.scale

    def backward(self, tops, propagate_down, bottoms):
        if not propagate_down[0]:
            return
        dy, dx = tops[0].diff, bottoms[0].diff
        if self.phase != "TRAIN":
            if dx is not dy:
                dx[...] = dy
            return
        np.multiply(dy, self.keep, out=dx)
        dx *= self.scale
