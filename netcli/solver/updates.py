"""Update rules on the net's flat param buffers (Caffe's formulas, src/caffe/solvers/*.cpp).

`step(w, g, rate, it, scale)` applies one update to every param at once: the gradient is first
scaled (1/iter_size and clipping), then weight decay is added (coupled, as Caffe does for every
rule), then the rule runs with the per-element rate lr_mult*rate. History is kept as flat arrays,
which snapshots store. SGD, Nesterov and Adam run fused Numba kernels over per-thread slices; the
others use NumPy with buffers allocated once."""
from __future__ import annotations

import numpy as np

from .. import threads


class Rule:
    n_history = 1

    def __init__(self, p, lr_mult, decay):
        """lr_mult, decay: per-element learning-rate multipliers and weight decay (float32)."""
        self.p = p
        size = lr_mult.size
        self.lr, self.decay = lr_mult, decay
        self.l1 = p.regularization_type == "L1"
        self.history = [np.zeros(size, np.float32) for _ in range(self.n_history)]
        self.tmp = np.empty(size, np.float32)
        self.rate = np.empty(size, np.float32)
        self.ranges = threads.chunks(size) if size >= 1 << 16 else [(0, size)]

    def step(self, w, g, rate, it, scale=1.0):
        if scale != 1.0:
            g *= np.float32(scale)
        if self.p.weight_decay:
            if self.l1:
                np.sign(w, out=self.tmp)
                self.tmp *= self.decay
            else:
                np.multiply(self.decay, w, out=self.tmp)
            g += self.tmp
        np.multiply(self.lr, np.float32(rate), out=self.rate)
        self.update(w, g, self.rate, it)

    def update(self, w, g, rate, it):
        """w -= the rule's step for gradient g (already scaled and decayed), per-element rate."""
        raise NotImplementedError


class _Fused(Rule):
    def step(self, w, g, rate, it, scale=1.0):
        args = self.fused_args(rate, it)
        kernel = self.kernel()

        def chunk(i, lo, hi):
            kernel(w[lo:hi], g[lo:hi], *(h[lo:hi] for h in self.history), self.lr[lo:hi],
                   self.decay[lo:hi], *args, np.float32(scale), self.l1)
        threads.run(chunk, self.ranges)

    def update(self, w, g, rate, it):
        # the same kernel with unit lr_mult, no decay: for callers that prepared g themselves
        kernel = self.kernel()
        zero = np.zeros_like(w)
        args = self.fused_args(1.0, it)
        kernel(w, g, *self.history, rate, zero, *args, np.float32(1.0), False)


class SGD(_Fused):
    """h = momentum*h + rate*g;  w -= h"""

    def kernel(self):
        from ..kernels.update import sgd
        return sgd

    def fused_args(self, rate, it):
        return np.float32(rate), np.float32(self.p.momentum)


class Nesterov(_Fused):
    """h' = momentum*h + rate*g;  w -= (1+momentum)*h' - momentum*h"""

    def kernel(self):
        from ..kernels.update import nesterov
        return nesterov

    def fused_args(self, rate, it):
        return np.float32(rate), np.float32(self.p.momentum)


class Adam(_Fused):
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

    def update(self, w, g, rate, it):
        h, = self.history
        h += g * g
        np.sqrt(h, out=self.tmp)
        self.tmp += np.float32(self.p.delta)
        w -= rate * g / self.tmp


class RMSProp(Rule):
    """h = rms_decay*h + (1-rms_decay)*g^2;  w -= rate * g / (sqrt(h) + delta)"""

    def update(self, w, g, rate, it):
        h, = self.history
        d = np.float32(self.p.rms_decay)
        h *= d
        h += (1 - d) * g * g
        np.sqrt(h, out=self.tmp)
        self.tmp += np.float32(self.p.delta)
        w -= rate * g / self.tmp


class AdaDelta(Rule):
    """h = m*h + (1-m)*g^2;  dx = g * sqrt((h2+delta)/(h+delta));  h2 = m*h2 + (1-m)*dx^2;  w -= rate*dx"""
    n_history = 2

    def update(self, w, g, rate, it):
        h, h2 = self.history
        m, d = np.float32(self.p.momentum), np.float32(self.p.delta)
        h *= m
        h += (1 - m) * g * g
        dx = self.tmp
        np.divide(h2 + d, h + d, out=dx)
        np.sqrt(dx, out=dx)
        dx *= g
        h2 *= m
        h2 += (1 - m) * dx * dx
        w -= rate * dx


RULES = {"SGD": SGD, "NESTEROV": Nesterov, "ADAGRAD": AdaGrad, "RMSPROP": RMSProp, "ADADELTA": AdaDelta, "ADAM": Adam}
NAMES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad", "RMSPROP": "RMSProp", "ADADELTA": "AdaDelta",
         "ADAM": "Adam"}
