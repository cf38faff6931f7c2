"""Winograd's blocks of images (winograd.py) as team jobs (exec/team.py; run by
ops/cpu/team_jobs.py): the share's thread and its helpers take the tiles, without Python between
them; with no helpers the share's thread takes every tile, so the bits do not depend on the thread
count.

A block's convolution (`conv_block`, the forward and the input gradient) is three phases:
the input transform in tiles of (image, rows of tiles), then one GEMM per tile position e
(M[e] = V[e] @ U[e], each as np.matmul makes it: ops/cpu/blas.py), then the output transform in
the input transform's tiles. A block's weight gradient (`weight_grad_block`) is two: the output
gradient's transform, an image a tile, then one GEMM per tile position, dU[e] = V[e]^T @ Y[e]
(after the first block: into dU2[e], then added into dU[e], as the blocks always were).
Each phase has about PHASE_TILES tiles where the block allows (the images' rows of tiles cut in
blocks, the tile positions in groups; exec/claims.py). The tiles depend on the block's shape
alone."""
from __future__ import annotations

from numba import carray, njit

from ...exec.claims import (CONV, GEMM, HEAD, PHASE1, PHASE2, PHASE_TILES, TILES, WEIGHT_GRAD, WEIGHTS,
                            write_job)
from .blas import address as _address, at as _at, gemm
from .winograd_filters import winograd_weight_grads, winograd_weights
from .winograd_transforms import winograd_inputs, winograd_output_grads, winograd_outputs



