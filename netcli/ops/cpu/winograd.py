"""Winograd F(2x2, 3x3) and F(4x4, 3x3) for 3x3 stride-1 convolutions without groups or dilation
(Lavin & Gray, 2015): each m x m output tile (m = 2 or 4) from an (m+2) x (m+2) input tile, with
E = (m+2)^2 products per channel pair instead of 9 m^2. The kernels below are F(2x2, 3x3)'s
(E = 16); F(4x4, 3x3)'s transforms are in netcli/ops/cpu/winograd4.py, and the drivers here
(`m`) run either.

y_tile = A^T [ (G g G^T) . (B^T d B) ] A, where g is a 3x3 filter, d a 4x4 input tile and the 16
element-wise products over the channels become E GEMMs, M[e] (K, T) = U[e] (K, C) @ V[e] (C, T),
e = the E tile positions, T = tiles of the n images. Arrays: inp (n, C, H, W), out (n, K, OH, OW),
weight (K, C, 3, 3); U (E, K, C), V (E, C, T), M (E, K, T) in the caller's scratch.

Backward: the input gradient is the same algorithm on dout with the filters turned 180 degrees
and input/output channels swapped (padding 2 - P); the weight gradient is formed in the
transformed domain, dU[e] (K, C) = (A dY A^T)[e] (K, T) @ V[e]^T (T, C) with the forward's V, and
brought back by dg = G^T dU G. Padding up to 2 (`winograd_fits`).

Memory: the n images of a call go through in chunks (`winograd_chunks`, ops/cpu/chunks.py), so
that the transformed arrays of one chunk stay under CHUNK_BYTES each: VGG-16's 224x224
layers take one image at a time (51 MB per array, instead of 0.8 GB for 16 images), CIFAR-sized
layers their whole call. Where one chunk holds the call, its V stays in the workspace for the
backward; otherwise V is scratch, and the backward transforms the input again, chunk by chunk
(one input transform more, against keeping E/m^2 = 4x (F(4x4): 2.25x) the input's size per call).
"""
import numpy as np
from numba import njit

from .chunks import first as _first, image_chunks, largest
from .im2col import sum_bias
from .tile_rows import copy_into, load_rows, store_rows
from .winograd4 import (winograd4_inputs, winograd4_output_grads, winograd4_outputs, winograd4_weight_grads,
                        winograd4_weights)


def winograd_fits(KH, KW, SH, SW, PH, PW, DH, DW, group):
    """Whether Winograd F(2x2, 3x3) computes this convolution (backward included)."""
    return KH == KW == 3 and SH == SW == DH == DW == group == 1 and PH <= 2 and PW <= 2


def winograd_chunks(n, C, H, W, K, OH, OW, itemsize, m=2):
    """[(first, stop)]: the chunks of images (ops/cpu/chunks.py) that a call on n images runs one
    after another, each transformed array (V, M and the backward's) of a chunk within CHUNK_BYTES."""
    tiles = max(np.prod(winograd_tiles(OH, OW, m)), np.prod(winograd_tiles(H, W, m)))   # forward's, input gradient's
    return image_chunks(n, (m + 2) ** 2 * max(C, K) * itemsize * int(tiles))


def winograd_workspace(n, C, H, W, K, OH, OW, dtype, m=2):
    """{name: (shape, dtype)}: what the backward reads from the forward (the transformed input V,
    where one chunk holds the call; otherwise nothing: the backward transforms it again)."""
    if len(winograd_chunks(n, C, H, W, K, OH, OW, np.dtype(dtype).itemsize, m)) > 1:
        return {}
    TH, TW = winograd_tiles(OH, OW, m)
    return {"V": (((m + 2) ** 2, C, n * TH * TW), dtype)}


def winograd_scratch(n, C, H, W, K, OH, OW, dtype, m=2):
    """{name: (shape, dtype)}: the transformed arrays each call writes before it reads them, for
    its largest chunk (and V, where the workspace does not keep it)."""
    chunks = winograd_chunks(n, C, H, W, K, OH, OW, np.dtype(dtype).itemsize, m)
    most, E = largest(chunks), (m + 2) ** 2
    T = most * int(np.prod(winograd_tiles(OH, OW, m)))
    Tb = most * int(np.prod(winograd_tiles(H, W, m)))
    out = {"U": ((E, K, C), dtype), "M": ((E, K, T), dtype),
           "Ub": ((E, C, K), dtype), "Vb": ((E, K, Tb), dtype), "Mb": ((E, C, Tb), dtype),
           "wflip": ((C, K, 3, 3), dtype), "dU": ((E, K, C), dtype), "no_bias": ((0,), dtype)}
    if len(chunks) > 1:
        out.update({"V": ((E, C, T), dtype), "dU2": ((E, K, C), dtype)})
    return out


