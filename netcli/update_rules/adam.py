"""Adam (Caffe's AdamSolver; momentum is beta1, momentum2 beta2):
m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;  w -= r * sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + delta),
t = it + 1 (the bias correction is folded into the rate, as Caffe does)."""
import math

import numpy as np

from ..config.schema import Field
from .adagrad import DELTA
from .base import ONE, Rule

MOMENTUM2 = Field("momentum2", "float", 0.999, "beta2, the decay of the mean square", number=39)


def adam(w, g, r, d, h, args):
    b1, b2, eps = args
    mi = b1 * h[0] + (ONE - b1) * g
    vi = b2 * h[1] + (ONE - b2) * g * g
    return w - r * mi / (math.sqrt(vi) + eps), (mi, vi)


class Adam(Rule):
    name = "Adam"
    solver_type = 5
    n_history = 2
    formula = adam
    fields = (MOMENTUM2, DELTA)

    def scalars(self, rate, it):
        b1, b2, t = self.p.momentum, self.p.momentum2, it + 1
        corr = np.sqrt(1 - b2 ** t) / (1 - b1 ** t)
        return np.float32(rate * corr), (np.float32(b1), np.float32(b2), np.float32(self.p.delta))
