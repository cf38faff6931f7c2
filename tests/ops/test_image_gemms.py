"""A convolution's per-image products (netcli/ops/cpu/image_gemms.py) against np.matmul, bit for
bit: a shared matrix and per-image ones, plain and transposed views, float32 and float64; the team
job runs them where every matrix is a plain or transposed row-major one, np.matmul elsewhere."""
import numpy as np
import pytest

from netcli.ops.cpu import image_gemms as module
from netcli.ops.cpu.blas import gemm_address


def _cases(rng, dtype):
    n, M, N, K = 5, 7, 9, 6
    w, x = rng.standard_normal((M, K)).astype(dtype), rng.standard_normal((n, K, N)).astype(dtype)
    wt = rng.standard_normal((K, M)).astype(dtype)
    y = rng.standard_normal((n, M, N)).astype(dtype)
    z = rng.standard_normal((n, 4, N)).astype(dtype)
    big = rng.standard_normal((n, 3 * M, K)).astype(dtype)
    return [  # (a, b, team job expected)
        (w, x, True),                                 # conv forward: weights @ each image's patches
        (wt.T, x, True),                              # the input gradient: weights^T @ dout
        (y, z.transpose(0, 2, 1), True),              # the weight gradient: dout @ patches^T, per image
        (big[:, M:2 * M], x, True),                   # rows of a larger image (a group's channels)
        (w[:1], x, False),                            # one row: np.matmul's matrix-vector path
        (w[:, :1], x[:, :1], False),                  # an inner size of one: np.matmul's own loop
        (w[:, ::2], x[:, ::2], False),                # a matrix with a stride inside its rows
    ]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_image_products_have_np_matmuls_bits(dtype, monkeypatch):
    jobs = []
    real = module.image_gemms_job
    monkeypatch.setattr(module, "image_gemms_job", lambda *args: (jobs.append(args), real(*args)))
    for a, b, team in _cases(np.random.default_rng(3), dtype):
        want = np.matmul(a, b)
        got = np.full(want.shape, np.nan, dtype)
        before = len(jobs)
        module.image_gemms(a, b, got)
        assert np.array_equal(got, want)
        assert (len(jobs) > before) == (team and bool(gemm_address(dtype)))


def test_an_output_that_is_not_contiguous_goes_to_np_matmul():
    rng = np.random.default_rng(4)
    w, x = rng.standard_normal((4, 3)).astype(np.float32), rng.standard_normal((2, 3, 5)).astype(np.float32)
    out = np.zeros((2, 8, 5), np.float32)
    module.image_gemms(w, x, out[:, ::2])
    assert np.array_equal(out[:, ::2], np.matmul(w, x)) and not out[:, 1::2].any()