@njit(cache=True, nogil=True)
def _row_blocks(N, TH):
    """Blocks of rows of tiles per group of images (min(N, PHASE_TILES) groups): PHASE_TILES
    tiles a phase where the rows allow."""
    return min(TH, max(1, (PHASE_TILES + N - 1) // N))


@njit(cache=True, nogil=True)
def _images_rows(t, N, TH, RB):
    """Tile t of a transform phase: its images i0..i1 and rows of tiles th0..th1."""
    G = min(N, PHASE_TILES)
    g, b = divmod(t, RB)
    return N * g // G, N * (g + 1) // G, TH * b // RB, TH * (b + 1) // RB


# conv_block's record, from HEAD: its arrays' addresses and sizes
(C_INP, C_N, C_C, C_H, C_W, C_V, C_VROWS, C_T0, C_U, C_M, C_K, C_OUT, C_OH, C_OW, C_BIAS, C_NBIAS,
 C_PH, C_PW, C_TH, C_TW, C_m, C_r, C_RB) = range(HEAD, HEAD + 23)


@njit(cache=True, nogil=True)
def conv_block(record, fn, inp, V, t0, U, M, out, bias, PH, PW, TH, TW, m, r):
    """The job (into record) out = the images inp's convolution (winograd_forward's block): V[:,
    t0:] (E, T, C) <- the input transform, M (E, T, K) = V[e] @ U[e], out <- the output transform
    (+ bias: may be empty); fn: the GEMM's address."""
    N, C, H, W = inp.shape
    K, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    E, RB = r * r, _row_blocks(inp.shape[0], TH)
    fields = (_address(inp), N, C, H, W, _address(V), V.shape[1], t0, _address(U), _address(M), K,
              _address(out), OH, OW, _address(bias), bias.shape[0], PH, PW, TH, TW, m, r, RB)
    P, Q = min(N, PHASE_TILES) * RB, min(E, PHASE_TILES)     # tiles of each transform, of the GEMMs
    write_job(record, CONV, 2 * P + Q, P, P + Q, fn, inp.itemsize, fields)


@njit(cache=True, nogil=True)
def conv_tile(record, t, like):
    """Tile t of a conv_block job."""
    N, C, H, W, K = record[C_N], record[C_C], record[C_H], record[C_W], record[C_K]
    TH, TW, m, r, RB, t0 = record[C_TH], record[C_TW], record[C_m], record[C_r], record[C_RB], record[C_T0]
    E, T, VROWS, size = r * r, N * TH * TW, record[C_VROWS], like.itemsize
    if record[PHASE1] <= t < record[PHASE2]:
        G = record[PHASE2] - record[PHASE1]
        for e in range(E * (t - record[PHASE1]) // G, E * (t - record[PHASE1] + 1) // G):
            gemm(record[GEMM], like, 0, 0, T, K, C, record[C_V] + (e * VROWS + t0) * C * size, C,
                 record[C_U] + e * C * K * size, K, record[C_M] + e * T * K * size, K)
        return
    i0, i1, th0, th1 = _images_rows(t if t < record[PHASE1] else t - record[PHASE2], N, TH, RB)
    if t < record[PHASE1]:
        inp = carray(_at(record[C_INP] + i0 * C * H * W * size, like), (i1 - i0, C, H, W))
        V = carray(_at(record[C_V], like), (E, VROWS, C))
        winograd_inputs(inp, V, t0 + i0 * TH * TW, record[C_PH], record[C_PW], TH, TW, m, r, th0, th1)
    else:
        OH, OW = record[C_OH], record[C_OW]
        out = carray(_at(record[C_OUT] + i0 * K * OH * OW * size, like), (i1 - i0, K, OH, OW))
        M = carray(_at(record[C_M], like), (E, T, K))
        bias = carray(_at(record[C_BIAS], like), (record[C_NBIAS],))
        winograd_outputs(M, i0 * TH * TW, out, bias, TH, TW, m, r, th0, th1)


# weight_grad_block's record, from HEAD
(G_DOUT, G_N, G_K, G_OH, G_OW, G_Y, G_V, G_VROWS, G_T0, G_C, G_DU, G_DU2, G_TH, G_TW, G_m, G_r) = \
    range(HEAD, HEAD + 16)


@njit(cache=True, nogil=True)
def weight_grad_block(record, fn, dout, Y, V, t0, dU, dU2, first, TH, TW, m, r):
    """The job (into record) of the weight gradient's transform from one block
    (winograd_backward's): Y (E, T, K) <- the transform of dout, then dU[e] = V[e, t0:t0+T]^T @
    Y[e] for the first block, else dU2[e] = that and dU[e] += dU2[e]."""
    N, K, OH, OW = dout.shape
    E = r * r
    fields = (_address(dout), N, K, OH, OW, _address(Y), _address(V), V.shape[1], t0, V.shape[2],
              _address(dU), -1 if first else _address(dU2), TH, TW, m, r)
    P = min(N, PHASE_TILES)                         # tiles of the transform: groups of images
    write_job(record, WEIGHT_GRAD, P + min(E, PHASE_TILES), P, 0, fn, dout.itemsize, fields)


@njit(cache=True, nogil=True)
def weight_grad_tile(record, t, like):
    """Tile t of a weight_grad_block job."""
    N, K, OH, OW, C = record[G_N], record[G_K], record[G_OH], record[G_OW], record[G_C]
    TH, TW, m, r, size = record[G_TH], record[G_TW], record[G_m], record[G_r], like.itemsize
    E, T = r * r, N * TH * TW
    if t < record[PHASE1]:
        i0, i1 = N * t // record[PHASE1], N * (t + 1) // record[PHASE1]
        dout = carray(_at(record[G_DOUT] + i0 * K * OH * OW * size, like), (i1 - i0, K, OH, OW))
        Y = carray(_at(record[G_Y], like), (E, T, K))
        winograd_output_grads(dout, Y, i0 * TH * TW, TH, TW, m, r)
        return
    G = record[TILES] - record[PHASE1]
    for e in range(E * (t - record[PHASE1]) // G, E * (t - record[PHASE1] + 1) // G):
        into = record[G_DU] if record[G_DU2] < 0 else record[G_DU2]
        gemm(record[GEMM], like, 1, 0, C, K, T, record[G_V] + (e * record[G_VROWS] + record[G_T0]) * C * size, C,
             record[G_Y] + e * T * K * size, K, into + e * C * K * size, K)
        if record[G_DU2] >= 0:
            dU = carray(_at(record[G_DU] + e * C * K * size, like), (C * K,))
            dU2 = carray(_at(record[G_DU2] + e * C * K * size, like), (C * K,))
            for i in range(C * K):
                dU[i] += dU2[i]


# weights_job's record, from HEAD
(W_WEIGHT, W_T, W_KG, W_O, W_I, W_k, W_E, W_ADJOINT) = range(HEAD, HEAD + 8)


@njit(cache=True, nogil=True)
def weights_job(record, fn, weight, T, KG, adjoint):
    """The job (into record) T (E, I, O) <- the transform of weight (O, I, k, k) (winograd_weights),
    or where `adjoint`, weight += the adjoint's of T (winograd_weight_grads: the weight gradient),
    in PHASE_TILES tiles of input channels where there are as many; KG: winograd_filters.py's
    (E, k*k), fn: the GEMM's address."""
    O, I, k, E = weight.shape[0], weight.shape[1], weight.shape[2], KG.shape[0]
    fields = (_address(weight), _address(T), _address(KG), O, I, k, E, 1 if adjoint else 0)
    write_job(record, WEIGHTS, min(I, PHASE_TILES), 0, 0, fn, weight.itemsize, fields)


@njit(cache=True, nogil=True)
def weights_tile(record, t, like):
    """Tile t of a weights_job: its input channels."""
    O, I, k, E = record[W_O], record[W_I], record[W_k], record[W_E]
    weight = carray(_at(record[W_WEIGHT], like), (O, I, k, k))
    T = carray(_at(record[W_T], like), (E, I, O))
    KG = carray(_at(record[W_KG], like), (E, k * k))
    i0, i1 = I * t // record[TILES], I * (t + 1) // record[TILES]
    if record[W_ADJOINT]:
        winograd_weight_grads(record[GEMM], T, weight, KG, i0, i1)
    else:
        winograd_weights(record[GEMM], weight, T, KG, i0, i1)