def winograd_tiles(OH, OW, m=2):
    """(TH, TW): m x m output tiles per image down and across."""
    return (OH + m - 1) // m, (OW + m - 1) // m


@njit(cache=True, nogil=True)
def winograd_weights(weight, U):
    """U[(a*4 + b), k, c] = (G g G^T)[a, b] for g = weight[k, c] (3x3)."""
    K, C = weight.shape[0], weight.shape[1]
    t = np.empty((4, 3), U.dtype)
    for k in range(K):
        for c in range(C):
            g = weight[k, c]
            for j in range(3):          # t = G g
                t[0, j] = g[0, j]
                t[1, j] = 0.5 * (g[0, j] + g[1, j] + g[2, j])
                t[2, j] = 0.5 * (g[0, j] - g[1, j] + g[2, j])
                t[3, j] = g[2, j]
            for a in range(4):          # U = t G^T
                U[a * 4 + 0, k, c] = t[a, 0]
                U[a * 4 + 1, k, c] = 0.5 * (t[a, 0] + t[a, 1] + t[a, 2])
                U[a * 4 + 2, k, c] = 0.5 * (t[a, 0] - t[a, 1] + t[a, 2])
                U[a * 4 + 3, k, c] = t[a, 2]


@njit(cache=True, nogil=True)
def winograd_inputs(inp, V, PH, PW, TH, TW):
    """V[e, c, (n*TH + th)*TW + tw] = (B^T d B)[e] for d the 4x4 tile of image n, channel c at
    rows 2*th - PH.., columns 2*tw - PW.. (zero outside the image). The image is copied into a
    zero-padded plane first; a row of tiles is transformed into tmp (16, TW), then copied to V
    (ops/cpu/tile_rows.py). The transform's arithmetic still compiles to scalar code: LLVM
    reports "too many memory checks needed" for its loop over tw (numba gives it no noalias)."""
    N, C, H, W = inp.shape
    Hx, Wx = 2 * TH + 2, 2 * TW + 2
    xp = np.zeros((Hx, Wx), V.dtype)
    tmp = np.empty((16, TW), V.dtype)
    for n in range(N):
        for c in range(C):
            copy_into(inp[n, c], xp, PH, PW)
            for th in range(TH):
                i = 2 * th
                for tw in range(TW):
                    j = 2 * tw
                    a0, a1 = xp[i, j] - xp[i + 2, j], xp[i + 1, j] + xp[i + 2, j]
                    a2, a3 = xp[i + 2, j] - xp[i + 1, j], xp[i + 1, j] - xp[i + 3, j]
                    b0, b1 = xp[i, j + 1] - xp[i + 2, j + 1], xp[i + 1, j + 1] + xp[i + 2, j + 1]
                    b2, b3 = xp[i + 2, j + 1] - xp[i + 1, j + 1], xp[i + 1, j + 1] - xp[i + 3, j + 1]
                    c0, c1 = xp[i, j + 2] - xp[i + 2, j + 2], xp[i + 1, j + 2] + xp[i + 2, j + 2]
                    c2, c3 = xp[i + 2, j + 2] - xp[i + 1, j + 2], xp[i + 1, j + 2] - xp[i + 3, j + 2]
                    d0, d1 = xp[i, j + 3] - xp[i + 2, j + 3], xp[i + 1, j + 3] + xp[i + 2, j + 3]
                    d2, d3 = xp[i + 2, j + 3] - xp[i + 1, j + 3], xp[i + 1, j + 3] - xp[i + 3, j + 3]
                    tmp[0, tw], tmp[1, tw], tmp[2, tw], tmp[3, tw] = a0 - c0, b0 + c0, c0 - b0, b0 - d0
                    tmp[4, tw], tmp[5, tw], tmp[6, tw], tmp[7, tw] = a1 - c1, b1 + c1, c1 - b1, b1 - d1
                    tmp[8, tw], tmp[9, tw], tmp[10, tw], tmp[11, tw] = a2 - c2, b2 + c2, c2 - b2, b2 - d2
                    tmp[12, tw], tmp[13, tw], tmp[14, tw], tmp[15, tw] = a3 - c3, b3 + c3, c3 - b3, b3 - d3
                store_rows(tmp, V, c, (n * TH + th) * TW)


