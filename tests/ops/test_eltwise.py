"""The two-blob weighted sum (netcli/ops/cpu/eltwise.py) against NumPy's three-pass form, which
Eltwise SUM and Split ran before: the same bits, apart and in place on either input."""
import numpy as np
import pytest

from netcli.ops.cpu.eltwise import weighted_sum


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ca,cb", [(1.0, 1.0), (0.5, -2.0), (1.7, 0.3)])
def test_weighted_sum_gives_numpys_bits(dtype, ca, cb):
    rng = np.random.default_rng(int(abs(ca * 10 + cb * 10)))
    a, b = rng.standard_normal((2, 1003)).astype(dtype)
    want = np.multiply(a, ca)                 # as the layers computed it
    want += cb * b
    ta, tb = dtype(ca), dtype(cb)
    y = np.full_like(a, np.nan)
    weighted_sum(a, ta, b, tb, y)
    assert np.array_equal(y, want)
    for target in ("a", "b"):
        x, z = a.copy(), b.copy()
        out = x if target == "a" else z
        weighted_sum(x, ta, z, tb, out)
        assert np.array_equal(out, want), target
