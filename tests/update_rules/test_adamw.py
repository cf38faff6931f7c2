"""AdamW: torch.optim.AdamW's formula (decoupled weight decay, bias correction), per-param
lr_mult and decay_mult, against a NumPy reference over several steps; L1 is refused."""
import math

import numpy as np
import pytest

import netcli
from netcli.config.schema import Problems
from netcli.config.yamlload import LDict
from netcli.errors import ConfigError
from netcli.solver.spec import SOLVER
from netcli.update_rules import RULES
from tinynet import make_tiny


def torch_adamw(w, grads, lr, wd, b1, b2, eps):
    """torch.optim.AdamW's single-tensor step, in float64, with an element-wise lr and weight decay."""
    w, m, v = w.astype(np.float64), np.zeros(w.size), np.zeros(w.size)
    for t, g in enumerate(grads, 1):
        w = w * (1 - lr * wd)                          # param.mul_(1 - lr * weight_decay)
        m = m + (1 - b1) * (g - m)                     # exp_avg.lerp_(grad, 1 - beta1)
        v = b2 * v + (1 - b2) * g * g                  # exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
        denom = np.sqrt(v) / math.sqrt(1 - b2 ** t) + eps
        w = w - (lr / (1 - b1 ** t)) * m / denom       # param.addcdiv_(exp_avg, denom, -step_size)
    return w


def test_adamw_matches_torch_formula_over_several_steps():
    n = 70000                                          # above the size where the rule splits over threads
    p = SOLVER.parse(LDict(dict(type="AdamW", momentum=0.9, momentum2=0.99, delta=1e-6, weight_decay=0.1)),
                     Problems(), None, "")
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(n).astype(np.float32)
    grads = [rng.standard_normal(n).astype(np.float32) for _ in range(5)]
    lr_mult = rng.choice([0.0, 1.0, 2.0], n).astype(np.float32)
    decay = (0.1 * rng.choice([0.0, 1.0], n)).astype(np.float32)         # weight_decay * decay_mult
    rule = RULES["ADAMW"](p, lr_mult, decay)
    w = w0.copy()
    for t, g in enumerate(grads):
        rule.step(w, g.copy(), 0.01, t, scale=0.5)
    ref = torch_adamw(w0, [0.5 * g.astype(np.float64) for g in grads], 0.01 * lr_mult, decay, 0.9, 0.99, 1e-6)
    np.testing.assert_allclose(w, ref, rtol=2e-5, atol=2e-6)
    assert np.any(w[lr_mult == 0] == w0[lr_mult == 0])                # lr_mult 0: neither decayed nor moved
    np.testing.assert_array_equal(w[lr_mult == 0], w0[lr_mult == 0])


def test_adamw_decays_without_gradient():
    """With a zero gradient only the decoupled decay acts: w * (1 - lr*wd) each step."""
    p = SOLVER.parse(LDict(dict(type="AdamW", momentum=0.9, weight_decay=0.5)), Problems(), None, "")
    rule = RULES["ADAMW"](p, np.ones(4, np.float32), np.full(4, 0.5, np.float32))
    w = np.array([1.0, -2.0, 0.5, 4.0], np.float32)
    rule.step(w, np.zeros(4, np.float32), 0.1, 0)
    np.testing.assert_allclose(w, [0.95, -1.9, 0.475, 3.8], rtol=1e-6)


def test_adamw_trains_and_refuses_l1(tmp_path):
    s = netcli.Solver(make_tiny(tmp_path, type="AdamW", lr=0.01), progress=False)
    s.step(3)
    assert np.isfinite(s.net.param_data).all() and s.iter == 3
    path = make_tiny(tmp_path, type="AdamW", extra="regularization_type: L1\n")
    with pytest.raises(ConfigError, match=r"solver.yaml:\d+: field 'regularization_type': AdamW decays the "
                                          r"weights themselves .* L1 cannot be used with it"):
        netcli.Solver(path)
