import numpy as np
import pytest

from helpers import check_gradient, make_layer


def test_batch_norm_training_forward_stats_and_gradient():
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2)) * 2 + 1
    layer, bottoms, tops = make_layer("BatchNorm", {}, [x.shape], bottoms_data=[x], phase="TRAIN")
    for b in layer.blobs:
        b.data[...] = 0
    layer.forward(bottoms, tops)
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    np.testing.assert_allclose(tops[0].data, (x - mean[None, :, None, None]) / np.sqrt(var + 1e-5)[None, :, None, None],
                               rtol=1e-5, atol=1e-6)
    m = 16
    np.testing.assert_allclose(layer.blobs[0].data, mean, rtol=1e-6)
    np.testing.assert_allclose(layer.blobs[1].data, var * m / (m - 1), rtol=1e-6)
    assert layer.blobs[2].data[0] == 1
    layer.forward(bottoms, tops)             # second pass: running sums decay by 0.999
    np.testing.assert_allclose(layer.blobs[0].data, mean * 1.999, rtol=1e-6)
    assert layer.blobs[2].data[0] == pytest.approx(1.999)
    assert check_gradient(layer, bottoms, tops, check_params=False) > 0


def test_batch_norm_global_stats():
    x = np.random.default_rng(1).standard_normal((3, 2, 2))
    layer, bottoms, tops = make_layer("BatchNorm", {}, [x.shape], bottoms_data=[x], phase="TEST")
    layer.blobs[0].data[...] = [2.0, -1.0]
    layer.blobs[1].data[...] = [8.0, 0.5]
    layer.blobs[2].data[...] = [2.0]
    layer.forward(bottoms, tops)
    mean, var = np.array([1.0, -0.5]), np.array([4.0, 0.25])
    np.testing.assert_allclose(tops[0].data, (x - mean[None, :, None]) / np.sqrt(var + 1e-5)[None, :, None],
                               rtol=1e-5, atol=1e-6)
    assert check_gradient(layer, bottoms, tops, check_params=False) > 0


def test_batch_norm_params_cannot_be_learned(tmp_path):
    import netcli
    p = tmp_path / "n.yaml"
    p.write_text("layers:\n  - {name: in, type: Input, top: x, input_param: {shape: {dim: [2, 3]}}}\n"
                 "  - {name: bn, type: BatchNorm, bottom: x, top: x, param: [{lr_mult: 1}]}\n")
    with pytest.raises(netcli.ConfigError, match="layer 'bn' \\(BatchNorm\\): field 'param\\[0\\].lr_mult'"):
        netcli.Net(str(p))


@pytest.mark.parametrize("params,shape", [
    ({}, (2, 3, 2, 2)), ({"scale_param": {"bias_term": True}}, (2, 3, 2)),
    ({"scale_param": {"axis": 1, "num_axes": 2, "bias_term": True}}, (2, 3, 4)),
])
def test_scale(params, shape):
    layer, bottoms, tops = make_layer("Scale", params, [shape])
    layer.forward(bottoms, tops)
    g = layer.blobs[0].data
    ref = bottoms[0].data * g.reshape((1,) + g.shape + (1,) * (len(shape) - 1 - g.ndim))
    if len(layer.blobs) > 1:
        ref = ref + layer.blobs[1].data.reshape((1,) + g.shape + (1,) * (len(shape) - 1 - g.ndim))
    np.testing.assert_allclose(tops[0].data, ref)
    assert check_gradient(layer, bottoms, tops) > 0


