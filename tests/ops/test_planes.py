"""The "planes" convolution (netcli/ops/cpu/planes.py: few input channels, vectors of output
positions) in float32 against a float64 NumPy reference on random shapes (odd sizes, padding 0 to
kernel - 1, output channels not in blocks of four, one to four input channels): forward with and
without bias, the input, weight and bias gradients, += and fresh; and where the rule takes it.
(Finite differences through the layer: tests/ops/test_kernel_boundary.py; the same weights for 1
to 4 threads: tests/exec/test_per_sample_layers.py.)"""
import numpy as np
import pytest

from netcli.ops.cpu.conv2d import conv2d_backward, conv2d_forward, conv2d_scratch, conv2d_workspace
from netcli.ops.cpu.conv2d_rule import conv2d_algorithm
from netcli.ops.cpu.planes import planes_fits
from reference import conv2d as ref_conv


def _backward_reference(x, w, dy, P):
    """dx and dw of sum(conv(x, w) * dy), stride 1, in float64, tap by tap."""
    K, C, KH, KW = w.shape
    OH, OW = dy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (P[0], P[0]), (P[1], P[1])))
    dxp, dw = np.zeros_like(xp), np.zeros_like(w)
    for i in range(KH):
        for j in range(KW):
            window = xp[:, :, i:i + OH, j:j + OW]
            dw[:, :, i, j] = np.einsum("nkhw,nchw->kc", dy, window)
            dxp[:, :, i:i + OH, j:j + OW] += np.einsum("nkhw,kc->nchw", dy, w[:, :, i, j])
    return dxp[:, :, P[0]:P[0] + x.shape[2], P[1]:P[1] + x.shape[3]], dw


@pytest.mark.parametrize("n,C,K,k,PH,PW,H,W", [
    (3, 1, 20, 5, 0, 0, 28, 28), (2, 3, 32, 5, 2, 2, 13, 17), (2, 1, 7, 3, 1, 0, 9, 19), (1, 2, 5, 3, 2, 1, 5, 20),
    (9, 4, 6, 5, 4, 3, 7, 21), (2, 1, 1, 3, 0, 0, 3, 18), (2, 3, 9, 5, 1, 2, 31, 35), (2, 2, 4, 3, 1, 1, 4, 33)])
def test_float32_sums_match_float64_numpy(n, C, K, k, PH, PW, H, W):
    rng = np.random.default_rng(C + K + H + W)
    x = rng.standard_normal((n, C, H, W)).astype(np.float32)
    w = rng.standard_normal((K, C, k, k)).astype(np.float32)
    b = rng.standard_normal(K).astype(np.float32)
    OH, OW = H + 2 * PH - k + 1, W + 2 * PW - k + 1
    geometry = (k, k, 1, 1, PH, PW, 1, 1, 1, "planes")
    shapes = {**conv2d_workspace(n, C, H, W, K, k, k, OH, OW, 1, "planes", np.float32),
              **conv2d_scratch(n, C, H, W, K, k, k, OH, OW, 1, "planes", np.float32)}
    ws = {name: np.full(s, np.nan, d) for name, (s, d) in shapes.items()}     # scratch holds nothing
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    y = np.full((n, K, OH, OW), np.nan, np.float32)
    for bias in (b, None):
        conv2d_forward(y, x, w, bias, ws, *geometry)
        want = ref_conv(x64, w64, None if bias is None else b.astype(np.float64), pad=(PH, PW))
        np.testing.assert_allclose(y, want, rtol=0, atol=1e-5 * np.abs(want).max())
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx_ref, dw_ref = _backward_reference(x64, w64, dy.astype(np.float64), (PH, PW))
    dx = np.full(x.shape, np.nan, np.float32)
    dw, db = np.full(w.shape, 0.5, np.float32), np.full(K, 0.25, np.float32)
    for target in ws.values():
        target[...] = np.nan
    conv2d_backward(dx, dw, db, dy, x, w, ws, *geometry, False)
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-5 * np.abs(dx_ref).max())
    np.testing.assert_allclose(dw, dw_ref + 0.5, rtol=0, atol=1e-5 * np.abs(dw_ref).max())
    np.testing.assert_allclose(db, dy.astype(np.float64).sum(axis=(0, 2, 3)) + 0.25, rtol=1e-5, atol=1e-4)
    dw[...], db[...] = 7.0, 7.0                                    # fresh: written, input gradient skipped
    conv2d_backward(None, dw, db, dy, x, w, ws, *geometry, True)
    np.testing.assert_allclose(dw, dw_ref, rtol=0, atol=1e-5 * np.abs(dw_ref).max())
    np.testing.assert_allclose(db, dy.astype(np.float64).sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-4)


def test_planes_fits_3x3_and_5x5_stride_1_on_rows_of_a_vector():
    assert planes_fits(1, 28, 28, 20, 5, 5, 1, 1, 0, 0, 1, 1, 1) and planes_fits(3, 16, 16, 8, 3, 3, 1, 1, 2, 2, 1, 1, 1)
    for geometry in [(1, 28, 28, 20, 5, 5, 2, 2, 0, 0, 1, 1, 1), (1, 28, 28, 20, 3, 3, 1, 1, 3, 0, 1, 1, 1),
                     (1, 28, 28, 20, 7, 7, 1, 1, 3, 3, 1, 1, 1), (2, 28, 28, 20, 3, 3, 1, 1, 1, 1, 1, 1, 2),
                     (1, 28, 28, 20, 3, 3, 1, 1, 1, 1, 2, 2, 1), (1, 28, 28, 20, 3, 5, 1, 1, 1, 1, 1, 1, 1),
                     (1, 28, 19, 20, 5, 5, 1, 1, 0, 0, 1, 1, 1), (1, 28, 15, 20, 3, 3, 1, 1, 2, 2, 1, 1, 1)]:
        assert not planes_fits(*geometry), geometry


def test_the_rule_takes_planes_for_lenets_first_layer():
    assert conv2d_algorithm(1, 28, 28, 20, 5, 5, 1, 1, 0, 0, 1, 1, 1, images=64) == "planes"
