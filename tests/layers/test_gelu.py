"""GELU (netcli/layers/gelu.py): the CPU kernels against NumPy/math references on random inputs,
gradient checks (float64), in-place use; the tanh form as PyTorch's approximate='tanh'."""
import math

import numpy as np
import pytest

from helpers import check_gradient, make_layer
from netcli.layers.gelu import gelu_backward, gelu_forward

ERF = np.vectorize(math.erf)


def ref(x, tanh_form):
    if tanh_form:
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + ERF(x / np.sqrt(2)))


def ref_grad(x, tanh_form):
    """Central differences of the reference in float64."""
    h = 1e-6
    return (ref(x + h, tanh_form) - ref(x - h, tanh_form)) / (2 * h)


PARAMS = {False: {}, True: {"gelu_param": {"approximate": "tanh"}}}


@pytest.mark.parametrize("tanh_form", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernels_match_numpy(tanh_form, dtype):
    x = (np.random.default_rng(3).standard_normal(1000) * 4).astype(dtype)
    y, keep = np.empty_like(x), np.empty_like(x)
    gelu_forward(x, y, keep, tanh_form)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, ref(x.astype(np.float64), tanh_form), rtol=tol, atol=tol)
    np.testing.assert_array_equal(keep, x)
    dy = np.random.default_rng(4).standard_normal(1000).astype(dtype)
    dx = np.empty_like(x)
    gelu_backward(keep, dy, dx, tanh_form)
    np.testing.assert_allclose(dx, dy * ref_grad(x.astype(np.float64), tanh_form), rtol=1e-5, atol=1e-6)


def test_known_values():
    """GELU(1) = Phi(1) = 0.8413447...; GELU(0) = 0; far left it vanishes, far right it is x."""
    x = np.array([1.0, 0.0, -10.0, 10.0])
    y, keep = np.empty_like(x), np.empty_like(x)
    gelu_forward(x, y, keep, False)
    np.testing.assert_allclose(y, [0.8413447460685429, 0.0, 0.0, 10.0], atol=1e-12)


@pytest.mark.parametrize("tanh_form", [False, True])
def test_layer_forward_and_gradient(tanh_form):
    x = np.random.default_rng(0).standard_normal((3, 4, 5)) * 2
    layer, bottoms, tops = make_layer("GELU", PARAMS[tanh_form], [x.shape], bottoms_data=[x])
    layer.forward(bottoms, tops)
    np.testing.assert_allclose(tops[0].data, ref(x, tanh_form), rtol=1e-12, atol=1e-14)
    assert check_gradient(layer, bottoms, tops, eps=1e-6) > 0


def test_in_place_keeps_the_input_for_backward():
    x = np.random.default_rng(1).standard_normal((2, 6))
    layer, bottoms, _ = make_layer("GELU", {}, [x.shape], bottoms_data=[x])
    layer.setup(bottoms, bottoms)                    # top == bottom
    layer.forward(bottoms, bottoms)
    np.testing.assert_allclose(bottoms[0].data, ref(x, False), rtol=1e-12, atol=1e-14)
    bottoms[0].diff[...] = 1.0
    layer.backward(bottoms, [True], bottoms)
    np.testing.assert_allclose(bottoms[0].diff, ref_grad(x, False), rtol=1e-6, atol=1e-8)
