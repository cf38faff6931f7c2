"""Fillers: Caffe's formulas, and the Theano chapter's Glorot/Xavier uniform bound."""
import numpy as np
import pytest

from netcli.config.schema import Problems
from netcli.fillers import FILLER, fans, fill


def filled(shape, **kw):
    p = FILLER.parse(kw, Problems(), None, "")
    a = np.zeros(shape, np.float32)
    fill(p, a, np.random.default_rng(0))
    return a


def test_glorot_uniform_bound():
    shape = (50, 20, 5, 5)            # fan_in = 500, fan_out = 50*25 = 1250
    fan_in, fan_out = fans(shape)
    assert (fan_in, fan_out) == (500, 1250)
    a = filled(shape, type="glorot_uniform")
    bound = np.sqrt(6.0 / (fan_in + fan_out))
    assert np.abs(a).max() <= bound and np.abs(a).max() > 0.98 * bound
    assert abs(a.mean()) < 0.01 * bound and a.std() == pytest.approx(bound / np.sqrt(3), rel=0.02)


@pytest.mark.parametrize("norm,n", [("FAN_IN", 500), ("FAN_OUT", 1250), ("AVERAGE", 875)])
def test_xavier_and_msra(norm, n):
    a = filled((50, 20, 5, 5), type="xavier", variance_norm=norm)
    assert np.abs(a).max() <= np.sqrt(3.0 / n) and a.std() == pytest.approx(np.sqrt(1.0 / n), rel=0.03)
    m = filled((50, 20, 5, 5), type="msra", variance_norm=norm)
    assert m.std() == pytest.approx(np.sqrt(2.0 / n), rel=0.03)


def test_other_fillers():
    assert np.all(filled((3, 4), type="constant", value=0.5) == 0.5)
    u = filled((100, 100), type="uniform", min=-2, max=3)
    assert u.min() >= -2 and u.max() <= 3 and u.mean() == pytest.approx(0.5, abs=0.05)
    g = filled((100, 100), type="gaussian", mean=1, std=2)
    assert g.mean() == pytest.approx(1, abs=0.05) and g.std() == pytest.approx(2, rel=0.03)
    s = filled((100, 400), type="gaussian", sparse=10)
    assert (s != 0).mean() == pytest.approx(0.1, abs=0.01)
    pu = filled((6, 10), type="positive_unitball")
    assert np.all(pu >= 0) and np.allclose(pu.sum(axis=1), 1)
    b = filled((1, 1, 4, 4), type="bilinear")
    np.testing.assert_allclose(b[0, 0, 0], [0.0625, 0.1875, 0.1875, 0.0625])
