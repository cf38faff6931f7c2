"""Winograd's filter transforms (winograd.py): U = G g G^T for each k x k filter g of a
convolution, and for the weight gradient the adjoint, dg += G^T dU G. With the filters' numbers
in a row (g[x, y] at x*k + y) and a tile's positions e = r*a + b, both are products by one
matrix, the Kronecker product KG = G (x) G (r*r, k*k; KG[r*a + b, k*x + y] = G[a, x] G[b, y]):
for each input channel i, U[:, i, :] (E, O) = KG @ weight[:, i]^T (k*k, O), and dweight[:, i]
(O, k*k) += dU[:, i]^T (O, E) @ KG: one GEMM each, reading the weights where they are.

Against the loops they replaced (the same sums, G then G^T, in float64, vectorised over the
output channels), one thread, Intel Xeon (model 207), best of 5, ms a call, weights / weight
gradient: LeNet's conv2 F(4x4, 5x5) 50 x 20 filters 0.100 / 0.101 -> 0.040 / 0.029, its input
gradient's 20 x 50 filters 0.129 / 0.136 -> 0.049 / 0.038; F(2x2, 3x3) 64 x 64 0.069 / 0.094 ->
0.031 / 0.027; F(4x4, 3x3) 32 x 32 0.030 / 0.036 -> 0.019 / 0.012, 64 x 64 0.095 / 0.118 ->
0.056 / 0.042. Every pass of a net that runs Winograd transforms its weights (and the input
gradient the turned ones), on each share's thread: LeNet spent 9% of a training step on them.
In the array's dtype, the sums of k*k (or r*r) products differ from float64's by about 1e-7 of
the largest (tests/ops/test_winograd.py).

Where numpy's BLAS has no GEMM that compiled code reaches (ops/cpu/blas.py), `transform_weights`
makes the same products with np.matmul."""
from __future__ import annotations

import functools

import numpy as np
from numba import njit

from .blas import address, gemm, gemm_add, gemm_address
from .winograd_transforms import toom_cook


@functools.lru_cache(maxsize=None)
def filter_matrix(m, k, dtype):
    """KG = G (x) G of F(m x m, k x k) in dtype (read-only): (r*r, k*k)."""
    G = toom_cook(m, k)[1]
    out = np.kron(G, G).astype(dtype)
    out.flags.writeable = False
    return out


@njit(cache=True, nogil=True)
def winograd_weights(fn, weight, U, KG, i0, i1):
    """U[:, i, :] (E, O) = KG (E, k*k) @ weight[:, i] (O, k*k)^T for the input channels i0 <= i <
    i1, by the GEMM at address fn; weight (O, I, k, k), U (E, I, O)."""
    O, I = weight.shape[0], weight.shape[1]
    kk, E, size = weight.shape[2] * weight.shape[3], KG.shape[0], weight.itemsize
    at_w, at_u, at_kg = address(weight), address(U), address(KG)
    for i in range(i0, i1):
        gemm(fn, weight, 0, 1, E, O, kk, at_kg, kk, at_w + i * kk * size, I * kk, at_u + i * O * size, I * O)


@njit(cache=True, nogil=True)
def winograd_weight_grads(fn, dU, dweight, KG, i0, i1):
    """The adjoint of winograd_weights: dweight[:, i] (O, k*k) += dU[:, i] (E, O)^T @ KG (E, k*k)
    for the input channels i0 <= i < i1, by the GEMM at address fn; dU (E, I, O), dweight (O, I,
    k, k)."""
    O, I = dweight.shape[0], dweight.shape[1]
    kk, E, size = dweight.shape[2] * dweight.shape[3], KG.shape[0], dweight.itemsize
    at_du, at_dw, at_kg = address(dU), address(dweight), address(KG)
    for i in range(i0, i1):
        gemm_add(fn, dweight, 1, 0, O, kk, E, at_du + i * O * size, I * O, at_kg, kk, at_dw + i * kk * size, I * kk)


def transform_weights(weight, T, m, i0, i1, adjoint=False):
    """T[:, i0:i1] (E, I, O) = the transform of weight[:, i0:i1] (O, I, k, k), or where `adjoint`,
    weight[:, i0:i1] += the adjoint's of T (the weight gradient), for F(m x m, k x k)."""
    O, k = weight.shape[0], weight.shape[2]
    KG = filter_matrix(m, k, weight.dtype)
    fn = gemm_address(weight.dtype)
    if fn:
        (winograd_weight_grads(fn, T, weight, KG, i0, i1) if adjoint else
         winograd_weights(fn, weight, T, KG, i0, i1))
        return
    for i in range(i0, i1):                  # (np.matmul: the same products, with numpy's BLAS)
        if adjoint:
            weight[:, i] += (T[:, i].T @ KG).reshape(O, k, k)
        else:
            T[:, i] = KG @ weight[:, i].reshape(O, k * k).T
