import numpy as np
import pytest

from helpers import check_gradient, make_layer


def _away_from_zero(shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.5, x)


@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_relu(slope):
    x = _away_from_zero((3, 4, 5))
    layer, bottoms, tops = make_layer("ReLU", {"relu_param": {"negative_slope": slope}}, [x.shape], bottoms_data=[x])
    layer.forward(bottoms, tops)
    np.testing.assert_allclose(tops[0].data, np.where(x > 0, x, slope * x))
    assert check_gradient(layer, bottoms, tops) > 0


def test_sigmoid_and_tanh():
    x = _away_from_zero((4, 6)) * 3
    layer, bottoms, tops = make_layer("Sigmoid", {}, [x.shape], bottoms_data=[x])
    layer.forward(bottoms, tops)
    np.testing.assert_allclose(tops[0].data, 1 / (1 + np.exp(-x)), rtol=1e-12)
    assert check_gradient(layer, bottoms, tops) > 0
    layer, bottoms, tops = make_layer("TanH", {}, [x.shape], bottoms_data=[x])
    layer.forward(bottoms, tops)
    np.testing.assert_allclose(tops[0].data, np.tanh(x))
    assert check_gradient(layer, bottoms, tops) > 0


def test_dropout_train_scaling_and_gradient():
    layer, bottoms, tops = make_layer("Dropout", {"dropout_param": {"dropout_ratio": 0.3}}, [(50, 40)], phase="TRAIN")
    layer.forward(bottoms, tops)
    x, y = bottoms[0].data, tops[0].data
    kept = y != 0
    np.testing.assert_allclose(y[kept], x[kept] / 0.7)
    assert 0.6 < kept.mean() < 0.8
    # with a fixed mask, dropout is linear: re-seed before every forward
    state = layer.rng.bit_generator.state

    def reset():
        layer.rng.bit_generator.state = state
    assert check_gradient(layer, bottoms, tops, reset=reset) > 0


def test_dropout_is_identity_in_test():
    layer, bottoms, tops = make_layer("Dropout", {}, [(5, 5)], phase="TEST")
    layer.forward(bottoms, tops)
    np.testing.assert_array_equal(tops[0].data, bottoms[0].data)
    assert check_gradient(layer, bottoms, tops) > 0


@pytest.mark.parametrize("typ", ["ReLU", "Sigmoid", "TanH"])
def test_row_parallel_activation_on_a_scalar_blob(typ):
    """A loss value is a 0-d blob; activations that work on row ranges still take it."""
    layer, bottoms, tops = make_layer(typ, {}, [()], bottoms_data=[np.array(-0.7)])
    layer.forward(bottoms, tops)
    ref = {"ReLU": 0.0, "Sigmoid": 1 / (1 + np.exp(0.7)), "TanH": np.tanh(-0.7)}[typ]
    np.testing.assert_allclose(tops[0].data, ref)
    assert tops[0].data.shape == ()
    assert check_gradient(layer, bottoms, tops) > 0
