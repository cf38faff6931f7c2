"""The direct convolution (netcli/ops/cpu/direct.py, direct_vectors.py) in float32 against a
float64 NumPy reference, its groups of images, and where the rule takes it. (Float64, finite
differences and the += / fresh modes: tests/ops/test_kernel_boundary.py; teams:
tests/exec/test_team.py; the same weights for 1 to 4 threads: tests/exec/test_per_sample_layers.py.)"""
import numpy as np
import pytest

import netcli
from netcli.ops.cpu import direct_passes
from netcli.ops.cpu.conv2d import conv2d_backward, conv2d_forward, conv2d_scratch
from netcli.ops.cpu.conv2d_rule import conv2d_algorithm
from reference import conv2d as ref_conv


def _backward_reference(x, w, dy, S, P):
    """dx and dw of sum(conv(x, w) * dy), in float64, tap by tap."""
    K, C, KH, KW = w.shape
    OH, OW = dy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(KH):
        for j in range(KW):
            rows, cols = slice(i, i + S * (OH - 1) + 1, S), slice(j, j + S * (OW - 1) + 1, S)
            dw[:, :, i, j] = np.einsum("nkhw,nchw->kc", dy, xp[:, :, rows, cols])
            dxp[:, :, rows, cols] += np.einsum("nkhw,kc->nchw", dy, w[:, :, i, j])
    return dxp[:, :, P:P + x.shape[2], P:P + x.shape[3]], dw


@pytest.mark.parametrize("n,C,K,k,S,P,H,W", [
    (3, 16, 16, 3, 1, 1, 21, 19), (2, 16, 16, 3, 1, 1, 10, 32), (2, 32, 32, 3, 1, 1, 7, 16),
    (2, 16, 32, 3, 2, 1, 12, 16), (2, 9, 32, 3, 1, 1, 12, 13), (2, 32, 64, 3, 2, 1, 17, 15),
    (2, 3, 48, 7, 2, 3, 23, 22), (2, 13, 16, 3, 2, 0, 15, 16), (2, 24, 96, 3, 2, 1, 11, 12)])
def test_float32_sums_match_float64_numpy(n, C, K, k, S, P, H, W):
    rng = np.random.default_rng(C + K + H)
    x = rng.standard_normal((n, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C, k, k)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    y_ref = ref_conv(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), (S, S), (P, P))
    OH, OW = y_ref.shape[2:]
    assert conv2d_algorithm(C, H, W, K, k, k, S, S, P, P, 1, 1, 1, images=n) == "direct"
    geometry = (k, k, S, S, P, P, 1, 1, 1, "direct")
    ws = {name: np.full(shape, np.nan, np.float32) for name, (shape, _) in
          conv2d_scratch(n, C, H, W, K, k, k, OH, OW, 1, "direct", np.float32).items()}
    y = np.full(y_ref.shape, np.nan, np.float32)
    conv2d_forward(y, x, w, b, ws, *geometry)
    # float32 sums of `terms` products of numbers near 1: errors far under 1e-6 per term; a
    # wrong tap, channel or position is off by about 1
    np.testing.assert_allclose(y, y_ref, atol=1e-6 * C * k * k)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx_ref, dw_ref = _backward_reference(x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64), S, P)
    dx, dw, db = np.full_like(x, np.nan), np.full_like(w, np.nan), np.full_like(b, np.nan)
    conv2d_backward(dx, dw, db, dy, x, w, ws, *geometry, True)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-6 * K * k * k)
    np.testing.assert_allclose(dw, dw_ref, atol=1e-6 * n * OH * OW)
    np.testing.assert_allclose(db, dy.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-4)


def test_the_forward_hands_over_groups_of_images_as_they_are_final(monkeypatch):
    monkeypatch.setattr(direct_passes, "GROUP", 2)
    rng = np.random.default_rng(5)
    n, C, K, H = 5, 16, 16, 8
    x, w, b = rng.standard_normal((n, C, H, H)), rng.standard_normal((K, C, 3, 3)), rng.standard_normal(K)
    y_ref = ref_conv(x, w, b, (1, 1), (1, 1))
    ws = {name: np.full(shape, np.nan) for name, (shape, _) in
          conv2d_scratch(n, C, H, H, K, 3, 3, H, H, 1, "direct", np.float64).items()}
    y, done = np.full(y_ref.shape, np.nan), []

    def after(a, z):
        np.testing.assert_allclose(y[a:z], y_ref[a:z], rtol=1e-10, atol=1e-10)
        assert np.isnan(y[z:]).all()
        done.append((a, z))
    conv2d_forward(y, x, w, b, ws, 3, 3, 1, 1, 1, 1, 1, 1, 1, "direct", after=after)
    assert done == [(0, 2), (2, 4), (4, 5)]


def test_the_rule_takes_direct_for_few_channels_and_strides():
    def algorithm(C, H, K, k, S, P, images=32):
        return conv2d_algorithm(C, H, H, K, k, k, S, S, P, P, 1, 1, 1, images=images)
    # ResNet-20's first stage and downsampling 3x3s, ResNet-50's 7x7 first layer
    assert algorithm(16, 32, 16, 3, 1, 1) == algorithm(16, 32, 32, 3, 2, 1) == "direct"
    assert algorithm(32, 16, 64, 3, 2, 1) == "direct"
    assert algorithm(3, 224, 64, 7, 2, 3, images=8) == algorithm(16, 32, 16, 3, 1, 1, images=1) == "direct"
    assert algorithm(32, 16, 32, 3, 1, 1) == algorithm(8, 16, 16, 3, 1, 1) == "direct"
    assert algorithm(48, 16, 48, 3, 1, 1) == algorithm(64, 8, 64, 3, 1, 1) == "winograd4"     # more channels
    assert algorithm(3, 32, 16, 3, 1, 1) == "planes"            # a first layer's 3 channels, stride 1
    assert algorithm(16, 32, 24, 3, 2, 1) == "im2row"           # outputs not in vectors of 16
    assert algorithm(16, 8, 16, 3, 2, 1) == "im2row"            # 16 outputs: fewer than a block
    assert algorithm(32, 27, 128, 3, 1, 1, images=8) == algorithm(16, 55, 64, 3, 1, 1, images=8) == "winograd4"
    assert algorithm(3, 224, 64, 3, 2, 0, images=8) == "im2col"       # 27 terms a sum: few
    assert algorithm(16, 16, 16, 5, 1, 2) == "winograd4"        # 5x5


def test_the_direct_net_runs_direct_convolutions(tmp_path):
    """tests/resnetlike.py's DIRECT_NET, whose weights tests/exec/test_per_sample_layers.py trains
    to the same bits on 1 to 4 threads, takes "direct" where the rule says (and "planes" for its
    first layer, on one channel)."""
    from resnetlike import DIRECT_NET
    path = tmp_path / "net.yaml"
    path.write_text(DIRECT_NET.format(batch=32))
    net = netcli.Net(str(path), phase="TRAIN")
    layers = {layer.name: layer for layer in net.layers}
    assert [layers[c].algorithm for c in ("conv1", "conv2", "conv3")] == ["planes", "direct", "direct"]
