"""Winograd F(2x2, 3x3), F(4x4, 3x3) and F(4x4, 5x5) for stride-1 convolutions without groups or
dilation (Lavin & Gray, 2015): each m x m output tile (m = 2 or 4; 4 for 5x5: `TILES`) of a k x k
kernel (k = 3 or 5) from an r x r input tile, r = m + k - 1, with E = r^2 products per channel
pair instead of k^2 m^2. The drivers here run each; the transforms, channels last, are in
netcli/ops/cpu/winograd_transforms.py.

y_tile = A^T [ (G g G^T) . (B^T d B) ] A, where g is a filter, d an input tile and the E
element-wise products over the channels become E GEMMs, M[e] (T, K) = V[e] (T, C) @ U[e] (C, K),
e = the E tile positions, T = tiles of the n images. Arrays: inp (n, C, H, W), out (n, K, OH, OW),
weight (K, C, k, k); U (E, C, K), V (E, T, C), M (E, T, K) in the caller's scratch.

Backward: the input gradient is the same algorithm on dout with the filters turned 180 degrees
and input/output channels swapped (padding k - 1 - P); the weight gradient is formed in the
transformed domain, dU[e] (C, K) = V[e]^T (C, T) @ (A dY A^T)[e] (T, K) with the forward's V, and
brought back by dg = G^T dU G. Padding under k (`winograd_fits`).

Each block of images (BLOCK_BYTES) runs as a team job where numpy's BLAS is reachable from
compiled code (ops/cpu/blas.py): its transforms and GEMMs in fixed tiles (winograd_team.py), which
threads beyond a run's shares help to take (exec/team.py); the same bits as np.matmul's.

Memory: the n images of a call go through in chunks (`winograd_chunks`, ops/cpu/chunks.py), so
that the transformed arrays of one chunk stay under CHUNK_BYTES each: VGG-16's 224x224
layers take one image at a time (51 MB per array, instead of 0.8 GB for 16 images), CIFAR-sized
layers their whole call. Where one chunk holds the call, its V stays in the workspace for the
backward; otherwise V is scratch, and the backward transforms the input again, chunk by chunk
(one input transform more, against keeping E/m^2 = 4x (F(4x4, 3x3): 2.25x, F(4x4, 5x5) 4x) the
input's size per call).
"""

from functools import lru_cache

import numpy as np

from ...exec.team import current as current_team
from .blas import gemm_address
from .chunks import first as _first, image_chunks, largest
from .im2col import sum_bias
from .team_jobs import run_job
from .winograd_team import conv_block, weight_grad_block, weights_job
from .winograd_filters import filter_matrix, transform_weights
from .winograd_transforms import winograd_inputs, winograd_output_grads, winograd_outputs


TILES = {3: (2, 4), 5: (4,)}      # kernel size k: the output tiles m of the F(m x m, k x k) written out


def winograd_fits(KH, KW, SH, SW, PH, PW, DH, DW, group):
    """Whether Winograd (F(4x4, k x k), for 3x3 also F(2x2)) computes this convolution (backward
    included): square kernels of 3 or 5, stride 1, no dilation or groups, padding under the
    kernel's size."""
    return KH == KW in (3, 5) and SH == SW == DH == DW == group == 1 and PH < KH and PW < KW


def winograd_chunks(n, C, H, W, K, OH, OW, itemsize, m=2, k=3):
    """[(first, stop)]: the chunks of images (ops/cpu/chunks.py) that a call on n images runs one
    after another, each transformed array (V, M and the backward's) of a chunk within CHUNK_BYTES."""
    (TH, TW), (THb, TWb) = winograd_tiles(OH, OW, m), winograd_tiles(H, W, m)      # forward's, input gradient's
    return image_chunks(n, (m + k - 1) ** 2 * max(C, K) * itemsize * max(TH * TW, THb * TWb))


def winograd_workspace(n, C, H, W, K, OH, OW, dtype, m=2, k=3):
    """{name: (shape, dtype)}: what the backward reads from the forward (the transformed input V,
    where one chunk holds the call; otherwise nothing: the backward transforms it again)."""
    if len(winograd_chunks(n, C, H, W, K, OH, OW, np.dtype(dtype).itemsize, m, k)) > 1:
        return {}
    TH, TW = winograd_tiles(OH, OW, m)
    return {"V": (((m + k - 1) ** 2, n * TH * TW, C), dtype)}


