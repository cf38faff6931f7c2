"""The LRN kernels (netcli/ops/cpu/lrn.py) against plain NumPy on random inputs: odd window sizes
wider and narrower than the channels, float32 and float64, forward and backward."""
import numpy as np
import pytest

from netcli.ops.cpu.lrn import lrn_backward, lrn_forward


def reference(x, dy, n, alpha, beta, k):
    R, C, P = x.shape
    pad = (n - 1) // 2
    x, dy = x.astype(np.float64), dy.astype(np.float64)
    scale = np.empty_like(x)
    for c in range(C):
        scale[:, c] = k + alpha / n * (x[:, max(0, c - pad):min(C, c - pad + n)] ** 2).sum(axis=1)
    y = x * scale ** -beta
    # d y[c'] / d x[c] = [c == c'] scale[c']^-beta - 2 beta alpha / n x[c'] x[c] scale[c']^(-beta-1), c in window(c')
    dx = dy * scale ** -beta
    for c2 in range(C):
        for c in range(max(0, c2 - pad), min(C, c2 - pad + n)):
            dx[:, c] -= 2 * beta * alpha / n * dy[:, c2] * y[:, c2] / scale[:, c2] * x[:, c]
    return scale, y, dx


@pytest.mark.parametrize("dtype,tol", [(np.float32, 2e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("n,C", [(5, 7), (3, 2), (1, 4), (7, 3), (5, 16)])
@pytest.mark.parametrize("beta", [0.75, 0.6])
def test_lrn_matches_numpy(dtype, tol, n, C, beta):
    rng = np.random.default_rng(n * 31 + C)
    R, P = 3, 11
    x = rng.standard_normal((R, C, P)).astype(dtype)
    dy = rng.standard_normal((R, C, P)).astype(dtype)
    alpha, k = 0.7, 1.5
    scale, y = np.empty_like(x), np.empty_like(x)
    lrn_forward(x, scale, y, n, alpha, beta, k)
    dx, ratio = np.empty_like(x), np.empty((C, P), dtype)
    lrn_backward(x, y, dy, scale, dx, ratio, n, alpha, beta)
    ref_scale, ref_y, ref_dx = reference(x, dy, n, alpha, beta, k)
    np.testing.assert_allclose(scale, ref_scale, rtol=tol)
    np.testing.assert_allclose(y, ref_y, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, ref_dx, rtol=tol * 10, atol=tol * 10)
