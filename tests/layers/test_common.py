import numpy as np
import pytest

from helpers import check_gradient, make_layer
from reference import softmax


@pytest.mark.parametrize("params,shape", [
    ({"num_output": 4}, (3, 5)),
    ({"num_output": 3, "axis": 1}, (2, 2, 3, 2)),
    ({"num_output": 2, "axis": 2, "transpose": True}, (2, 3, 4)),
    ({"num_output": 3, "bias_term": False}, (1, 6)),
])
def test_inner_product(params, shape):
    layer, bottoms, tops = make_layer("InnerProduct", {"inner_product_param": params}, [shape])
    layer.forward(bottoms, tops)
    axis = params.get("axis", 1)
    x = bottoms[0].data.reshape(int(np.prod(shape[:axis])), -1)
    w = layer.blobs[0].data
    ref = x @ (w if params.get("transpose") else w.T)
    if params.get("bias_term", True):
        ref = ref + layer.blobs[1].data
    np.testing.assert_allclose(tops[0].data.reshape(ref.shape), ref)
    assert tops[0].shape == shape[:axis] + (params["num_output"],)
    assert check_gradient(layer, bottoms, tops) > 0


@pytest.mark.parametrize("axis,shape", [(1, (3, 5)), (1, (2, 4, 3)), (2, (2, 3, 4))])
def test_softmax(axis, shape):
    layer, bottoms, tops = make_layer("Softmax", {"softmax_param": {"axis": axis}}, [shape])
    layer.forward(bottoms, tops)
    np.testing.assert_allclose(tops[0].data, softmax(bottoms[0].data, axis))
    assert check_gradient(layer, bottoms, tops) > 0


def test_flatten_and_reshape_are_views():
    layer, bottoms, tops = make_layer("Flatten", {}, [(2, 3, 4, 5)])
    assert tops[0].shape == (2, 60) and np.shares_memory(tops[0].data, bottoms[0].data)
    layer, bottoms, tops = make_layer("Flatten", {"flatten_param": {"axis": 1, "end_axis": 2}}, [(2, 3, 4, 5)])
    assert tops[0].shape == (2, 12, 5)
    layer, bottoms, tops = make_layer("Reshape", {"reshape_param": {"shape": {"dim": [0, -1, 2]}}}, [(2, 3, 4)])
    assert tops[0].shape == (2, 6, 2) and np.shares_memory(tops[0].diff, bottoms[0].diff)
    layer, bottoms, tops = make_layer("Reshape", {"reshape_param": {"shape": {"dim": [2, 2]}, "axis": 1, "num_axes": 1}},
                                      [(3, 4, 5)])
    assert tops[0].shape == (3, 2, 2, 5)


def test_concat_and_slice():
    layer, bottoms, tops = make_layer("Concat", {"concat_param": {"axis": 1}}, [(2, 3, 4), (2, 1, 4), (2, 2, 4)])
    layer.forward(bottoms, tops)
    np.testing.assert_array_equal(tops[0].data, np.concatenate([b.data for b in bottoms], 1))
    assert check_gradient(layer, bottoms, tops) > 0
    layer, bottoms, tops = make_layer("Slice", {"slice_param": {"axis": 2, "slice_point": [1, 3]}}, [(2, 3, 5)],
                                      n_tops=3)
    layer.forward(bottoms, tops)
    for t, ref in zip(tops, np.split(bottoms[0].data, [1, 3], axis=2)):
        np.testing.assert_array_equal(t.data, ref)
    assert check_gradient(layer, bottoms, tops) > 0
    layer, bottoms, tops = make_layer("Slice", {}, [(2, 4, 3)], n_tops=2)
    assert tops[0].shape == tops[1].shape == (2, 2, 3)


def test_split_sums_gradients():
    layer, bottoms, tops = make_layer("Split", {}, [(3, 4)], n_tops=3)
    layer.forward(bottoms, tops)
    for t in tops:
        np.testing.assert_array_equal(t.data, bottoms[0].data)
    assert check_gradient(layer, bottoms, tops) > 0


@pytest.mark.parametrize("params", [
    {"operation": "SUM"}, {"operation": "SUM", "coeff": [1.0, -0.5, 2.0]},
    {"operation": "PROD"}, {"operation": "MAX"},
])
def test_eltwise(params):
    layer, bottoms, tops = make_layer("Eltwise", {"eltwise_param": params}, [(3, 4)] * 3)
    layer.forward(bottoms, tops)
    xs = [b.data for b in bottoms]
    op = params["operation"]
    ref = (sum(c * x for c, x in zip(params.get("coeff", [1, 1, 1]), xs)) if op == "SUM"
           else xs[0] * xs[1] * xs[2] if op == "PROD" else np.maximum(np.maximum(xs[0], xs[1]), xs[2]))
    np.testing.assert_allclose(tops[0].data, ref)
    assert check_gradient(layer, bottoms, tops, eps=1e-6) > 0