def winograd_scratch(n, C, H, W, K, OH, OW, dtype, m=2, k=3, keeps=True):
    """{name: (shape, dtype)}: the transformed arrays each call writes before it reads them: V
    (where the workspace does not keep it) for its largest chunk; the products M and Mb, and the
    input gradient's transform Vb, for its largest block; where no backward `keeps` V (a net that
    only infers), V for a block too."""
    itemsize = np.dtype(dtype).itemsize
    chunks = winograd_chunks(n, C, H, W, K, OH, OW, itemsize, m, k)
    most, E = largest(chunks), (m + k - 1) ** 2
    T1, Tb1 = int(np.prod(winograd_tiles(OH, OW, m))), int(np.prod(winograd_tiles(H, W, m)))
    sizes = {b - a for a, b in chunks}
    blocks = [max(j - i for n_ in sizes for i, j in _blocks(0, n_, E * t * max(C, K) * itemsize, t, C, K)) * t
              for t in (T1, Tb1)]
    out = {"U": ((E, C, K), dtype), "M": ((E, blocks[0], K), dtype),
           "Ub": ((E, K, C), dtype), "Vb": ((E, blocks[1], K), dtype), "Mb": ((E, blocks[1], C), dtype),
           "wflip": ((C, K, k, k), dtype), "dU": ((E, C, K), dtype), "dU2": ((E, C, K), dtype),
           "no_bias": ((0,), dtype)}
    if not keeps:
        out["V"] = ((E, blocks[0], C), dtype)
    elif len(chunks) > 1:
        out["V"] = ((E, most * T1, C), dtype)
    return out


# The images of a chunk go through the input transform, the GEMMs and the output transform a
# block at a time, each block's transformed arrays within BLOCK_BYTES, so that the GEMMs read V
# and the output transform reads M while they are still in the core's cache: 32 images of 16
# channels at 32x32 (ResNet-20's first stage), one thread, AMD EPYC Zen 5, forward in 4.3 ms
# whole, 3.1 ms in blocks of 1 MB (0.25-2 MB: 3.0-3.3 ms, noisy); 64 channels at 56x56 with
# F(4x4), 8 images, 14.3 -> 11.8 ms.
BLOCK_BYTES = 2 ** 20
# But a block holds at least BLOCK_TILES tiles (its GEMMs' rows) where its arrays stay within
# MAX_BLOCK_BYTES: on small planes with many channels a block of 1 MB is one image or two, and
# GEMMs of 49 or 32 rows run far below a wide one. Forward, 8 images, one thread, Intel Xeon
# (model 207), best of 3, ms with blocks of 1 / 8 MB: ResNet-50's 256 ch 14x14 F(2x2) 8.96 /
# 6.82, F(4x4) 10.45 / 6.97; 512 ch 7x7 F(2x2) 16.3 / 13.0; 128 ch 28x28 F(4x4) 5.32 / 5.01;
# but not where the GEMMs are narrow, whose blocks stay in cache (64 ch 56x56 F(4x4), 196 tiles
# an image: 5.46 / 6.26): the floor holds from BLOCK_CHANNELS channels in and out on. The blocks
# of a chunk are of equal size (but for one image), so that no block is left with a few images.
BLOCK_TILES, BLOCK_CHANNELS, MAX_BLOCK_BYTES = 384, 128, 8 * 2 ** 20


