"""AdaGrad (Caffe's AdaGradSolver): h += g^2;  w -= r * g / (sqrt(h) + delta)"""
import math

import numpy as np

from ..config.schema import Field, positive
from .base import Rule

DELTA = Field("delta", "float", 1e-8, "epsilon", check=positive, number=31)


def refuse_momentum(rule, p, problems, at):
    if p.momentum != 0:
        problems.add(at("momentum"), f"momentum cannot be used with {rule.name}", None, "momentum")


def adagrad(w, g, r, d, h, args):
    eps, = args
    hi = h[0] + g * g
    return w - r * g / (math.sqrt(hi) + eps), (hi,)


class AdaGrad(Rule):
    name = "AdaGrad"
    solver_type = 2
    formula = adagrad
    fields = (DELTA,)

    @classmethod
    def check(cls, p, problems, at):
        refuse_momentum(cls, p, problems, at)

    def scalars(self, rate, it):
        return np.float32(rate), (np.float32(self.p.delta),)
