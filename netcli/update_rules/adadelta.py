"""AdaDelta (Caffe's AdaDeltaSolver; momentum is the decay rho):
h = rho*h + (1-rho)*g^2;  dx = g * sqrt((h2+delta)/(h+delta));  h2 = rho*h2 + (1-rho)*dx^2;  w -= r*dx"""
import math

import numpy as np

from .adagrad import DELTA
from .base import ONE, Rule


def adadelta(w, g, r, d, h, args):
    rho, eps = args
    h1, h2 = h
    hi = rho * h1 + (ONE - rho) * g * g
    dx = g * math.sqrt((h2 + eps) / (hi + eps))
    return w - r * dx, (hi, rho * h2 + (ONE - rho) * dx * dx)


class AdaDelta(Rule):
    name = "AdaDelta"
    solver_type = 4
    n_history = 2
    formula = adadelta
    fields = (DELTA,)

    def scalars(self, rate, it):
        return np.float32(rate), (np.float32(self.p.momentum), np.float32(self.p.delta))