def _block(per_image, tiles, block_bytes=None):
    """Images per block: as many as keep a block's transformed arrays within BLOCK_BYTES (or
    block_bytes), or give it BLOCK_TILES tiles (`tiles` an image; 0: no floor) within
    MAX_BLOCK_BYTES; at least one."""
    fits = (BLOCK_BYTES if block_bytes is None else block_bytes) // per_image
    floor = min(-(-BLOCK_TILES // tiles), MAX_BLOCK_BYTES // per_image) if tiles else 0
    return max(1, fits, floor)


def _blocks(a, b, per_image, tiles, C, K):
    """((first, stop), ...): images a..b (`tiles` an image, C channels to K) in as few blocks of
    equal size (but for one image) as keep each within _block's images."""
    return _blocks_within(a, b, per_image, tiles if min(C, K) >= BLOCK_CHANNELS else 0, BLOCK_BYTES)


@lru_cache(maxsize=4096)
def _blocks_within(a, b, per_image, tiles, block_bytes):    # (each call's Python counts: once per shape)
    count = -(-(b - a) // _block(per_image, tiles, block_bytes))
    return tuple((a + (b - a) * i // count, a + (b - a) * (i + 1) // count) for i in range(count))


def winograd_tiles(OH, OW, m=2):
    """(TH, TW): m x m output tiles per image down and across."""
    return (OH + m - 1) // m, (OW + m - 1) // m


def _convolve(out, inp, weight, bias, U, V, M, PH, PW, chunks, m, after=None, tiled=None, after_tile=None,
              keep=True):
    """out = inp * weight + bias, chunk by chunk through V and M (U: the weights' transform);
    with one chunk and `keep`, V is left holding the input's transform; without `keep` (the input
    gradient: no one reads its V after) each block's transform goes to the start of V, which
    holds a block, and stays in cache for its GEMMs. after(i, j), where given, once
    images i..j of out are final (winograd_forward). tiled(fn, count), where given, runs
    fn(a, b) on fixed blocks of range(count) (conv2d.py, one image): the weight transform in
    blocks of input channels, the input and output transforms in blocks of rows of tiles, the
    GEMMs in blocks of tile positions e; after_tile(i, (0, K, p0, p1)), where given with
    tiled, instead of after: once the output positions p0..p1 of image i are."""
    TH, TW = winograd_tiles(out.shape[2], out.shape[3], m)
    E, C, K = U.shape
    team_gemm = _team_gemm(out, inp, weight, U, V, M, bias)
    if tiled is None and team_gemm:
        team = current_team()
        KG = filter_matrix(m, weight.shape[2], weight.dtype)    # (held here: the job has only its address)
        weights_job(team.record, team_gemm, weight, U, KG, False)
        run_job(team, bias)
    elif tiled is None:
        transform_weights(weight, U, m, 0, C)
    else:
        tiled(lambda i0, i1: transform_weights(weight, U, m, i0, i1), C)
    r = m + weight.shape[2] - 1
    for a, b in chunks:
        Vc = _first(V, (E, (b - a) * TH * TW, C)) if keep else V
        for i, j in _blocks(a, b, E * TH * TW * max(C, K) * out.itemsize, TH * TW, C, K):
            t0, t1 = (i - a) * TH * TW, (j - a) * TH * TW
            Mb = _first(M, (E, t1 - t0, K))
            if not keep:
                Vc, t0, t1 = _first(V, (E, t1 - t0, C)), 0, t1 - t0
            if tiled is None and team_gemm:                  # in tiles that a team may share
                team = current_team()
                conv_block(team.record, team_gemm, inp[i:j], Vc, t0, U, Mb, out[i:j], bias, PH, PW, TH, TW, m, r)
                run_job(team, bias)
            elif tiled is None:
                winograd_inputs(inp[i:j], Vc, t0, PH, PW, TH, TW, m, r, 0, TH)
                np.matmul(Vc[:, t0:t1], U, out=Mb)
                winograd_outputs(Mb, 0, out[i:j], bias, TH, TW, m, r, 0, TH)
            else:
                tiled(lambda h0, h1: winograd_inputs(inp[i:j], Vc, t0, PH, PW, TH, TW, m, r, h0, h1), TH)
                tiled(lambda e0, e1: np.matmul(Vc[e0:e1, t0:t1], U[e0:e1], out=Mb[e0:e1]), E)
                tiled(lambda h0, h1: _outputs_of_rows(Mb, out, i, j, bias, TH, TW, m, r, h0, h1, after_tile), TH)
            if after is not None and (tiled is None or after_tile is None):
                after(i, j)


def _team_gemm(*arrays):
    """The GEMM's address for a block's team job (winograd_team.py), 0 for np.matmul's path: where
    numpy's BLAS has one (ops/cpu/blas.py) and the arrays are contiguous (a choice that the thread
    count never changes)."""
    fn = gemm_address(arrays[0].dtype)
    if fn:
        for a in arrays:
            if not a.flags.c_contiguous:
                return 0
    return fn


def _outputs_of_rows(M, out, i, j, bias, TH, TW, m, r, h0, h1, after_tile):
    """winograd_outputs for the rows of tiles h0..h1 of images i..j (one image), then
    after_tile(i, (0, K, p0, p1)) on the output positions they wrote, where given."""
    winograd_outputs(M, 0, out[i:j], bias, TH, TW, m, r, h0, h1)
    K, OH, OW = out.shape[1:]
    if after_tile is not None and min(OH, m * h1) > m * h0:
        after_tile(i, (0, K, m * h0 * OW, min(OH, m * h1) * OW))


def _chunks_of(inp, out, m, k):
    if m not in TILES.get(k, ()):
        raise ValueError(f"Winograd F({m}x{m}, {k}x{k}) is not written out (TILES: {TILES})")
    n, C, H, W = inp.shape
    return winograd_chunks(n, C, H, W, out.shape[1], out.shape[2], out.shape[3], inp.itemsize, m, k)


def winograd_forward(out, inp, weight, bias, ws, PH, PW, m=2, after=None, tiled=None, after_tile=None,
                     keeps=True):
    """out = inp * weight (k x k, stride 1, padding PH x PW) + bias (None: none) by F(m x m, k x k);
    with one chunk the transformed input stays in ws["V"] for the backward, unless no backward
    `keeps` it (ws from winograd_scratch(keeps=False): V holds a block, in cache). after(i, j), where
    given, runs once images i..j of out are final (a block of them: still in cache); tiled and
    after_tile: as _convolve's."""
    _convolve(out, inp, weight, ws["no_bias"] if bias is None else bias, ws["U"], ws["V"], ws["M"], PH, PW,
              _chunks_of(inp, out, m, weight.shape[2]), m, after, tiled, after_tile, keeps)


def winograd_backward(dinp, dweight, dbias, dout, inp, weight, ws, PH, PW, fresh, m=2):
    """From dout, the input and ws of winograd_forward: dinp (None: skipped) = the input
    gradient; dweight, dbias (None: skipped) += the gradients (cleared first when `fresh`).
    The weight gradient's transform dU sums the chunks in order (each chunk's GEMM, then added)."""
    n, K, k = dout.shape[0], dout.shape[1], weight.shape[2]
    chunks = _chunks_of(inp, dout, m, k)
    r = m + k - 1
    E = r * r
    TH, TW = winograd_tiles(dout.shape[2], dout.shape[3], m)
    for target in (dbias, dweight) if fresh else ():
        if target is not None:
            target[...] = 0.0
    if dbias is not None:
        sum_bias(dout.reshape(n, K, -1), dbias)
    if dweight is not None:
        dU, C = ws["dU"], inp.shape[1]
        team_gemm = _team_gemm(dout, inp, ws["M"], ws["V"], dU, ws["dU2"], dweight)
        parts = 0
        for a, b in chunks:
            if len(chunks) == 1:
                V = ws["V"]
                if V.shape[1] < n * TH * TW:
                    raise ValueError("this workspace kept no transformed input (a forward that keeps nothing)")
            else:
                V = _first(ws["V"], (E, (b - a) * TH * TW, C))
                winograd_inputs(inp[a:b], V, 0, PH, PW, TH, TW, m, r, 0, TH)
            for i, j in _blocks(a, b, E * TH * TW * max(C, K) * dout.itemsize, TH * TW, C, K):
                t0, t1 = (i - a) * TH * TW, (j - a) * TH * TW
                Y = _first(ws["M"], (E, t1 - t0, K))        # the forward's products are spent: dY's transform
                if team_gemm:
                    team = current_team()
                    weight_grad_block(team.record, team_gemm, dout[i:j], Y, V, t0, dU, ws["dU2"], parts == 0,
                                      TH, TW, m, r)
                    run_job(team, ws["no_bias"])
                else:
                    winograd_output_grads(dout[i:j], Y, 0, TH, TW, m, r)
                    np.matmul(V[:, t0:t1].transpose(0, 2, 1), Y, out=dU if parts == 0 else ws["dU2"])
                    if parts:
                        dU += ws["dU2"]
                parts += 1
        if team_gemm:
            team = current_team()
            KG = filter_matrix(m, k, dweight.dtype)      # (held here: the job has only its address)
            weights_job(team.record, team_gemm, dweight, dU, KG, True)
            run_job(team, ws["no_bias"])
        else:
            transform_weights(dweight, dU, m, 0, C, adjoint=True)
    if dinp is not None:
        np.copyto(ws["wflip"], weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
        _convolve(dinp, dout, ws["wflip"], ws["no_bias"], ws["Ub"], ws["Vb"], ws["Mb"], k - 1 - PH, k - 1 - PW,
                  chunks, m, keep=False)

