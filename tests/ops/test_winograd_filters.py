"""Winograd's filter transforms (netcli/ops/cpu/winograd_filters.py) against G g G^T and its
adjoint computed in float64 from toom_cook's matrices, on random filters of odd counts: a range of
input channels only, the weight gradient added to what dweight held; with numpy's BLAS reached
from compiled code and through np.matmul (a numpy without that GEMM)."""
import weakref

import numpy as np
import pytest

from netcli.ops.cpu import winograd_filters
from netcli.ops.cpu.winograd_filters import filter_matrix, transform_weights
from netcli.ops.cpu.winograd_transforms import toom_cook


@pytest.mark.parametrize("blas", ["compiled", "matmul"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k", [(2, 3), (4, 3), (4, 5)])
def test_filter_transforms_against_g_g_gt(m, k, dtype, blas, monkeypatch):
    if blas == "matmul":
        monkeypatch.setattr(winograd_filters, "gemm_address", lambda dtype: 0)
    elif not winograd_filters.gemm_address(dtype):
        pytest.skip("this numpy's BLAS has no 64-bit-integer cblas_?gemm")
    rng = np.random.default_rng(m * 10 + k)
    G = toom_cook(m, k)[1]
    r = m + k - 1
    O, I, i0, i1 = 7, 5, 1, 4
    weight = rng.standard_normal((O, I, k, k)).astype(dtype)
    U = np.full((r * r, I, O), np.nan, dtype)
    transform_weights(weight, U, m, i0, i1)
    want = np.einsum("ax,oixy,by->abio", G, weight.astype(np.float64), G).reshape(r * r, I, O)
    tol = dict(rtol=0, atol=(1e-6 if dtype == np.float32 else 1e-13) * np.abs(want).max())
    np.testing.assert_allclose(U[:, i0:i1], want[:, i0:i1], **tol)
    assert np.isnan(U[:, :i0]).all() and np.isnan(U[:, i1:]).all()

    dU = rng.standard_normal((r * r, I, O)).astype(dtype)
    dweight = rng.standard_normal((O, I, k, k)).astype(dtype)
    before = dweight.copy()
    transform_weights(dweight, dU, m, i0, i1, adjoint=True)
    grads = np.einsum("ax,abio,by->oixy", G, dU.astype(np.float64).reshape(r, r, I, O), G)
    np.testing.assert_allclose(dweight[:, i0:i1], before[:, i0:i1] + grads[:, i0:i1],
                               rtol=0, atol=(1e-6 if dtype == np.float32 else 1e-13) * np.abs(grads).max() * r)
    assert np.array_equal(dweight[:, :i0], before[:, :i0]) and np.array_equal(dweight[:, i1:], before[:, i1:])


def test_filter_matrix_is_g_kron_g_and_read_only():
    G = toom_cook(4, 5)[1]
    KG = filter_matrix(4, 5, np.dtype(np.float64))
    g = np.random.default_rng(0).standard_normal((5, 5))
    np.testing.assert_allclose((KG @ g.reshape(-1)).reshape(8, 8), G @ g @ G.T, rtol=1e-13, atol=1e-13)
    assert not KG.flags.writeable


def test_the_filter_matrix_stays_held_while_a_team_job_reads_it(monkeypatch):
    """A team job records only KG's address. Two threads computing filter_matrix's first result at
    once each get their own array, and the cache keeps one: the other must stay referenced until
    its job has run. Here every KG is a fresh array whose numbers turn NaN once it is dropped."""
    from netcli.ops.cpu import winograd
    from netcli.ops.cpu.winograd import winograd_backward, winograd_forward, winograd_scratch, winograd_workspace
    from reference import conv2d as ref_conv
    if not winograd_filters.gemm_address(np.float32):
        pytest.skip("no team job without numpy's GEMM reachable from compiled code")
    held = []

    def fresh(m, k, dtype):
        store = np.array(filter_matrix(m, k, dtype))        # alive for the test: NaN once the caller drops it
        held.append(store)
        view = store.view()
        weakref.finalize(view, store.fill, np.nan)
        return view
    monkeypatch.setattr(winograd, "filter_matrix", fresh)
    rng = np.random.default_rng(3)
    n, C, H, K = 2, 4, 9, 5
    x, w = rng.standard_normal((n, C, H, H)).astype(np.float32), rng.standard_normal((K, C, 3, 3)).astype(np.float32)
    ws = {name: np.zeros(s, d) for name, (s, d) in {**winograd_workspace(n, C, H, H, K, H, H, np.float32, 4, 3),
                                                    **winograd_scratch(n, C, H, H, K, H, H, np.float32, 4, 3)}.items()}
    y = np.full((n, K, H, H), np.nan, np.float32)
    winograd_forward(y, x, w, None, ws, 1, 1, 4)
    want = ref_conv(x.astype(np.float64), w.astype(np.float64), None, pad=(1, 1))
    np.testing.assert_allclose(y, want, rtol=0, atol=2e-5 * np.abs(want).max())
    dw = np.zeros_like(w)
    winograd_backward(None, dw, None, rng.standard_normal(y.shape).astype(np.float32), x, w, ws, 1, 1, True, 4)
    assert np.isfinite(dw).all()
    assert len(held) == 2 and all(np.isnan(h).all() for h in held)     # both dropped after their jobs
