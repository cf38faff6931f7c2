"""BatchNorm's per-channel moments (netcli/ops/cpu/channels.py, channel_moments) in their fixed
order, against NumPy doing the same sums: one float64 lane per position summed over the images
in order, then the lanes in order, over blocks of channels (one channel where a plane fills a
block, a last block cut short) and two images a pass (an odd image last). And the affine of
stored statistics (stored_affine), a training step's running statistics (batch_stats_step) and
the gradient statistics' means (grad_stats_means) against NumPy's formulas; BatchNorm's and
Scale's own backward sums (channel_grad_sums, scale_backward) in the same order."""
import numpy as np
import pytest

from netcli.ops.cpu.channels import (MOMENTS_BLOCK, SUMS_BLOCK, batch_stats_step, channel_grad_sums, channel_moments,
                                     grad_stats_means, scale_backward, stored_affine)
from reference import lanes_then_positions


@pytest.mark.parametrize("shape", [(3, 5, 37), (2, 300, 4), (4, 3, 131), (5, 2, 1), (4, 11, 300),
                                   (1, 3, 7), (2, 2, MOMENTS_BLOCK + 3)])
def test_channel_moments_in_their_order(shape):
    rng = np.random.default_rng(shape[2])
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    count, mean, m2 = np.zeros(1), np.zeros(shape[1]), np.zeros(shape[1])
    channel_moments(x, count, mean, m2)
    N, C, S = shape
    assert count[0] == N * S
    want_mean = lanes_then_positions(x.astype(np.float64)) / (N * S)
    np.testing.assert_array_equal(mean, want_mean)
    d = x.astype(np.float64) - want_mean[None, :, None]
    np.testing.assert_array_equal(m2, lanes_then_positions(d * d))
    np.testing.assert_allclose(m2 / (N * S), x.astype(np.float64).var(axis=(0, 2)), rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_stored_affine_gives_numpys_bits(dtype):
    """stored_affine (BatchNorm with use_global_stats) against the same formula in NumPy, float64
    then rounded: equal bits, on random statistics and a moving-average factor."""
    rng = np.random.default_rng(4)
    C = 37
    mean, var = rng.standard_normal(C).astype(dtype), rng.uniform(0, 3, C).astype(dtype)
    for factor, eps in [(1.0, 1e-5), (1 / 0.999, 1e-3), (0.0, 1e-5)]:
        inv_std, a, b = (np.full(C, np.nan, dtype) for _ in range(3))
        stored_affine(mean, var, factor, eps, inv_std, a, b)
        inv = 1.0 / np.sqrt(var.astype(np.float64) * factor + eps)
        assert np.array_equal(inv_std, inv.astype(dtype)) and np.array_equal(a, inv.astype(dtype))
        assert np.array_equal(b, (-mean.astype(np.float64) * factor * inv).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_stats_step_gives_numpys_bits(dtype):
    """The running sums, their factor and the normalisation of a training step, as BatchNorm
    computed them in NumPy (maf a Python float, so its products in the blobs' dtype): equal bits."""
    rng = np.random.default_rng(7)
    C = 41
    count, mean, m2 = np.array([6272.0]), rng.standard_normal(C) * 2, rng.uniform(0.1, 500, C)
    m, maf, eps = 6272, 0.999, 1e-5
    mean_b, var_b = rng.standard_normal(C).astype(dtype), rng.uniform(0, 3, C).astype(dtype)
    s_b = np.array([rng.uniform(1, 900)], dtype)
    got = [x.copy() for x in (mean_b, var_b, s_b)] + [np.full(C, np.nan, dtype) for _ in range(3)]
    batch_stats_step(count, mean, m2, np.array([maf, 1], dtype), m / max(m - 1, 1), eps, *got)
    var = m2 / max(count[0], 1)
    s_b[0] = s_b[0] * maf + 1
    mean_b[...] = mean + maf * mean_b
    var_b[...] = (m / max(m - 1, 1)) * var + maf * var_b
    inv = 1.0 / np.sqrt(var + eps)
    wants = mean_b, var_b, s_b, inv.astype(dtype), inv.astype(dtype), (-mean * inv).astype(dtype)
    for g, want in zip(got, wants):
        assert np.array_equal(g, want)
    sums = rng.standard_normal((2, C)) * 100
    means = [np.full(C, np.nan, dtype) for _ in range(2)]
    grad_stats_means(sums[0], sums[1], m, *means)
    for got_mean, s in zip(means, sums):
        assert np.array_equal(got_mean, (s / m).astype(dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 11, 1000), (4, 3, 37), (1, 300, 4), (2, 2, SUMS_BLOCK + 5)])
def test_channel_grad_sums_in_their_order(shape, dtype):
    """BatchNorm's own backward sums (no fused Scale), bit for bit in the lane order (float64
    terms round in the sums: the order shows)."""
    rng = np.random.default_rng(shape[0] + shape[1])
    dy, xhat = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    sum_dy, sum_dy_xhat = np.full(shape[1], np.nan), np.full(shape[1], np.nan)
    channel_grad_sums(dy, xhat, sum_dy, sum_dy_xhat)
    np.testing.assert_array_equal(sum_dy, lanes_then_positions(dy))
    np.testing.assert_array_equal(sum_dy_xhat, lanes_then_positions(dy * xhat))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 11, 1000), (4, 3, 37), (1, 300, 4), (3, 2, SUMS_BLOCK + 5)])
@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("fresh", [False, True])
def test_scale_backward_in_their_order(shape, in_place, fresh, dtype):
    """Scale's gradients, bit for bit: dgamma and dbeta in the lane order, added or written
    (`fresh`), and dx = dy * gamma, in place (dx is dy) or not."""
    rng = np.random.default_rng(shape[1] + 2 * in_place + fresh)
    dy, x = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    gamma = rng.uniform(-2, 2, shape[1]).astype(dtype)
    dgamma, dbeta = (rng.standard_normal(shape[1]).astype(dtype) for _ in range(2))
    want_dg = (lanes_then_positions(dy * x) if fresh else dgamma + lanes_then_positions(dy * x)).astype(dtype)
    want_db = (lanes_then_positions(dy) if fresh else dbeta + lanes_then_positions(dy)).astype(dtype)
    want_dx = dy * gamma[None, :, None]
    dx = dy if in_place else np.full_like(dy, np.nan)
    scale_backward(dy, x, gamma, dgamma, dbeta, dx, fresh)
    np.testing.assert_array_equal(dgamma, want_dg)
    np.testing.assert_array_equal(dbeta, want_db)
    np.testing.assert_array_equal(dx, want_dx)
