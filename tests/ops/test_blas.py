"""The GEMM that team jobs call from compiled code (netcli/ops/cpu/blas.py): numpy's own BLAS
function by its address, so its products have np.matmul's bits (random shapes of more than one
row and column, plain and with A transposed, float32 and float64; np.matmul multiplies a matrix
by a vector another way, so that one only agrees in value); gemm_add adds its product into C."""
import numpy as np
import pytest
from numba import njit

from netcli.ops.cpu.blas import gemm, gemm_add, gemm_address


def _address_or_skip(dtype):
    """The GEMM's address for dtype, or the test skipped where numpy's BLAS has none reachable."""
    fn = gemm_address(dtype)
    if not fn:
        pytest.skip("this numpy's BLAS has no 64-bit-integer cblas_?gemm (team jobs use np.matmul)")
    return fn


@njit(cache=False, nogil=True)
def _product(fn, a, b, c, trans_a):
    M, N = c.shape
    K = a.shape[0] if trans_a else a.shape[1]
    gemm(fn, c.reshape(-1)[:0], 1 if trans_a else 0, 0, M, N, K, a.ctypes.data, a.shape[1], b.ctypes.data, N,
         c.ctypes.data, N)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_gemm_gives_matmuls_bits(dtype):
    fn = _address_or_skip(dtype)
    rng = np.random.default_rng(7)
    for M, N, K in [(2, 3, 5), (37, 33, 129), (256, 16, 16), (64, 64, 576), (3, 200, 1), (17, 1, 9), (1, 8, 6)]:
        vector = M == 1 or N == 1
        a = rng.standard_normal((M, K)).astype(dtype)
        b = rng.standard_normal((K, N)).astype(dtype)
        c = np.full((M, N), np.nan, dtype)
        _product(fn, a, b, c, False)
        assert vector or np.array_equal(c, np.matmul(a, b)), (M, N, K)
        np.testing.assert_allclose(c, np.matmul(a, b), rtol=1e-5, atol=1e-5)
        at = np.ascontiguousarray(a.T)                     # (K, M): the product reads it transposed
        c[...] = np.nan
        _product(fn, at, b, c, True)
        assert vector or np.array_equal(c, np.matmul(at.transpose(), b)), (M, N, K)
        np.testing.assert_allclose(c, a.astype(np.float64) @ b.astype(np.float64), rtol=1e-3, atol=1e-3)


@njit(cache=False, nogil=True)
def _add_product(fn, a, b, c):
    """c += a^T @ b^T: a (K, M), b (N, K)."""
    M, N, K = c.shape[0], c.shape[1], a.shape[0]
    gemm_add(fn, c.reshape(-1)[:0], 1, 1, M, N, K, a.ctypes.data, M, b.ctypes.data, K, c.ctypes.data, N)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_add_adds_the_product_into_c(dtype):
    fn = _address_or_skip(dtype)
    rng = np.random.default_rng(8)
    for M, N, K in [(2, 3, 5), (37, 33, 129), (64, 25, 64)]:
        a, b = rng.standard_normal((K, M)).astype(dtype), rng.standard_normal((N, K)).astype(dtype)
        c0 = rng.standard_normal((M, N)).astype(dtype)
        c = c0.copy()
        _add_product(fn, a, b, c)
        want = c0.astype(np.float64) + a.T.astype(np.float64) @ b.T.astype(np.float64)
        np.testing.assert_allclose(c, want, rtol=1e-4, atol=1e-4 * np.sqrt(K))


def test_no_address_for_other_dtypes():
    assert gemm_address(np.int32) == 0
