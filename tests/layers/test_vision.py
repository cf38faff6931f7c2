import numpy as np
import pytest

from helpers import check_gradient, make_layer
from reference import conv2d, deconv2d, pool2d, spp

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
CONV_CASES += [
    # 1x1, stride 1, no padding: GEMMs on the input itself (groups, dilation that changes nothing),
    # or on its channels-last copy for images under 36 pixels (conv2d_rule.PIXELS_1X1)
    ({"num_output": 5, "kernel_size": 1}, (3, 7, 9, 8)),
    ({"num_output": 4, "kernel_size": 1, "group": 2, "dilation": 2, "bias_term": False}, (2, 6, 8, 9)),
    ({"num_output": 129, "kernel_size": 1}, (2, 130, 8, 8)),     # weight gradient: one GEMM, all pixels
    ({"num_output": 5, "kernel_size": 1}, (3, 7, 5, 3)),          # small images: channels-last, one GEMM
    ({"num_output": 4, "kernel_size": 1, "bias_term": False}, (2, 9, 5, 7)),
    # depthwise (group == channels == num_output): the direct kernel; channels last on output
    # planes of at most 256 positions (without dilation)
    ({"num_output": 3, "kernel_size": 3, "pad": 1, "group": 3}, (3, 3, 17, 16)),
    ({"num_output": 4, "kernel_h": 3, "kernel_w": 2, "stride_h": 2, "stride_w": 3, "pad_h": 2, "pad_w": 1,
      "dilation": 2, "group": 4, "bias_term": False}, (2, 4, 9, 8)),
    ({"num_output": 3, "kernel_size": 3, "pad": 1, "group": 3}, (3, 3, 7, 6)),
    ({"num_output": 2, "kernel_size": 5, "stride": 2, "pad": 2, "group": 2}, (2, 2, 5, 7)),
    # 3x3 stride 1 from 16 channels, 8x8 outputs and 256 output tiles of 2x2: Winograd, F(4x4, 3x3)
    # (F(2x2, 3x3) from 256 channels on planes under 28x28: tests/ops/test_kernel_boundary.py)
    ({"num_output": 3, "kernel_size": 3, "pad": 1}, (2, 16, 24, 22)),
    ({"num_output": 4, "kernel_size": 3, "pad": [2, 0], "bias_term": False}, (3, 17, 14, 24)),
    # 1x1 with a stride, no padding, at least 49 outputs per image: "1x1" on the pixels it reads
    ({"num_output": 5, "kernel_size": 1, "stride": 2}, (2, 6, 15, 14)),
    ({"num_output": 4, "kernel_size": 1, "stride_h": 2, "stride_w": 3, "group": 2, "bias_term": False},
     (2, 4, 14, 21)),
    # 5x5 with padding 2: Winograd F(4x4, 5x5)
    ({"num_output": 3, "kernel_size": 5, "pad": 2}, (2, 16, 24, 22)),
    # outputs in vectors of 16: "direct" with a stride (64 terms a sum), or 3x3 on 8 to 32 channels
    ({"num_output": 16, "kernel_size": 3, "pad": 1}, (2, 8, 7, 6)),
    ({"num_output": 32, "kernel_size": 3, "stride": 2, "pad": 1, "bias_term": False}, (2, 8, 13, 12)),
]
ALGORITHM = ["im2col"] * 6 + ["im2row"] * 4 + ["1x1"] * 3 + ["1x1-nhwc"] * 2 + ["depthwise"] * 2 + \
    ["depthwise-nhwc"] * 2 + ["winograd4"] * 2 + ["1x1-strided"] * 2 + ["winograd4"] + ["direct"] * 2


def test_winograd_needs_enough_tiles_per_call():
    # narrow GEMMs at a small batch were slower than im2row (ResNet-20 at batch 1: 2.8 vs 2.2 ms)
    small, _, _ = make_layer("Convolution", {"convolution_param": {"num_output": 48, "kernel_size": 3, "pad": 1}},
                             [(1, 48, 16, 16)])
    large, _, _ = make_layer("Convolution", {"convolution_param": {"num_output": 48, "kernel_size": 3, "pad": 1}},
                             [(4, 48, 16, 16)])
    assert (small.algorithm, large.algorithm) == ("im2row", "winograd4")


def test_convolution_cases_cover_every_algorithm():
    for (params, shape), algorithm in zip(CONV_CASES, ALGORITHM):
        layer, _, _ = make_layer("Convolution", {"convolution_param": params}, [shape])
        assert layer.algorithm == algorithm, (params, shape)


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


DECONV_CASES = [
    ({"num_output": 3, "kernel_size": 3}, (2, 2, 4, 5)),
    ({"num_output": 2, "kernel_size": 4, "stride": 2, "pad": 1}, (2, 3, 4, 4)),     # FCN's 2x upsampling
    ({"num_output": 4, "kernel_size": 3, "group": 2, "dilation": 2, "bias_term": False}, (1, 4, 3, 3)),
    ({"num_output": 2, "kernel_h": 2, "kernel_w": 3, "stride_h": 1, "stride_w": 2, "pad_w": 1, "pad_h": 0},
     (2, 1, 3, 4)),
]


