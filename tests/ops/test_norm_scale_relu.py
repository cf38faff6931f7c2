"""The fused BatchNorm + Scale + ReLU kernels (netcli/ops/cpu/norm_scale_relu.py) against a plain
NumPy reference of the three layers' formulas, on random inputs, with and without the ReLU, with
a leaky slope, in place and not, in float32 and float64."""
import numpy as np
import pytest

from netcli.ops.cpu.norm_scale_relu import (GRAD_BLOCK, add_sums, norm_scale_relu_backward, norm_scale_relu_forward,
                                            norm_scale_relu_grad_sums, norm_scale_relu_tile)
from reference import lanes_then_positions


def _case(rng, dtype, N=3, C=5, S=7):
    x = rng.standard_normal((N, C, S)).astype(dtype)
    a, b = rng.uniform(0.5, 2, C).astype(dtype), rng.standard_normal(C).astype(dtype)
    gamma, beta = rng.uniform(-2, 2, C).astype(dtype), rng.standard_normal(C).astype(dtype)
    return x, a, b, gamma, beta


def _mask(w, slope):
    return np.where(w > 0, 1.0, slope)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu,slope", [(True, 0.0), (True, 0.1), (False, 0.0)])
@pytest.mark.parametrize("in_place", [False, True])
def test_fused_forward_and_backward_against_numpy(dtype, relu, slope, in_place):
    rng = np.random.default_rng(int(relu) * 10 + int(slope * 10) + in_place)
    x, a, b, gamma, beta = _case(rng, dtype)
    k = np.array([slope, 0, 1], dtype)
    xhat_ref = x.astype(np.float64) * a[None, :, None] + b[None, :, None]
    w = xhat_ref * gamma[None, :, None] + beta[None, :, None]
    y_ref = w * _mask(w, slope) if relu else w
    tol = 1e-5 if dtype == np.float32 else 1e-12
    xhat = np.zeros_like(x)
    pos = np.zeros(x.shape, np.bool_)
    y = x if in_place else np.zeros_like(x)
    x0 = x.copy()
    norm_scale_relu_forward(x, a, b, gamma, beta, k, relu, y, xhat, pos)
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(xhat, x0.astype(np.float64) * a[None, :, None] + b[None, :, None], rtol=tol, atol=tol)
    assert (pos == (w > 0)).all()

    dy = rng.standard_normal(x.shape).astype(dtype)
    dz = dy * _mask(y_ref, slope) if relu else dy.astype(np.float64)
    dxhat = dz * gamma[None, :, None]
    C = x.shape[1]
    dgamma, dbeta, s1, s2 = (np.zeros(C) for _ in range(4))
    norm_scale_relu_grad_sums(dy, xhat, gamma, beta, k, relu, dgamma, dbeta, s1, s2)
    np.testing.assert_allclose(dgamma, (dz * xhat_ref).sum(axis=(0, 2)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dbeta, dz.sum(axis=(0, 2)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(s1, dxhat.sum(axis=(0, 2)), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(s2, (dxhat * xhat_ref).sum(axis=(0, 2)), rtol=1e-4, atol=1e-4)

    m = x.shape[0] * x.shape[2]
    mean_dy, mean_dy_xhat = (s1 / m).astype(dtype), (s2 / m).astype(dtype)
    inv_std = a.copy()
    dx_ref = (dxhat - mean_dy[None, :, None] - xhat_ref * mean_dy_xhat[None, :, None]) * inv_std[None, :, None]
    dx = dy if in_place else np.zeros_like(dy)
    norm_scale_relu_backward(dy, xhat, gamma, beta, mean_dy, mean_dy_xhat, inv_std, k, relu, dx)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("relu,slope", [(True, 0.0), (True, 0.1), (False, 0.0)])
@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("tile", [(0, 5, 0, 7), (1, 4, 0, 7), (0, 5, 2, 6), (3, 4, 6, 7)])
def test_a_tile_of_one_image_against_numpy(relu, slope, in_place, tile):
    """norm_scale_relu_tile (a convolution's tile, ops/cpu/conv2d.py): the forward on channels
    c0..c1 at positions p0..p1 of one image, the same bits as the whole-image kernel there and
    nothing written elsewhere."""
    rng = np.random.default_rng(sum(tile) + 7 * in_place + int(slope * 10))
    x, a, b, gamma, beta = _case(rng, np.float32, N=1)
    k = np.array([slope, 0, 1], np.float32)
    c0, c1, p0, p1 = tile
    whole = np.zeros_like(x)
    norm_scale_relu_forward(x, a, b, gamma, beta, k, relu, whole, x[:0], np.zeros((0, 1, 1), np.bool_))
    w = (x.astype(np.float64) * a[None, :, None] + b[None, :, None]) * gamma[None, :, None] + beta[None, :, None]
    np.testing.assert_allclose(whole, w * _mask(w, slope) if relu else w, rtol=1e-5, atol=1e-5)
    y = x.copy() if in_place else rng.standard_normal(x.shape).astype(np.float32)
    before = y.copy()
    src = y if in_place else x
    norm_scale_relu_tile(src.reshape(-1), a, b, gamma, beta, k, relu, y.reshape(-1), x.shape[2], c0, c1, p0, p1)
    inside = np.zeros(x.shape, bool)
    inside[:, c0:c1, p0:p1] = True
    assert np.array_equal(y[inside], whole[inside])
    assert np.array_equal(y[~inside], before[~inside])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu,slope", [(True, 0.0), (True, 0.1), (False, 0.0)])
@pytest.mark.parametrize("shape", [(5, 11, 1000), (4, 3, 37), (1, 300, 4), (2, 2, GRAD_BLOCK + 5), (3, 7, 129)])
def test_grad_sums_in_their_order(dtype, relu, slope, shape):
    """The four gradient sums, bit for bit, against NumPy adding the same terms in the same order:
    blocks of one channel and of many, a block cut short by the last channel, an odd and an even
    number of images (two go in each pass)."""
    rng = np.random.default_rng(shape[0] * 100 + shape[1] + int(slope * 10) + int(relu))
    dy, xhat = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    gamma = rng.uniform(-2, 2, shape[1]).astype(dtype)
    beta = rng.standard_normal(shape[1]).astype(dtype)
    k = np.array([slope, 0, 1], dtype)
    sums = [np.full(shape[1], np.nan) for _ in range(4)]
    norm_scale_relu_grad_sums(dy, xhat, gamma, beta, k, relu, *sums)
    w = xhat * gamma[None, :, None] + beta[None, :, None]          # in dtype, as the forward forms it
    z = dy * np.where(w > 0, k[2], k[0]) if relu else dy
    zg = z * gamma[None, :, None]
    for got, terms in zip(sums, (z * xhat, z, zg, zg * xhat)):
        assert terms.dtype == dtype
        np.testing.assert_array_equal(got, lanes_then_positions(terms))


def test_add_sums_adds_or_writes():
    rng = np.random.default_rng(0)
    t, s = rng.standard_normal(4).astype(np.float32), rng.standard_normal(4)
    t0 = t.copy()
    add_sums(t, s, False)
    np.testing.assert_allclose(t, t0 + s, rtol=1e-6)
    add_sums(t, s, True)
    np.testing.assert_allclose(t, s.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("S", [4, 37])                  # blocks of channels, and channel by channel
@pytest.mark.parametrize("slope", [0.0, 0.1])
def test_the_mask_from_xhat_is_the_one_y_gives_at_edge_values(dtype, S, slope):
    """The backward forms the ReLU's mask from xhat (w = xhat * gamma + beta, as the forward
    formed it), where the layers apart read y > 0: on NaN, +-0, +-inf, subnormal and huge values
    of x, gamma and beta, the sums and dx are NumPy's with the mask from the forward's own y."""
    tiny, huge = np.finfo(dtype).smallest_subnormal, np.finfo(dtype).max
    special = np.array([np.nan, 0.0, -0.0, np.inf, -np.inf, tiny, -tiny, huge, -huge, 1.0, -1.0], dtype)
    rng = np.random.default_rng(S + int(slope * 10))
    N, C = 3, 8
    x = rng.standard_normal((N, C, S)).astype(dtype)
    flat = x.reshape(-1)
    flat[::3] = np.resize(special, flat[::3].size)               # every third number an edge value
    a, b = np.ones(C, dtype), np.zeros(C, dtype)                 # xhat = x (but -0 -> +0)
    gamma = np.array([1, -1, 0, -0.0, tiny, huge, 2, 0.5], dtype)
    beta = np.array([0, -0.0, tiny, -tiny, np.nan, -np.inf, 1e-3, -1e-3], dtype)
    k = np.array([slope, 0, 1], dtype)
    y, xhat = np.empty_like(x), np.empty_like(x)
    with np.errstate(all="ignore"):
        norm_scale_relu_forward(x, a, b, gamma, beta, k, True, y, xhat, np.zeros((0, 1, 1), np.bool_))
        dy = rng.standard_normal(x.shape).astype(dtype)
        z = dy * np.where(y > 0, k[2], k[0])
        zg = z * gamma[None, :, None]
        sums = [np.zeros(C) for _ in range(4)]
        norm_scale_relu_grad_sums(dy, xhat, gamma, beta, k, True, *sums)
        for got, terms in zip(sums, (z * xhat, z, zg, zg * xhat)):
            np.testing.assert_array_equal(got, lanes_then_positions(terms))
        m1, m2, inv = (rng.standard_normal(C).astype(dtype) for _ in range(3))
        dx = np.empty_like(x)
        norm_scale_relu_backward(dy, xhat, gamma, beta, m1, m2, inv, k, True, dx)
        want = (zg - m1[None, :, None] - xhat * m2[None, :, None]) * inv[None, :, None]
        np.testing.assert_array_equal(dx, want)
        assert np.array_equal(y > 0, xhat * gamma[None, :, None] + beta[None, :, None] > 0)
    assert np.isnan(xhat).any() and (y == 0).any() and (y > 0).any()       # the edges reached the mask
