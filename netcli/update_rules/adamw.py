"""AdamW (Loshchilov & Hutter; as torch.optim.AdamW): weight decay decoupled from the gradient.
With r = rate*lr_mult and d = weight_decay*decay_mult (per element), t = it + 1:
w *= 1 - r*d;  m = lerp(m, g, 1-b1);  v = b2*v + (1-b2)*g^2;
w -= r/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + delta)   (momentum is beta1, momentum2 beta2)."""
import math

import numpy as np

from .adam import Adam
from .base import ONE, scaled_gradient


def adamw(w, g, r, d, h, args):
    b1, b2, eps, c1, c2 = args
    w = w * (ONE - r * d)
    mi = h[0] + (ONE - b1) * (g - h[0])
    vi = b2 * h[1] + (ONE - b2) * g * g
    return w - (r / c1) * mi / (math.sqrt(vi) / c2 + eps), (mi, vi)


class AdamW(Adam):
    name = "AdamW"
    solver_type = None
    formula = adamw
    gradient = scaled_gradient          # the decay is the formula's, not the gradient's

    @classmethod
    def check(cls, p, problems, at):
        if p.regularization_type == "L1":
            problems.add(at("regularization_type"), "AdamW decays the weights themselves (decoupled L2); "
                         "regularization_type L1 cannot be used with it", None, "regularization_type")

    def scalars(self, rate, it):
        b1, b2, t = self.p.momentum, self.p.momentum2, it + 1
        return np.float32(rate), (np.float32(b1), np.float32(b2), np.float32(self.p.delta),
                                  np.float32(1 - b1 ** t), np.float32(math.sqrt(1 - b2 ** t)))