@pytest.mark.parametrize("params,shape", DECONV_CASES)
def test_deconvolution_matches_reference_and_gradient(params, shape):
    layer, bottoms, tops = make_layer("Deconvolution", {"convolution_param": params}, [shape])
    layer.forward(bottoms, tops)
    k = (params.get("kernel_h"), params.get("kernel_w")) if "kernel_h" in params else _pair(params["kernel_size"], 1)
    s = (params.get("stride_h", 1), params.get("stride_w", 1)) if "stride_h" in params else _pair(params.get("stride"), 1)
    p = (params.get("pad_h", 0), params.get("pad_w", 0)) if "kernel_h" in params else _pair(params.get("pad"), 0)
    b = layer.blobs[1].data if len(layer.blobs) > 1 else None
    ref = deconv2d(bottoms[0].data, layer.blobs[0].data, b, s, p, _pair(params.get("dilation"), 1),
                   params.get("group", 1))
    assert layer.blobs[0].shape == (shape[1], params["num_output"] // params.get("group", 1)) + k
    np.testing.assert_allclose(tops[0].data, ref, rtol=1e-10, atol=1e-10)
    assert check_gradient(layer, bottoms, tops) > 0


def test_deconvolution_is_the_adjoint_of_convolution():
    """<conv(x), y> = <x, deconv(y)> with the same weights and no bias."""
    params = {"num_output": 3, "kernel_size": 3, "stride": 2, "pad": 1, "bias_term": False}
    conv, cb, ct = make_layer("Convolution", {"convolution_param": params}, [(2, 4, 7, 7)])
    conv.forward(cb, ct)
    dparams = dict(params, num_output=4)
    de, db, dt = make_layer("Deconvolution", {"convolution_param": dparams}, [ct[0].shape], seed=3)
    de.blobs[0].data[...] = conv.blobs[0].data       # conv (K=3, C=4) is deconv's (in=3, out=4)
    de.forward(db, dt)
    assert dt[0].shape == cb[0].shape
    lhs = np.sum(ct[0].data * db[0].data)
    rhs = np.sum(cb[0].data * dt[0].data)
    assert abs(lhs - rhs) < 1e-9 * max(1, abs(lhs))


def test_convolution_with_two_bottoms_shares_weights():
    params = {"num_output": 3, "kernel_size": 3, "pad": 1}
    layer, bottoms, tops = make_layer("Convolution", {"convolution_param": params}, [(2, 2, 5, 5), (2, 2, 5, 5)],
                                      n_tops=2)
    layer.forward(bottoms, tops)
    for x, y in zip(bottoms, tops):
        np.testing.assert_allclose(y.data, conv2d(x.data, layer.blobs[0].data, layer.blobs[1].data, pad=(1, 1)),
                                   rtol=1e-10, atol=1e-10)
    assert check_gradient(layer, bottoms, tops) > 0


def test_convolution_bottoms_of_different_shapes_are_refused():
    with pytest.raises(Exception, match="same shape"):
        make_layer("Convolution", {"convolution_param": {"num_output": 2, "kernel_size": 1}},
                   [(2, 2, 5, 5), (2, 2, 4, 5)], n_tops=2)


@pytest.mark.parametrize("params,shapes,top", [
    ({}, [(2, 3, 7, 6), (2, 1, 4, 5)], (2, 3, 4, 5)),
    ({"axis": 1, "offset": [1, 2, 0]}, [(2, 3, 7, 6), (1, 2, 5, 6)], (2, 2, 5, 6)),
    ({"axis": -1, "offset": 3}, [(2, 3, 7, 6), (1, 1, 1, 2)], (2, 3, 7, 2)),
])
def test_crop(params, shapes, top):
    layer, bottoms, tops = make_layer("Crop", {"crop_param": params}, shapes)
    layer.forward(bottoms, tops)
    assert tops[0].shape == top
    nd, a = 4, params.get("axis", 2) % 4
    off = params.get("offset", 0)
    off = off if isinstance(off, list) else [off] * (nd - a)
    idx = tuple(slice(None) for _ in range(a)) + tuple(slice(o, o + s) for o, s in zip(off, top[a:]))
    np.testing.assert_array_equal(tops[0].data, bottoms[0].data[idx])
    assert check_gradient(layer, bottoms, tops) > 0


def test_crop_too_large_is_a_clear_error():
    with pytest.raises(Exception, match="offset 2 \\+ size 5"):
        make_layer("Crop", {"crop_param": {"offset": 2}}, [(1, 1, 6, 6), (1, 1, 5, 5)])


@pytest.mark.parametrize("height,mode,shape", [
    (3, "MAX", (2, 3, 9, 7)), (2, "AVE", (2, 2, 5, 6)), (1, "MAX", (1, 2, 4, 4)), (3, "AVE", (1, 1, 13, 13)),
])
def test_spp_matches_reference_and_gradient(height, mode, shape):
    layer, bottoms, tops = make_layer("SPP", {"spp_param": {"pyramid_height": height, "pool": mode}}, [shape])
    layer.forward(bottoms, tops)
    np.testing.assert_allclose(tops[0].data, spp(bottoms[0].data, height, mode), rtol=1e-12)
    if height > 1:
        assert tops[0].shape == (shape[0], shape[1] * sum(4 ** l for l in range(height)))
    assert check_gradient(layer, bottoms, tops) > 0