def _lrn_across(x, n, alpha, beta, k):
    C = x.shape[1]
    out = np.empty_like(x)
    for c in range(C):
        lo, hi = max(0, c - n // 2), min(C, c + n // 2 + 1)
        s = k + alpha / n * (x[:, lo:hi] ** 2).sum(axis=1)
        out[:, c] = x[:, c] * s ** -beta
    return out


def _lrn_within(x, n, alpha, beta):
    pad = n // 2
    xp = np.pad(x ** 2, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    H, W = x.shape[2:]
    avg = np.zeros_like(x)
    for i in range(n):
        for j in range(n):
            avg += xp[:, :, i:i + H, j:j + W]
    return x * (1 + alpha * avg / n ** 2) ** -beta


def test_lrn_across_channels():
    x = np.random.default_rng(2).standard_normal((2, 7, 3, 3))
    p = {"lrn_param": {"local_size": 5, "alpha": 0.3, "beta": 0.75, "k": 2.0}}
    layer, bottoms, tops = make_layer("LRN", p, [x.shape], bottoms_data=[x])
    layer.forward(bottoms, tops)
    np.testing.assert_allclose(tops[0].data, _lrn_across(x, 5, 0.3, 0.75, 2.0), rtol=1e-10)
    assert check_gradient(layer, bottoms, tops) > 0


def test_lrn_within_channel():
    x = np.random.default_rng(3).standard_normal((2, 2, 5, 4))
    p = {"lrn_param": {"local_size": 3, "alpha": 0.5, "beta": 0.75, "norm_region": "WITHIN_CHANNEL"}}
    layer, bottoms, tops = make_layer("LRN", p, [x.shape], bottoms_data=[x])
    layer.forward(bottoms, tops)
    np.testing.assert_allclose(tops[0].data, _lrn_within(x, 3, 0.5, 0.75), rtol=1e-10)
    assert check_gradient(layer, bottoms, tops) > 0


def _broadcast(v, axis, nd):
    """v placed at axes [axis, axis + v.ndim) of an nd-D array."""
    return v.reshape((1,) * axis + v.shape + (1,) * (nd - axis - v.ndim))


def test_scale_num_axes_minus_one_covers_to_the_end():
    layer, bottoms, tops = make_layer("Scale", {"scale_param": {"num_axes": -1, "bias_term": True}}, [(2, 3, 4, 2)])
    assert layer.blobs[0].shape == (3, 4, 2)
    layer.forward(bottoms, tops)
    ref = bottoms[0].data * layer.blobs[0].data[None] + layer.blobs[1].data[None]
    np.testing.assert_allclose(tops[0].data, ref)
    assert check_gradient(layer, bottoms, tops) > 0


@pytest.mark.parametrize("axis,shapes,bias", [
    (0, [(2, 3, 4), (2, 3)], False),         # a scale per sample and channel (squeeze-and-excitation)
    (1, [(2, 3, 4), (3,)], True),
    (1, [(2, 3, 2, 2), (3, 2)], False),
])
def test_scale_by_a_second_bottom(axis, shapes, bias):
    layer, bottoms, tops = make_layer("Scale", {"scale_param": {"axis": axis, "bias_term": bias}}, shapes)
    assert len(layer.blobs) == (1 if bias else 0)
    layer.forward(bottoms, tops)
    ref = bottoms[0].data * _broadcast(bottoms[1].data, axis, len(shapes[0]))
    if bias:
        ref = ref + _broadcast(layer.blobs[0].data, axis, len(shapes[0]))
    np.testing.assert_allclose(tops[0].data, ref)
    assert check_gradient(layer, bottoms, tops) > 0


@pytest.mark.parametrize("params,shapes", [
    ({}, [(2, 3, 2, 2)]),
    ({"bias_param": {"axis": 0, "num_axes": -1}}, [(2, 3, 2)]),
    ({"bias_param": {"axis": 1, "num_axes": 2}}, [(2, 3, 4)]),
    ({"bias_param": {"axis": 0}}, [(2, 3, 4), (2, 3)]),
    ({}, [(2, 3, 4, 2), (3, 4)]),
])
def test_bias(params, shapes):
    layer, bottoms, tops = make_layer("Bias", params, shapes)
    layer.forward(bottoms, tops)
    b = bottoms[1].data if len(shapes) > 1 else layer.blobs[0].data
    axis = params.get("bias_param", {}).get("axis", 1)
    np.testing.assert_allclose(tops[0].data, bottoms[0].data + _broadcast(b, axis, len(shapes[0])))
    assert check_gradient(layer, bottoms, tops) > 0


def test_bias_shape_mismatch_is_clear():
    with pytest.raises(Exception, match="does not match axes 1"):
        make_layer("Bias", {}, [(2, 3, 4), (4,)])


@pytest.mark.parametrize("params", [
    {}, {"normalize_variance": False}, {"across_channels": True}, {"across_channels": True, "eps": 0.1},
])
def test_mvn(params):
    layer, bottoms, tops = make_layer("MVN", {"mvn_param": params}, [(3, 2, 4, 3)])
    layer.forward(bottoms, tops)
    x = bottoms[0].data
    axes = (1, 2, 3) if params.get("across_channels") else (2, 3)
    ref = x - x.mean(axis=axes, keepdims=True)
    if params.get("normalize_variance", True):
        var = (x ** 2).mean(axis=axes, keepdims=True) - x.mean(axis=axes, keepdims=True) ** 2   # Caffe's formula
        ref = ref / (np.sqrt(var) + params.get("eps", 1e-9))
    np.testing.assert_allclose(tops[0].data, ref, rtol=1e-9, atol=1e-12)
    assert check_gradient(layer, bottoms, tops) > 0