@njit(cache=True, nogil=True)
def winograd_outputs(M, out, bias, TH, TW):
    """out[n, k, 2*th + r, 2*tw + s] = bias[k] + (A^T m A)[r, s] for m = M[:, k, tile] (4x4),
    inside the image; bias may be empty. A row of tiles is gathered into tmp (16, TW) first
    (two 2-D arrays in the transform's loop, as in winograd_inputs)."""
    N, K, OH, OW = out.shape
    has_bias = bias.shape[0] > 0
    tmp = np.empty((16, TW), M.dtype)
    ybuf = np.empty((2, 2 * TW), M.dtype)
    for n in range(N):
        for k in range(K):
            b = bias[k] if has_bias else 0.0
            y = out[n, k]
            for th in range(TH):
                load_rows(M, k, (n * TH + th) * TW, tmp)
                for tw in range(TW):
                    u00 = tmp[0, tw] + tmp[4, tw] + tmp[8, tw]
                    u10 = tmp[4, tw] - tmp[8, tw] - tmp[12, tw]
                    u01 = tmp[1, tw] + tmp[5, tw] + tmp[9, tw]
                    u11 = tmp[5, tw] - tmp[9, tw] - tmp[13, tw]
                    u02 = tmp[2, tw] + tmp[6, tw] + tmp[10, tw]
                    u12 = tmp[6, tw] - tmp[10, tw] - tmp[14, tw]
                    u03 = tmp[3, tw] + tmp[7, tw] + tmp[11, tw]
                    u13 = tmp[7, tw] - tmp[11, tw] - tmp[15, tw]
                    ybuf[0, 2 * tw] = b + (u00 + u01 + u02)
                    ybuf[0, 2 * tw + 1] = b + (u01 - u02 - u03)
                    ybuf[1, 2 * tw] = b + (u10 + u11 + u12)
                    ybuf[1, 2 * tw + 1] = b + (u11 - u12 - u13)
                copy_into(ybuf, y, 2 * th, 0)


@njit(cache=True, nogil=True)
def winograd_output_grads(dout, Y, TH, TW):
    """The adjoint of winograd_outputs: Y[e, k, (n*TH + th)*TW + tw] = (A dy A^T)[e] for dy the
    2x2 tile of dout[n, k] at (2*th, 2*tw) (zero outside the image); a row of tiles at a time
    through tmp (16, TW), as in winograd_inputs."""
    N, K, OH, OW = dout.shape
    yp = np.zeros((2 * TH, 2 * TW), Y.dtype)
    tmp = np.empty((16, TW), Y.dtype)
    for n in range(N):
        for k in range(K):
            copy_into(dout[n, k], yp, 0, 0)
            for th in range(TH):
                i = 2 * th
                for tw in range(TW):
                    j = 2 * tw
                    p, q, r, s = yp[i, j], yp[i, j + 1], yp[i + 1, j], yp[i + 1, j + 1]
                    z10, z11, z20, z21 = p + r, q + s, p - r, q - s      # A dy, rows 1 and 2
                    tmp[0, tw], tmp[1, tw], tmp[2, tw], tmp[3, tw] = p, p + q, p - q, -q
                    tmp[4, tw], tmp[5, tw], tmp[6, tw], tmp[7, tw] = z10, z10 + z11, z10 - z11, -z11
                    tmp[8, tw], tmp[9, tw], tmp[10, tw], tmp[11, tw] = z20, z20 + z21, z20 - z21, -z21
                    tmp[12, tw], tmp[13, tw], tmp[14, tw], tmp[15, tw] = -r, -r - s, s - r, s
                store_rows(tmp, Y, k, (n * TH + th) * TW)


