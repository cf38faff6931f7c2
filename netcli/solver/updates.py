"""Update rules on the net's flat param buffers (Caffe's formulas, src/caffe/solvers/*.cpp).

`g` is the gradient after normalisation, clipping and weight decay; `rate` holds the local
learning rate of every element (base rate x lr_mult); each rule updates `w` in place and keeps its
history as flat arrays (what snapshots store). Work buffers are allocated once."""
from __future__ import annotations

import numpy as np


class Rule:
    n_history = 1

    def __init__(self, p, size):
        self.p = p
        self.history = [np.zeros(size, np.float32) for _ in range(self.n_history)]
        self.tmp = np.empty(size, np.float32)

    def update(self, w, g, rate, it):
        raise NotImplementedError


class SGD(Rule):
    """h = momentum*h + rate*g;  w -= h"""

    def update(self, w, g, rate, it):
        h, = self.history
        h *= np.float32(self.p.momentum)
        np.multiply(rate, g, out=self.tmp)
        h += self.tmp
        w -= h


class Nesterov(Rule):
    """h' = momentum*h + rate*g;  w -= (1+momentum)*h' - momentum*h"""

    def update(self, w, g, rate, it):
        h, = self.history
        m = np.float32(self.p.momentum)
        np.multiply(h, m, out=self.tmp)          # momentum * h_prev
        h *= m
        h += rate * g
        w -= (1 + m) * h
        w += self.tmp


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


class Adam(Rule):
    """m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
    w -= rate * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + delta),  t = it + 1"""
    n_history = 2

    def update(self, w, g, rate, it):
        m, v = self.history
        b1, b2 = np.float32(self.p.momentum), np.float32(self.p.momentum2)
        t = it + 1
        corr = np.float32(np.sqrt(1 - float(b2) ** t) / (1 - float(b1) ** t))
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        np.sqrt(v, out=self.tmp)
        self.tmp += np.float32(self.p.delta)
        w -= corr * rate * m / self.tmp


RULES = {"SGD": SGD, "NESTEROV": Nesterov, "ADAGRAD": AdaGrad, "RMSPROP": RMSProp, "ADADELTA": AdaDelta, "ADAM": Adam}
NAMES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad", "RMSPROP": "RMSProp", "ADADELTA": "AdaDelta",
         "ADAM": "Adam"}
