"""Blocks of 8 x 8 numbers transposed in vector registers (netcli/ops/cpu/transpose.py) against
NumPy: random numbers (float32 and float64), rows that start at uneven places in either array
(strided views included), and nothing outside the block written."""
import numpy as np
import pytest
from numba import njit

from netcli.ops.cpu.transpose import steps, transpose_block


@njit(cache=False)
def _move(src, s0, s_rows, si, dst, d0, d_rows, di):
    transpose_block(src, s0, s_rows, si, dst, d0, d_rows, di)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", range(4))
def test_a_block_goes_to_its_columns_places_and_nowhere_else(dtype, seed):
    rng = np.random.default_rng(seed)
    src = rng.standard_normal(700).astype(dtype)
    dst = np.full(900, np.nan, dtype)
    s_rows = np.sort(rng.choice(np.arange(0, 600, 9), 11, replace=False)).astype(np.int64)   # rows 9+ apart
    d_rows = rng.permutation(np.arange(0, 800, 11))[:12].astype(np.int64)                  # in any order
    si, di, s0, d0 = int(rng.integers(0, 3)), int(rng.integers(0, 4)), int(rng.integers(0, 5)), int(rng.integers(0, 7))
    _move(src, s0, s_rows, si, dst, d0, d_rows, di)
    want = np.full_like(dst, np.nan)
    for i in range(8):
        for j in range(8):
            want[d0 + d_rows[di + j] + i] = src[s0 + s_rows[si + i] + j]
    np.testing.assert_array_equal(dst, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_images_turned_channels_last_through_strided_views(dtype):
    """(N, C, H, W) -> (N, H, W, C) block by block, the source a view with gaps between its
    channels (a slice of a larger array) and steps() giving the rows' places."""
    rng = np.random.default_rng(5)
    big = rng.standard_normal((3, 20, 9, 16)).astype(dtype)
    x = big[:, 2:18]                                  # 16 channels, 20 apart in the parent
    y = np.full((3, 9, 16, 16), np.nan, dtype)

    @njit(cache=False)
    def turn(x, y):
        N, C, H, W = x.shape
        down, across = steps(8, x.strides[1] // x.itemsize), steps(8, C)
        y1 = y.reshape(-1)
        for n in range(N):
            for h in range(H):
                for c in range(0, C, 8):
                    for w in range(0, W, 8):
                        transpose_block(x[n, :, h], c * down[1] + w, down, 0, y1, ((n * H + h) * W + w) * C + c,
                                        across, 0)
    turn(x, y)
    np.testing.assert_array_equal(y, x.transpose(0, 2, 3, 1))


def test_steps_has_at_least_a_block():
    assert steps(3, 5).tolist() == [0, 5, 10, 15, 20, 25, 30, 35]
    assert steps(10, 2).tolist() == list(range(0, 20, 2))