@njit(cache=True, nogil=True)
def winograd_weight_grads(dU, dweight):
    """The adjoint of winograd_weights: dweight[k, c] += G^T dU[:, k, c] G (4x4 -> 3x3)."""
    K, C = dweight.shape[0], dweight.shape[1]
    t = np.empty((3, 4), dU.dtype)
    for k in range(K):
        for c in range(C):
            for b in range(4):          # t = G^T dU
                u0, u1, u2, u3 = dU[b, k, c], dU[4 + b, k, c], dU[8 + b, k, c], dU[12 + b, k, c]
                t[0, b] = u0 + 0.5 * (u1 + u2)
                t[1, b] = 0.5 * (u1 - u2)
                t[2, b] = 0.5 * (u1 + u2) + u3
            for i in range(3):          # dg = t G
                dweight[k, c, i, 0] += t[i, 0] + 0.5 * (t[i, 1] + t[i, 2])
                dweight[k, c, i, 1] += 0.5 * (t[i, 1] - t[i, 2])
                dweight[k, c, i, 2] += 0.5 * (t[i, 1] + t[i, 2]) + t[i, 3]


def _convolve(out, inp, weight, bias, U, V, M, PH, PW, chunks, m):
    """out = inp * weight + bias, chunk by chunk through V and M (U: the weights' transform);
    with one chunk, V is left holding the input's transform."""
    weights, inputs, outputs = KERNELS[m][:3]
    TH, TW = winograd_tiles(out.shape[2], out.shape[3], m)
    weights(weight, U)
    for a, b in chunks:
        T = (b - a) * TH * TW
        Vc, Mc = _first(V, (U.shape[0], V.shape[1], T)), _first(M, (U.shape[0], M.shape[1], T))
        inputs(inp[a:b], Vc, PH, PW, TH, TW)
        np.matmul(U, Vc, out=Mc)
        outputs(Mc, out[a:b], bias, TH, TW)


def _chunks_of(inp, out, m):
    n, C, H, W = inp.shape
    return winograd_chunks(n, C, H, W, out.shape[1], out.shape[2], out.shape[3], inp.itemsize, m)


def winograd_forward(out, inp, weight, bias, ws, PH, PW, m=2):
    """out = inp * weight (3x3, stride 1, padding PH x PW) + bias (None: none) by F(m x m, 3x3);
    with one chunk the transformed input stays in ws["V"] for the backward."""
    _convolve(out, inp, weight, ws["no_bias"] if bias is None else bias, ws["U"], ws["V"], ws["M"], PH, PW,
              _chunks_of(inp, out, m), m)


def winograd_backward(dinp, dweight, dbias, dout, inp, weight, ws, PH, PW, fresh, m=2):
    """From dout, the input and ws of winograd_forward: dinp (None: skipped) = the input
    gradient; dweight, dbias (None: skipped) += the gradients (cleared first when `fresh`).
    The weight gradient's transform dU sums the chunks in order (each chunk's GEMM, then added)."""
    n, K = dout.shape[:2]
    chunks = _chunks_of(inp, dout, m)
    _, inputs, _, output_grads, weight_grads = KERNELS[m]
    E = (m + 2) ** 2
    TH, TW = winograd_tiles(dout.shape[2], dout.shape[3], m)
    for target in (dbias, dweight) if fresh else ():
        if target is not None:
            target[...] = 0.0
    if dbias is not None:
        sum_bias(dout.reshape(n, K, -1), dbias)
    if dweight is not None:
        dU = ws["dU"]
        for k, (a, b) in enumerate(chunks):
            T = (b - a) * TH * TW
            Y = _first(ws["M"], (E, K, T))        # the forward's products are spent: dY's transform
            output_grads(dout[a:b], Y, TH, TW)
            if len(chunks) == 1:
                V = ws["V"]
            else:
                V = _first(ws["V"], (E, inp.shape[1], T))
                inputs(inp[a:b], V, PH, PW, TH, TW)
            np.matmul(Y, V.transpose(0, 2, 1), out=dU if k == 0 else ws["dU2"])
            if k:
                dU += ws["dU2"]
        weight_grads(dU, dweight)
    if dinp is not None:
        np.copyto(ws["wflip"], weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
        _convolve(dinp, dout, ws["wflip"], ws["no_bias"], ws["Ub"], ws["Vb"], ws["Mb"], 2 - PH, 2 - PW, chunks, m)


KERNELS = {      # m: the transforms of F(m x m, 3x3): weights, inputs, outputs, output_grads, weight_grads
    2: (winograd_weights, winograd_inputs, winograd_outputs, winograd_output_grads, winograd_weight_grads),
    4: (winograd4_weights, winograd4_inputs, winograd4_outputs, winograd4_output_grads, winograd4_weight_grads),
}
