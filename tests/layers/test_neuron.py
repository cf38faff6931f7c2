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
    # with a fixed mask, dropout is linear: the same pass (the counter of its stream) every forward
    passes = layer.passes

    def reset():
        layer.passes = passes
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


def _uniform_reference(key, counter):
    """SplitMix64's finaliser of key + counter * golden ratio, in Python integers."""
    m = 2 ** 64 - 1
    z = (key + counter * 0x9E3779B97F4A7C15) & m
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
    z ^= z >> 31
    return (z >> 40) / 2 ** 24


def test_dropout_mask_is_the_counter_based_stream_per_sample():
    """The mask of element e of sample r in pass p is uniform(key ^ p * c, r * E + e) >= ratio,
    the same computed in one piece or in pieces of rows (as the executor's shares do)."""
    layer, bottoms, tops = make_layer("Dropout", {"dropout_param": {"dropout_ratio": 0.4}}, [(6, 3, 5)],
                                      phase="TRAIN", dtype=np.float32)
    x = bottoms[0].data
    layer.passes = 7
    layer.forward(bottoms, tops)
    assert layer.passes == 8
    k = layer.key ^ ((7 * 0xD1B54A32D192ED03) & (2 ** 64 - 1))
    u = np.array([[_uniform_reference(k, r * 15 + e) for e in range(15)] for r in range(6)])
    keep = (u >= 0.4).reshape(x.shape)
    np.testing.assert_allclose(tops[0].data, np.where(keep, x / np.float32(0.6), 0), rtol=1e-6)
    whole = tops[0].data.copy()
    tops[0].data[...] = np.nan
    layer.passes = 7
    for lo, hi in ((0, 1), (1, 4), (4, 6)):
        layer.forward_rows(bottoms, tops, lo, hi, {})
    np.testing.assert_array_equal(tops[0].data, whole)
    layer.finish_rows(tops, [{}])                      # the pass ends: the next draws another mask
    layer.forward(bottoms, tops)
    assert not np.array_equal((tops[0].data != 0), keep)
    assert 0.3 < keep.mean() < 0.9
