"""SGD with momentum (Caffe's SGDSolver): h = momentum*h + r*g;  w -= h"""
import numpy as np

from .base import Rule


def sgd(w, g, r, d, h, args):
    momentum, = args
    hi = momentum * h[0] + r * g
    return w - hi, (hi,)


class SGD(Rule):
    name = "SGD"
    solver_type = 0
    formula = sgd

    def scalars(self, rate, it):
        return np.float32(rate), (np.float32(self.p.momentum),)
