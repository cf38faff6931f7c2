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


@pytest.mark.parametrize("params,shape,top", [
    ({}, (3, 10), (3, 1, 1)),
    ({"top_k": 3, "out_max_val": True}, (2, 4, 3), (2, 2, 3)),
    ({"axis": 1, "top_k": 2}, (2, 5, 3), (2, 2, 3)),
    ({"axis": -1, "out_max_val": True}, (2, 3, 4), (2, 3, 1)),
])
def test_argmax(params, shape, top):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 4, shape).astype(np.float64)      # many ties
    layer, bottoms, tops = make_layer("ArgMax", {"argmax_param": params}, [shape], bottoms_data=[x])
    layer.forward(bottoms, tops)
    assert tops[0].shape == top
    k = params.get("top_k", 1)
    if "axis" in params:
        a = params["axis"] % len(shape)
        moved = np.moveaxis(x, a, -1)
        rows = moved.reshape(-1, moved.shape[-1])
    else:
        rows = x.reshape(shape[0], -1)
    # reference: sort by (value, index) descending, as Caffe's std::greater on pairs
    idx = np.array([[j for _, j in sorted(((v, j) for j, v in enumerate(r)), reverse=True)[:k]] for r in rows])
    vals = np.take_along_axis(rows, idx, 1)
    if "axis" in params:
        got = np.moveaxis(tops[0].data, a, -1).reshape(-1, k)
        np.testing.assert_array_equal(got, vals if params.get("out_max_val") else idx)
    else:
        got = tops[0].data.reshape(shape[0], -1, k)
        np.testing.assert_array_equal(got[:, 0], idx)
        if params.get("out_max_val"):
            np.testing.assert_array_equal(got[:, 1], vals)


@pytest.mark.parametrize("op", ["SUM", "ASUM", "SUMSQ", "MEAN"])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_reduction(op, axis):
    shape = (3, 4, 2)
    layer, bottoms, tops = make_layer("Reduction", {"reduction_param": {"operation": op, "axis": axis, "coeff": -1.5}},
                                      [shape])
    layer.forward(bottoms, tops)
    a = axis % 3
    x = bottoms[0].data.reshape(int(np.prod(shape[:a])), -1)
    f = {"SUM": x, "ASUM": np.abs(x), "SUMSQ": x ** 2, "MEAN": x / x.shape[1]}[op]
    assert tops[0].shape == shape[:a]
    np.testing.assert_allclose(tops[0].data.reshape(-1), -1.5 * f.sum(axis=1))
    assert check_gradient(layer, bottoms, tops) > 0


@pytest.mark.parametrize("axis,tiles", [(1, 3), (0, 2), (-1, 2)])
def test_tile(axis, tiles):
    layer, bottoms, tops = make_layer("Tile", {"tile_param": {"axis": axis, "tiles": tiles}}, [(2, 3, 2)])
    layer.forward(bottoms, tops)
    a = axis % 3
    lead = bottoms[0].data.reshape(bottoms[0].shape[:a] + (1, -1))
    ref = np.tile(lead, (1,) * a + (tiles, 1)).reshape(tops[0].shape)
    np.testing.assert_array_equal(tops[0].data, ref)
    assert check_gradient(layer, bottoms, tops) > 0


def test_embed():
    idx = np.array([[0, 3, 3], [4, 1, 0]], np.float64)
    layer, bottoms, tops = make_layer("Embed", {"embed_param": {"num_output": 3, "input_dim": 5}}, [idx.shape],
                                      bottoms_data=[idx])
    layer.forward(bottoms, tops)
    assert tops[0].shape == (2, 3, 3)
    one_hot = np.eye(5)[idx.astype(int)]
    np.testing.assert_allclose(tops[0].data, one_hot @ layer.blobs[0].data + layer.blobs[1].data)
    assert check_gradient(layer, bottoms, tops, check_bottoms=[]) > 0
