"""Nesterov's accelerated gradient (Caffe's NesterovSolver):
h' = momentum*h + r*g;  w -= (1+momentum)*h' - momentum*h"""
import numpy as np

from .base import ONE, Rule


def nesterov(w, g, r, d, h, args):
    momentum, = args
    prev = h[0]
    hi = momentum * prev + r * g
    return w - ((ONE + momentum) * hi - momentum * prev), (hi,)


class Nesterov(Rule):
    name = "Nesterov"
    solver_type = 1
    formula = nesterov

    def scalars(self, rate, it):
        return np.float32(rate), (np.float32(self.p.momentum),)
