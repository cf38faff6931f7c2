import numpy as np
import pytest

from helpers import check_gradient, make_layer
from reference import conv2d, pool2d

CONV_CASES = [
    ({"num_output": 3, "kernel_size": 3}, (2, 2, 6, 6)),
    ({"num_output": 4, "kernel_size": 3, "pad": 1, "stride": 2}, (2, 2, 7, 7)),
    ({"num_output": 2, "kernel_size": 3, "dilation": 2, "pad": 2}, (1, 3, 7, 8)),
    ({"num_output": 4, "kernel_size": 3, "group": 2, "pad": 1}, (2, 4, 5, 5)),
    ({"num_output": 3, "kernel_h": 3, "kernel_w": 2, "stride_h": 2, "stride_w": 1,
      "pad_h": 1, "pad_w": 0, "bias_term": False}, (2, 2, 7, 5)),
    ({"num_output": 2, "kernel_size": [2, 3], "stride": [1, 2], "pad": [0, 1]}, (1, 1, 5, 6)),
    # C*KW >= 16: the channels-last row layout (the cases above use columns)
    ({"num_output": 4, "kernel_size": 3}, (3, 6, 6, 7)),
    ({"num_output": 3, "kernel_size": 3, "pad": 1, "stride": 2}, (2, 8, 7, 7)),
    ({"num_output": 2, "kernel_size": 3, "dilation": 2, "pad": 2}, (1, 8, 7, 8)),
    ({"num_output": 3, "kernel_h": 3, "kernel_w": 2, "stride_h": 2, "stride_w": 3,
      "pad_h": 1, "pad_w": 1, "bias_term": False}, (2, 9, 7, 8)),
]
ROWS_LAYOUT = [False] * 6 + [True] * 4


def test_convolution_cases_cover_both_patch_layouts():
    for (params, shape), rows in zip(CONV_CASES, ROWS_LAYOUT):
        layer, _, _ = make_layer("Convolution", {"convolution_param": params}, [shape])
        assert layer.rows_layout == rows, (params, shape)


def _pair(v, default):
    if v is None:
        return (default, default)
    v = v if isinstance(v, list) else [v]
    return (v[0], v[-1])


@pytest.mark.parametrize("params,shape", CONV_CASES)
def test_convolution_forward_matches_reference(params, shape):
    layer, bottoms, tops = make_layer("Convolution", {"convolution_param": params}, [shape])
    layer.forward(bottoms, tops)
    k = (params.get("kernel_h"), params.get("kernel_w")) if "kernel_h" in params else _pair(params["kernel_size"], 1)
    s = (params.get("stride_h"), params.get("stride_w")) if "stride_h" in params else _pair(params.get("stride"), 1)
    p = (params.get("pad_h"), params.get("pad_w")) if "pad_h" in params else _pair(params.get("pad"), 0)
    d = _pair(params.get("dilation"), 1)
    b = layer.blobs[1].data if len(layer.blobs) > 1 else None
    ref = conv2d(bottoms[0].data, layer.blobs[0].data, b, s, p, d, params.get("group", 1))
    assert layer.blobs[0].shape[2:] == k
    np.testing.assert_allclose(tops[0].data, ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("params,shape", CONV_CASES)
def test_convolution_gradient(params, shape):
    layer, bottoms, tops = make_layer("Convolution", {"convolution_param": params}, [shape])
    assert check_gradient(layer, bottoms, tops) > 0


def test_convolution_float32_matches_float64():
    l64, b64, t64 = make_layer("Convolution", {"convolution_param": {"num_output": 5, "kernel_size": 3}},
                               [(2, 3, 8, 8)])
    l32, b32, t32 = make_layer("Convolution", {"convolution_param": {"num_output": 5, "kernel_size": 3}},
                               [(2, 3, 8, 8)], dtype=np.float32, bottoms_data=[b64[0].data])
    for a, b in zip(l32.blobs, l64.blobs):
        a.data[...] = b.data
    l64.forward(b64, t64)
    l32.forward(b32, t32)
    np.testing.assert_allclose(t32[0].data, t64[0].data, rtol=1e-4, atol=1e-5)


POOL_CASES = [
    ({"pool": "MAX", "kernel_size": 2, "stride": 2}, (2, 3, 6, 6)),
    ({"pool": "MAX", "kernel_size": 3, "stride": 2}, (2, 2, 7, 7)),
    ({"pool": "MAX", "kernel_size": 3, "stride": 2, "pad": 1}, (1, 2, 6, 7)),
    ({"pool": "AVE", "kernel_size": 3, "stride": 2}, (2, 2, 7, 7)),
    ({"pool": "AVE", "kernel_size": 3, "stride": 2, "pad": 1}, (2, 2, 6, 5)),
    ({"pool": "AVE", "kernel_h": 2, "kernel_w": 3, "stride_h": 1, "stride_w": 2, "pad_h": 1, "pad_w": 1},
     (1, 2, 5, 6)),
]


def _pool_args(params, shape):
    if "kernel_h" in params:
        return ((params["kernel_h"], params["kernel_w"]), (params["stride_h"], params["stride_w"]),
                (params["pad_h"], params["pad_w"]))
    k, s, p = params["kernel_size"], params.get("stride", 1), params.get("pad", 0)
    return (k, k), (s, s), (p, p)


@pytest.mark.parametrize("params,shape", POOL_CASES)
def test_pooling_forward_and_gradient(params, shape):
    layer, bottoms, tops = make_layer("Pooling", {"pooling_param": params}, [shape])
    layer.forward(bottoms, tops)
    k, s, p = _pool_args(params, shape)
    np.testing.assert_allclose(tops[0].data, pool2d(bottoms[0].data, k, s, p, params["pool"]), rtol=1e-12)
    assert check_gradient(layer, bottoms, tops, eps=1e-6) > 0


def test_pooling_ceil_mode_output_size():
    # Caffe's CIFAR-10 pooling: 32x32, kernel 3, stride 2 -> 16x16 (floor would give 15)
    layer, bottoms, tops = make_layer("Pooling", {"pooling_param": {"pool": "MAX", "kernel_size": 3, "stride": 2}},
                                      [(1, 1, 32, 32)])
    assert tops[0].shape == (1, 1, 16, 16)
    layer, bottoms, tops = make_layer("Pooling", {"pooling_param": {"pool": "MAX", "kernel_size": 3, "stride": 2,
                                                                    "round_mode": "FLOOR"}}, [(1, 1, 32, 32)])
    assert tops[0].shape == (1, 1, 15, 15)


def test_global_pooling():
    layer, bottoms, tops = make_layer("Pooling", {"pooling_param": {"pool": "AVE", "global_pooling": True}},
                                      [(2, 3, 5, 4)])
    layer.forward(bottoms, tops)
    assert tops[0].shape == (2, 3, 1, 1)
    np.testing.assert_allclose(tops[0].data[:, :, 0, 0], bottoms[0].data.mean(axis=(2, 3)))
    assert check_gradient(layer, bottoms, tops) > 0
