"""Update rules on the net's flat param buffers (Caffe's formulas, src/caffe/solvers/*.cpp).

`step(w, g, rate, it, scale)` applies one update to every param at once: the gradient is first
scaled (1/iter_size and clipping), then weight decay is added (coupled, as Caffe does for every
rule), then the rule runs with the per-element rate lr_mult*rate, all in one fused Numba kernel
(netcli/kernels/update.py) over per-thread slices. History is kept as flat arrays, which snapshots
store."""
from __future__ import annotations

import numpy as np

from .. import threads


class Rule:
    """One fused Numba kernel per rule, run over per-thread slices of the flat buffers."""
    n_history = 1

    def __init__(self, p, lr_mult, decay):
        """lr_mult, decay: per-element learning-rate multipliers and weight decay (float32)."""
        self.p = p
        size = lr_mult.size
        self.lr, self.decay = lr_mult, decay
        self.l1 = p.regularization_type == "L1"
        self.history = [np.zeros(size, np.float32) for _ in range(self.n_history)]
        self.ranges = threads.chunks(size) if size >= 1 << 16 else [(0, size)]

    def kernel(self):
        raise NotImplementedError

    def fused_args(self, rate, it):
        """The rule's scalar arguments after (w, g, history..., lr, decay)."""
        raise NotImplementedError

    def step(self, w, g, rate, it, scale=1.0):
        """One update of every param: g is scaled, weight decay added, then the rule applied."""
        args = self.fused_args(rate, it)
        kernel = self.kernel()

        def chunk(i, lo, hi):
            kernel(w[lo:hi], g[lo:hi], *(h[lo:hi] for h in self.history), self.lr[lo:hi],
                   self.decay[lo:hi], *args, np.float32(scale), self.l1)
        threads.run(chunk, self.ranges)


class SGD(Rule):
    """h = momentum*h + rate*g;  w -= h"""

    def kernel(self):
        from ..kernels.update import sgd
        return sgd

    def fused_args(self, rate, it):
        return np.float32(rate), np.float32(self.p.momentum)


class Nesterov(Rule):
    """h' = momentum*h + rate*g;  w -= (1+momentum)*h' - momentum*h"""

    def kernel(self):
        from ..kernels.update import nesterov
        return nesterov

    def fused_args(self, rate, it):
        return np.float32(rate), np.float32(self.p.momentum)


class Adam(Rule):
    """m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
    w -= rate * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + delta),  t = it + 1"""
    n_history = 2

    def kernel(self):
        from ..kernels.update import adam
        return adam

    def fused_args(self, rate, it):
        b1, b2, t = self.p.momentum, self.p.momentum2, it + 1
        corr = np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        return np.float32(rate * corr), np.float32(b1), np.float32(b2), np.float32(self.p.delta)


class AdaGrad(Rule):
    """h += g^2;  w -= rate * g / (sqrt(h) + delta)"""

    def kernel(self):
        from ..kernels.update import adagrad
        return adagrad

    def fused_args(self, rate, it):
        return np.float32(rate), np.float32(self.p.delta)


class RMSProp(Rule):
    """h = rms_decay*h + (1-rms_decay)*g^2;  w -= rate * g / (sqrt(h) + delta)"""

    def kernel(self):
        from ..kernels.update import rmsprop
        return rmsprop

    def fused_args(self, rate, it):
        return np.float32(rate), np.float32(self.p.rms_decay), np.float32(self.p.delta)


class AdaDelta(Rule):
    """h = m*h + (1-m)*g^2;  dx = g * sqrt((h2+delta)/(h+delta));  h2 = m*h2 + (1-m)*dx^2;  w -= rate*dx"""
    n_history = 2

    def kernel(self):
        from ..kernels.update import adadelta
        return adadelta

    def fused_args(self, rate, it):
        return np.float32(rate), np.float32(self.p.momentum), np.float32(self.p.delta)


RULES = {"SGD": SGD, "NESTEROV": Nesterov, "ADAGRAD": AdaGrad, "RMSPROP": RMSProp, "ADADELTA": AdaDelta, "ADAM": Adam}
NAMES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad", "RMSPROP": "RMSProp", "ADADELTA": "AdaDelta",
         "ADAM": "Adam"}
