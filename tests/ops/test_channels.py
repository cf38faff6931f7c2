"""BatchNorm's per-channel moments (netcli/ops/cpu/channels.py, channel_moments) in their fixed
order, against NumPy doing the same sums: one float64 lane per position summed over the images
in order, then the lanes in order; channel by channel on larger planes, in blocks of channels on
small ones (SMALL_PLANE): the same bits either way. And the affine of stored statistics
(stored_affine) against NumPy."""
import numpy as np
import pytest

from netcli.ops.cpu.channels import SMALL_PLANE, channel_moments, stored_affine


def _lanes_then_positions(terms):
    """terms (N, C, S) -> (C,): lanes over the images in order, then the positions in order."""
    lanes = np.zeros(terms.shape[1:])
    for row in terms:
        lanes += row
    return np.cumsum(lanes, axis=1)[:, -1]


@pytest.mark.parametrize("shape", [(3, 5, 37), (2, 300, 4), (4, 3, SMALL_PLANE + 3), (5, 2, 1)])
def test_channel_moments_in_their_order(shape):
    rng = np.random.default_rng(shape[2])
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    count, mean, m2 = np.zeros(1), np.zeros(shape[1]), np.zeros(shape[1])
    channel_moments(x, count, mean, m2)
    N, C, S = shape
    assert count[0] == N * S
    want_mean = _lanes_then_positions(x.astype(np.float64)) / (N * S)
    np.testing.assert_array_equal(mean, want_mean)
    d = x.astype(np.float64) - want_mean[None, :, None]
    np.testing.assert_array_equal(m2, _lanes_then_positions(d * d))
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
