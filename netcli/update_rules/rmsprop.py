"""RMSProp (Caffe's RMSPropSolver): h = rms_decay*h + (1-rms_decay)*g^2;  w -= r * g / (sqrt(h) + delta)"""
import math

import numpy as np

from ..config.schema import Field
from .adagrad import DELTA, refuse_momentum
from .base import ONE, Rule


def rmsprop(w, g, r, d, h, args):
    rms_decay, eps = args
    hi = rms_decay * h[0] + (ONE - rms_decay) * g * g
    return w - r * g / (math.sqrt(hi) + eps), (hi,)


class RMSProp(Rule):
    name = "RMSProp"
    solver_type = 3
    formula = rmsprop
    fields = (DELTA, Field("rms_decay", "float", 0.99, "decay of the mean square", number=38))

    @classmethod
    def check(cls, p, problems, at):
        refuse_momentum(cls, p, problems, at)
        if not 0 <= p.rms_decay < 1:
            problems.add(at("rms_decay"), "must be in [0, 1)", None, "rms_decay")

    def scalars(self, rate, it):
        return np.float32(rate), (np.float32(self.p.rms_decay), np.float32(self.p.delta))
