"""The two-blob weighted sum (netcli/ops/cpu/eltwise.py) against NumPy's three-pass form, which
Eltwise SUM and Split ran before: the same bits, apart and in place on either input. And the sum
with a ReLU after it, forward and backward, against the two layers' NumPy forms."""
import numpy as np
import pytest

from netcli.ops.cpu.eltwise import weighted_sum, weighted_sum_relu, weighted_sum_relu_backward


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ca,cb,slope", [(1.0, 1.0, 0.0), (0.5, -2.0, 0.0), (1.7, 0.3, 0.1)])
def test_weighted_sum_relu_gives_the_two_layers_bits(dtype, ca, cb, slope):
    rng = np.random.default_rng(int(abs(ca * 10 + cb * 10 + slope * 100)))
    a, b, dy = rng.standard_normal((3, 1001)).astype(dtype)
    a[:5], b[:5] = 0, -0.0                                     # sums exactly 0: the ReLU's edge
    s = np.multiply(a, ca)
    s += cb * b
    want, off = s.copy(), s <= 0                              # ReLU: 0 (never -0) at slope 0
    want[off] = 0 if slope == 0 else s[off] * dtype(slope)
    y = np.full_like(a, np.nan)
    weighted_sum_relu(a, dtype(ca), b, dtype(cb), dtype(slope), y)
    assert np.array_equal(y, want) and np.array_equal(np.signbit(y), np.signbit(want))
    assert (y == 0).any() and (y > 0).any() and (y < 0).any() == (slope > 0)
    g = np.where(want > 0, dy, dy * dtype(slope))              # the ReLU's backward, in place
    for need_a, need_b in ((True, True), (True, False), (False, True), (False, False)):
        d = dy.copy()
        da, db = (np.full_like(a, np.nan) if need else a[:0] for need in (need_a, need_b))
        weighted_sum_relu_backward(y, d, dtype(slope), dtype(ca), da, dtype(cb), db)
        assert np.array_equal(d, g)
        if need_a:
            assert np.array_equal(da, np.multiply(g, ca))           # the Eltwise's backward
        if need_b:
            assert np.array_equal(db, np.multiply(g, cb))
