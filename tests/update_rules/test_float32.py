"""Every update rule computes in the params' float32 (Caffe's axpby and its solvers' updates are
float): a float64 constant in a formula made Numba type the whole loop over the params as float64,
scalar code 10-20x slower than the vectorised float32 loop."""
import numpy as np
import pytest
from numba import njit, types

from netcli.config.schema import Problems
from netcli.config.yamlload import LDict
from netcli.solver.spec import SOLVER
from netcli.update_rules import RULES

F32 = types.float32


@pytest.mark.parametrize("name", sorted(RULES))
def test_each_formula_returns_float32_for_float32_inputs(name):
    cls = RULES[name]
    p = SOLVER.parse(LDict(dict(type=cls.name, momentum=0.0 if name in ("ADAGRAD",) else 0.9)), Problems(), None, "")
    _, args = RULES[name](p, np.ones(4, np.float32), np.zeros(4, np.float32)).scalars(0.01, 0)
    sig = (F32, F32, F32, F32, types.UniTuple(F32, cls.n_history), types.UniTuple(F32, len(args)))
    compiled = njit(cls.formula)
    compiled.compile(sig)
    ret = compiled.overloads[sig].signature.return_type
    assert ret == types.Tuple((F32, types.UniTuple(F32, cls.n_history))), (name, ret)

