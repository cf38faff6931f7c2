"""Learning-rate policies, exactly as Caffe's SGDSolver::GetLearningRate. `it` is the number of
updates done so far; `step` is the policy position (Caffe's current_step), kept in snapshots."""
from __future__ import annotations

import math

from ..errors import ConfigError


def check(p, problems, at):
    """Add to `problems` what the chosen policy lacks; at(field) is the line of a field."""
    pol = p.lr_policy

    def bad(field, msg):        # a field not written is reported at the lr_policy line
        problems.add(at(field if p.has(field.split(".")[0]) else "lr_policy"), msg, None, field)
    if pol in ("step", "exp", "inv", "multistep", "sigmoid") and p.gamma < 0:
        bad("gamma", f"lr_policy {pol} needs gamma >= 0")
    if pol in ("step", "sigmoid") and p.stepsize <= 0:
        bad("stepsize", f"lr_policy {pol} needs stepsize > 0")
    if pol == "plateau":
        if not 0 < p.gamma < 1:
            bad("gamma", f"lr_policy plateau multiplies the rate by gamma, which must be in (0, 1); got {p.gamma}")
        if not p.plateau.monitor:
            bad("plateau.monitor", "lr_policy plateau needs plateau: {monitor: <a test output>}")
    if pol == "multistep":
        sv = p.stepvalue
        if not sv:
            bad("stepvalue", "lr_policy multistep needs a list stepvalue")
        elif any(b <= a for a, b in zip(sv, sv[1:])):
            bad("stepvalue", f"must increase, got {sv}")


class LrPolicy:
    """The learning-rate policy of one run, with its position (Caffe's current_step, saved in
    snapshots). lr_policy plateau also owns its monitor: after each test it may lower the rate."""

    def __init__(self, p, max_iter, plateau=None):
        self.p, self.max_iter, self.step, self.plateau = p, max(max_iter, 1), 0, plateau

    def rate(self, it):
        """The rate for update number `it` (advancing the position, as multistep does)."""
        rate, self.step = learning_rate(self.p, it, self.step, self.max_iter)
        return rate

    def peek(self, it):
        return learning_rate(self.p, it, self.step, self.max_iter)[0]

    def after_test(self, results, it):
        """Plateau: count a test without improvement of the monitored output; after `patience`
        of them, multiply the rate by gamma (one more step)."""
        m = self.plateau
        if m is None or m.observe(results, it):
            return
        if m.bad >= m.patience:
            self.step += 1
            m.bad = 0
            from .. import log
            log.info(f"Plateau: {m.monitor} has not improved for {m.patience} tests (best {m.best:.6g}); "
                     f"lr = {self.peek(it):.6g} from iteration {it}")


def learning_rate(p, it, step, max_iter):
    """(rate, new step) for update number `it`. A rate too large for a float is inf (training then
    stops with the divergence message), never an exception."""
    try:
        rate, step = _rate(p, it, step, max_iter)
    except OverflowError:
        rate = math.inf
    return float(rate), step


def _rate(p, it, step, max_iter):
    pol, base = p.lr_policy, p.base_lr
    if pol == "fixed":
        return base, step
    if pol == "step":
        step = it // p.stepsize
        return base * p.gamma ** step, step
    if pol == "exp":
        return base * p.gamma ** it, step
    if pol == "inv":
        return base * (1.0 + p.gamma * it) ** (-p.power), step
    if pol == "multistep":
        if step < len(p.stepvalue) and it >= p.stepvalue[step]:
            step += 1
        return base * p.gamma ** step, step
    if pol == "poly":
        return base * max(0.0, 1.0 - it / max_iter) ** p.power, step
    if pol == "plateau":   # `step` counts the reductions, made by the solver after tests
        return base * p.gamma ** step, step
    if pol == "sigmoid":
        z = -p.gamma * (it - p.stepsize)
        return (base / (1.0 + math.exp(z)) if z < 700 else 0.0), step
    raise ConfigError(f"unknown learning rate policy: {pol}")  # pragma: no cover - the schema admits only the above
