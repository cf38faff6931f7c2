"""The activations of issue 6: forward against NumPy formulas, gradient checks, in-place use."""
import numpy as np
import pytest

from helpers import check_gradient, make_layer


def away(shape, lo=0.05, seed=0, positive=False):
    x = np.random.default_rng(seed).standard_normal(shape)
    x = np.where(np.abs(x) < lo, 0.5, x)
    return np.abs(x) + 0.1 if positive else x


CASES = [
    ("ELU", {"elu_param": {"alpha": 0.7}}, away((3, 4, 5)), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x))),
    ("HardSigmoid", {}, away((4, 6)) * 2, lambda x: np.clip(0.2 * x + 0.5, 0, 1)),
    ("Clip", {"clip_param": {"min": -0.5, "max": 0.8}}, away((4, 6)), lambda x: np.clip(x, -0.5, 0.8)),
    ("HardTanh", {}, away((4, 6)) * 1.5, lambda x: np.clip(x, -1, 1)),
    ("AbsVal", {}, away((3, 5)), np.abs),
    ("Power", {"power_param": {"power": 2.5, "scale": 0.7, "shift": 2.0}}, away((3, 5), positive=True),
     lambda x: (2.0 + 0.7 * x) ** 2.5),
    ("Exp", {"exp_param": {"base": 2.0, "scale": 0.5, "shift": 0.1}}, away((3, 5)), lambda x: 2.0 ** (0.1 + 0.5 * x)),
    ("Exp", {}, away((3, 5)), np.exp),
    ("Log", {"log_param": {"base": 10.0, "scale": 2.0, "shift": 0.5}}, away((3, 5), positive=True),
     lambda x: np.log10(0.5 + 2.0 * x)),
    ("BNLL", {}, away((3, 5)) * 3, lambda x: np.log1p(np.exp(x))),
    ("Swish", {}, away((3, 4, 5)) * 3, lambda x: x / (1 + np.exp(-x))),
    ("Swish", {"swish_param": {"beta": 1.7}}, away((4, 6)) * 2, lambda x: x / (1 + np.exp(-1.7 * x))),
]


@pytest.mark.parametrize("type_,params,x,ref", CASES, ids=[c[0] + str(i) for i, c in enumerate(CASES)])
def test_activation(type_, params, x, ref):
    layer, bottoms, tops = make_layer(type_, params, [x.shape], bottoms_data=[x])
    layer.forward(bottoms, tops)
    np.testing.assert_allclose(tops[0].data, ref(x), rtol=1e-10, atol=1e-12)
    # stay away from kinks for the finite differences
    assert check_gradient(layer, bottoms, tops, eps=1e-6) > 0


@pytest.mark.parametrize("type_,params,x,ref", CASES[:6] + CASES[-2:], ids=[c[0] + str(i) for i, c in
                                                                       enumerate(CASES[:6] + CASES[-2:])])
def test_activation_in_place(type_, params, x, ref):
    from netcli.blob import Blob
    layer, bottoms, _ = make_layer(type_, params, [x.shape], bottoms_data=[x])
    b = Blob("b", x.shape, np.float64)
    b.data[...] = x
    layer.setup([b], [b])
    layer.forward([b], [b])
    np.testing.assert_allclose(b.data, ref(x), rtol=1e-10)
    dy = np.random.default_rng(1).standard_normal(x.shape)
    b.diff[...] = dy
    layer.backward([b], [True], [b])
    # compare with the out-of-place layer
    l2, b2, t2 = make_layer(type_, params, [x.shape], bottoms_data=[x])
    l2.forward(b2, t2)
    t2[0].diff[...] = dy
    l2.backward(t2, [True], b2)
    np.testing.assert_allclose(b.diff, b2[0].diff, rtol=1e-10)


@pytest.mark.parametrize("shared", [False, True])
def test_prelu(shared):
    x = away((3, 4, 2, 2))
    layer, bottoms, tops = make_layer("PReLU", {"prelu_param": {"channel_shared": shared}}, [x.shape], bottoms_data=[x])
    assert layer.blobs[0].shape == ((1,) if shared else (4,))
    layer.forward(bottoms, tops)
    a = layer.blobs[0].data.reshape((1, -1, 1, 1) if not shared else (1, 1, 1, 1))
    np.testing.assert_allclose(tops[0].data, np.where(x > 0, x, a * x))
    assert check_gradient(layer, bottoms, tops) > 0


def test_prelu_default_slope_is_quarter():
    import netcli
    net = netcli.Net({"layers": [
        {"name": "in", "type": "Input", "top": "x", "input_param": {"shape": {"dim": [2, 3]}}},
        {"name": "p", "type": "PReLU", "bottom": "x", "top": "y"}]})
    np.testing.assert_array_equal(net.params["p"][0].data, [0.25, 0.25, 0.25])


def test_threshold():
    x = away((4, 5))
    layer, bottoms, tops = make_layer("Threshold", {"threshold_param": {"threshold": 0.3}}, [x.shape], bottoms_data=[x])
    layer.forward(bottoms, tops)
    np.testing.assert_array_equal(tops[0].data, (x > 0.3).astype(float))
    assert not layer.has_backward


def test_maxout():
    x = np.random.default_rng(3).standard_normal((2, 6, 3, 2))
    layer, bottoms, tops = make_layer("Maxout", {"maxout_param": {"num_pieces": 3}}, [x.shape], bottoms_data=[x])
    layer.forward(bottoms, tops)
    np.testing.assert_array_equal(tops[0].data, x.reshape(2, 2, 3, 3, 2).max(axis=2))
    assert tops[0].shape == (2, 2, 3, 2)
    assert check_gradient(layer, bottoms, tops, eps=1e-6) > 0
