"""2-D convolution, forward and backward: the kernel boundary of the Convolution layer (a second
backend replaces these functions). Arrays are NCHW; geometry is given in full:
kernel KH x KW, stride SH x SW, padding PH x PW, dilation DH x DW, `group` channel groups.

Eleven algorithms, one per layer, picked from its shape by `conv2d_algorithm` (conv2d_rule.py):
- "depthwise": group == channels == num_output, direct loops (netcli/ops/cpu/depthwise.py);
  "depthwise-nhwc" the same on small planes, channels last (depthwise_nhwc.py).
- "1x1": a 1x1 kernel, stride 1, no padding: the input is its own patch matrix, so the
  per-image GEMMs read it (and the input gradient's write it) directly.
- "1x1-nhwc": the same kernels on small images: the channels-last copy of the input is the
  patch matrix of one GEMM per call (im2row without its patch copy).
- "1x1-strided": a 1x1 kernel with a stride (ResNet's projections): "1x1" on a copy of the
  pixels it reads (every SH-th row, SW-th column), its input gradient put back in their places.
- "winograd": 3x3 stride 1, F(2x2, 3x3): 16 GEMMs on transformed tiles, 2.25x fewer
  multiplications (netcli/ops/cpu/winograd.py); "winograd4" F(4x4, 3x3): 36 GEMMs, 4x fewer, and
  for 5x5 F(4x4, 5x5): 64 GEMMs, 6.25x fewer (the transforms, channels last, in
  winograd_transforms.py).
- "planes": for first layers (few input channels), each output plane from the input planes
  shifted by each tap, in vectors of positions along its rows (netcli/ops/cpu/planes.py).
- "direct": each output a sum over taps and input channels, in vector blocks held in registers,
  image by image on channels-last copies (netcli/ops/cpu/direct.py); for kernels with a stride
  and 3x3 kernels on few channels.
- "im2row": channels-last images and one GEMM per call, rows (n*OH*OW, KH*KW*C); for many
  channels (patch layouts in netcli/ops/cpu/im2col.py). A forward that keeps nothing, on small
  planes with many weights, takes the patches as columns of all its images instead
  (`_columns_forward`): one GEMM on the weights as they are.
- "im2col": one column block per image, per-image GEMMs writing NCHW directly; for few channels
  (and groups).
Arrays come from the caller in one dict: `conv2d_workspace`'s for the n images of one call (the
forward's patches, which stay there for the backward) and `conv2d_scratch`'s (written before
read within one call, so one set can serve every layer a thread runs). "im2row" and "im2col" go
through a call's images in chunks (`patch_chunks`, ops/cpu/chunks.py) where the patches of the
whole call would be large (CaffeNet's conv2: 213 MB for 32 images); the patches are then
scratch, and the backward makes them again, chunk by chunk, as Caffe's does for every layer.
"""
from __future__ import annotations

import numpy as np

from . import im2col
from .chunks import first, largest, patch_chunks
from .conv1x1 import backward_1x1, gathered_weight_gradient, pixels_read
from ...exec import threads
from .depthwise_passes import depthwise_backward, depthwise_forward, depthwise_nhwc_backward, depthwise_nhwc_forward
from .conv2d_rule import DEPTHWISE_ALGORITHMS, WINOGRAD_TILE
from .image_gemms import gemm_columns, image_gemms
from .direct import BLOCK_POSITIONS, direct_scratch
from .direct_passes import direct_backward, direct_forward
from .planes import planes_backward, planes_forward, planes_scratch
from .depthwise_nhwc import depthwise_nhwc_scratch, depthwise_nhwc_workspace
from .winograd import winograd_backward, winograd_forward, winograd_scratch, winograd_workspace


def conv2d_workspace(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype):
    """{name: (shape, dtype)} of what one call on n images keeps from the forward to the
    backward (its patches); the scratch used inside one call only is `conv2d_scratch`'s."""
    if len(patch_chunks(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, np.dtype(dtype).itemsize)) > 1:
        return {}                                # patches made again in the backward: scratch
    return _workspace(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype)


def conv2d_scratch(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype, keeps=True):
    """{name: (shape, dtype)} of the scratch one call on n images writes before it reads it (its
    contents mean nothing between calls: the executor shares it between layers); in chunks,
    the arrays of the largest chunk, its patches and a weight gradient summed over chunks.
    keeps=False: no backward reads what the forward keeps, so conv2d_workspace's arrays are
    scratch too (warm in cache: one set serves every layer), "depthwise-nhwc" pads one image at
    a time (MobileNet at batch 100, one thread: 156-161 -> 144-146 ms a forward), and the
    patches go in chunks of FORWARD_BYTES (ops/cpu/chunks.py)."""
    if algorithm in WINOGRAD_TILE:
        return winograd_scratch(n, C, H, W, K, OH, OW, dtype, WINOGRAD_TILE[algorithm], KH, keeps)
    if algorithm == "direct":
        return direct_scratch(n, C, H, W, K, KH, KW, OH, OW, dtype, keeps)
    if algorithm == "planes":
        return planes_scratch(n, C, H, W, K, KH, KW, OH, OW, dtype, keeps)
    chunks = patch_chunks(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, np.dtype(dtype).itemsize, keeps)
    if len(chunks) == 1:
        kept = {} if keeps else _workspace(1 if algorithm == "depthwise-nhwc" else n, C, H, W, K, KH, KW, OH, OW,
                                           group, algorithm, dtype)
        return {**_scratch(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype), **kept}
    m = largest(chunks)
    return {**_scratch(m, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype),
            **_workspace(m, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype),
            **({"dwsum": ((K, C // group * KH * KW), dtype)} if keeps else {})}


def _workspace(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype):
    P, CKK = OH * OW, C // group * KH * KW
    if algorithm in WINOGRAD_TILE:
        return winograd_workspace(n, C, H, W, K, OH, OW, dtype, WINOGRAD_TILE[algorithm], KH)
    if algorithm == "depthwise-nhwc":
        return depthwise_nhwc_workspace(n, C, H, W, KH, KW, dtype)
    if algorithm == "1x1-nhwc":                  # the channels-last input is the backward's patch matrix
        return {"xt": ((n, H, W, C), dtype)}
    if algorithm == "im2row":
        return {"cols": ((n * P, CKK), dtype)}
    if algorithm == "im2col":
        return {"cols": ((n, group * CKK, P), dtype)}
    return {}


def _scratch(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype):
    P, CKK = OH * OW, C // group * KH * KW
    if algorithm == "1x1-strided":           # xs: the pixels read; dxs: their gradient
        return {**_scratch(n, C, OH, OW, K, 1, 1, OH, OW, group, "1x1", dtype),
                "xs": ((n, C, OH, OW), dtype), "dxs": ((n, C, OH, OW), dtype)}
    if algorithm == "depthwise":
        return {"no_bias": ((0,), dtype)}
    if algorithm == "depthwise-nhwc":
        return depthwise_nhwc_scratch(n, C, H, W, KH, KW, OH, OW, dtype)
    if algorithm in WINOGRAD_TILE:
        return winograd_scratch(n, C, H, W, K, OH, OW, dtype, WINOGRAD_TILE[algorithm], KH)
    if algorithm == "1x1" and gathered_weight_gradient(C, K, P, group):
        return {"dres": ((K, n * P), dtype), "xg": ((C, n * P), dtype), "dw": ((K, CKK), dtype),
                "no_bias": ((0,), dtype)}
    if algorithm == "1x1":
        return {"dw": ((n, K, CKK), dtype)}
    if algorithm == "1x1-nhwc":
        return {"dcols": ((n * P, C), dtype), "res": ((n * P, K), dtype),
                "wr": ((K, 1, 1, C), dtype), "dw": ((K, C), dtype), "no_bias": ((0,), dtype)}
    if algorithm == "im2row":       # xt: the forward's channels-last input, the backward's row2im target
        return {"xt": ((n, H, W, C), dtype), "dcols": ((n * P, CKK), dtype), "res": ((n * P, K), dtype),
                "wr": ((K, KH, KW, C), dtype), "dw": ((K, CKK), dtype), "no_bias": ((0,), dtype)}
    return {"dcols": ((n, group * CKK, P), dtype), "dw": ((n, K, CKK), dtype), "no_bias": ((0,), dtype)}


# A call on one image (batch-1 inference) splits a GEMM of at least TILED_MACS multiply-adds into
# ONE_IMAGE_TILES fixed blocks of output rows (of output positions where there are more of those:
# SqueezeNet's conv1, 64 rows of 12,321 positions, one thread: 0.42 ms in row blocks, 0.36 in
# position blocks, 0.35 untiled), which idle threads take (exec/threads.py, tiles). The rows
# layout (im2row, 1x1-nhwc) cuts its (positions x channels) product the same way: in blocks of
# output channels where they outnumber the positions, each block's GEMM writing the NCHW output
# itself (ResNet-50's 3x3 conv on 512 channels of 7x7, 49 positions, one thread, all four tiles
# together: 7.0 ms as blocks of positions, each packing every weight, against 3.4 ms as blocks of
# channels and 3.4 untiled; 1x1 512 -> 2048 at 7x7: 3.1 against 1.2):
# the same bits whoever runs them. Smaller GEMMs cost less than handing them over (SqueezeNet 1.1
# at batch 1, 2 cores: 10.0 ms untiled, 11.6 ms with every GEMM tiled).
ONE_IMAGE_TILES = 4
TILED_MACS = 2 ** 24


def _tiles(n, rows, macs):
    """Whether a GEMM of `rows` output rows and `macs` multiply-adds on n images goes in tiles."""
    return n == 1 and rows >= 4 * ONE_IMAGE_TILES and macs >= TILED_MACS


# One image's im2col patches go in tiles of input channels too (before its GEMM's tiles) where
# copying them takes 0.2 ms or more: PATCH_ROWS rows or PATCH_FLOATS numbers (one thread, AMD
# EPYC Zen 4, 3x3 pad 1: ResNet-50's 128 ch 28x28 230 us, 256 ch 14x14 239, 512 ch 7x7 226, 64
# ch 56x56 321; but SqueezeNet 1.1's 16 ch 55x55 83 us, 32 ch 27x27 54, 64 ch 13x13 53, where a
# second hand-over cost more than it saved: 9.55-9.77 -> 9.60-10.15 ms a forward on 2 threads.
# ResNet-50 at batch 1: 58.2-59.7 -> 56.4-56.7 ms).
PATCH_ROWS, PATCH_FLOATS = 1024, 1 << 20


def _long_patches(cols):
    """Whether one image's patch matrix (C*KH*KW, OH*OW) is worth copying in tiles."""
    return cols.shape[0] >= PATCH_ROWS or cols.size >= PATCH_FLOATS


def _tiled(gemm, rows):
    """gemm(r0, r1) for ONE_IMAGE_TILES blocks of `rows` rows (exec/threads.py tiles)."""
    threads.block_tiles(gemm, rows, ONE_IMAGE_TILES)


# An "im2row" forward that keeps nothing for a backward (a net that only infers), on several
# images of planes under COLUMNS_PIXELS output pixels with COLUMNS_WEIGHTS weights or more, makes
# its patches as columns of all the images (im2col's layout, from the NCHW input) for one GEMM
# that reads the weights in their own order: the rows layout reorders them for every call (9.4 MB
# for ResNet-50's 3x3 on 512 channels, 0.9 ms on one thread alone, about 2 ms with both threads
# at it), for a GEMM of no more columns. One thread, Intel Xeon (model 207), best of 5, rows ->
# columns: ResNet-50's 3x3 on 512 channels of 7x7, 4 images (a share of batch 8 on 2 threads)
# 6.40 -> 5.35 ms, 8 images 11.11 -> 10.16 ms; 256 -> 512 channels, 4 images, 3.22 -> 2.71 ms.
# ResNet-50 at batch 8, 2 threads: 39.7 -> 40.8 img/s.
COLUMNS_PIXELS, COLUMNS_WEIGHTS = 64, 2 ** 20


def _columns_forward(n, P, weight, keeps):
    """Whether an "im2row" forward of n images, P output pixels each, goes through columns."""
    return not keeps and n > 1 and P < COLUMNS_PIXELS and weight.size >= COLUMNS_WEIGHTS


def _rows_weights(weight, wr):
    """The weights as (K, KH*KW*C), the rows layout's column order: a copy in wr, or the weights
    themselves where a 1x1 kernel's order is theirs (MobileNet at batch 100, inference, 2 threads:
    a copy of 1-4 MB per 512- and 1024-channel layer and share, about 2% of its time)."""
    if weight.shape[2] == weight.shape[3] == 1 and weight.flags.c_contiguous:
        return weight.reshape(weight.shape[0], -1)
    np.copyto(wr, weight.transpose(0, 2, 3, 1))
    return wr.reshape(weight.shape[0], -1)


def conv2d_forward(out, inp, weight, bias, ws, KH, KW, SH, SW, PH, PW, DH, DW, group, algorithm, after=None,
                   after_tile=None, keeps=True):
    """out (n, K, OH, OW) = inp (n, C, H, W) * weight (K, C/group, KH, KW) + bias (K,), or no
    bias when bias is None. after(a, b), where given, runs as soon as images a..b of out are
    final, while they are still in cache (exec/cpu.py: a BatchNorm + Scale + ReLU chain with
    global statistics over the convolution's output). after_tile(a, (k0, k1, p0, p1)), where
    given, may run instead, on each tile of one image's GEMM (output channels k0..k1 at
    positions p0..p1), on the thread that computed it: no group, no bias. keeps=False: no backward
    reads the patches (ws is conv2d_scratch's with keeps=False), which go in smaller chunks."""
    n, K, OH, OW = out.shape
    geometry = (KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    after = after or _nothing
    tile = after_tile if bias is None and group == 1 else None
    if algorithm == "depthwise":
        depthwise_forward(out, inp, weight, ws["no_bias"] if bias is None else bias, *geometry[:8], after)
        return
    if algorithm == "depthwise-nhwc":
        depthwise_nhwc_forward(out, inp, weight, ws["no_bias"] if bias is None else bias, ws["xp"], ws["yt"],
                               ws["wt"], *geometry[:8], after)
        return
    if algorithm == "planes":
        planes_forward(out, inp, weight, bias, ws, PH, PW, after)
        return
    if algorithm == "direct":           # one image: in tiles of positions
        P = OH * OW
        tiled = _tiled if _tiles(n, P, P * K * weight[0].size) and P >= ONE_IMAGE_TILES * BLOCK_POSITIONS else None
        direct_forward(out, inp, weight, bias, ws, SH, SW, PH, PW, after, tiled)
        return
    if algorithm in WINOGRAD_TILE:          # one image: its weight transform and GEMMs in tiles
        E = (WINOGRAD_TILE[algorithm] + KH - 1) ** 2
        tiled = _tiled if _tiles(n, E, E * ws["M"].shape[1] * weight.shape[0] * weight.shape[1]) else None
        winograd_forward(out, inp, weight, bias, ws, PH, PW, WINOGRAD_TILE[algorithm], after, tiled, tile, keeps)
        return
    if algorithm == "1x1-strided":
        inp, algorithm = pixels_read(inp, ws["xs"], SH, SW), "1x1"
    chunks = ((0, n),) if n == 1 else _chunks(inp, out, weight, group, algorithm, keeps)
    if algorithm == "im2row" and _columns_forward(n, OH * OW, weight, keeps):
        K2, P = weight.reshape(K, -1), OH * OW
        for a, b in chunks:
            m = b - a
            cols, res = first(ws["cols"], (K2.shape[1], m * P)), first(ws["res"], (K, m * P))
            im2col.im2col(inp[a:b], cols, *geometry)
            gemm_columns(K2, cols, res)
            np.copyto(out[a:b].reshape(m, K, P), res.reshape(K, m, P).transpose(1, 0, 2))
            if bias is not None:
                im2col.add_bias(out[a:b].reshape(m, K, P), bias)
            after(a, b)
        return
    if algorithm in ("im2row", "1x1-nhwc"):
        P = OH * OW             # one image, fewer positions than output channels: tiles of channels
        by_channels = _tiles(n, K, P * K * weight[0].size) and P < K
        wr = None if by_channels else _rows_weights(weight, ws["wr"])
        for a, b in chunks:
            xt, cols, res = _row_arrays(ws, b - a, P, algorithm)
            im2col.nchw_to_nhwc(inp if b - a == n else inp[a:b], xt)
            y4, add = out if b - a == n else out[a:b], ws["no_bias"] if bias is None else bias
            if not by_channels and _tiles(b - a, res.shape[0], res.size * cols.shape[1]):
                def positions(r0, r1):       # one image: each tile of positions makes its own rows
                    if algorithm == "im2row":
                        im2col.im2row(xt, cols[r0:r1], *geometry, r0)
                    np.dot(cols[r0:r1], wr.T, out=res[r0:r1])
                    im2col.rows_to_nchw(res[r0:r1], add, y4, r0)
                    if tile is not None:
                        tile(a, (0, K, r0, r1))
                _tiled(positions, res.shape[0])
                if tile is None:
                    after(a, b)
                continue
            if algorithm == "im2row":
                im2col.im2row(xt, cols, *geometry, 0)
            if by_channels:          # each tile reorders its own weights (in parallel, then in cache)
                y = out.reshape(K, -1)

                def channels(k0, k1):
                    np.dot(_rows_weights(weight[k0:k1], ws["wr"][k0:k1]), cols.T, out=y[k0:k1])
                    if tile is not None:
                        tile(a, (k0, k1, 0, P))
                _tiled(channels, K)
                if bias is not None:
                    im2col.add_bias(y[None], bias)
                if tile is None:
                    after(a, b)
                continue
            gemm_columns(cols, wr.T, res)
            im2col.rows_to_nchw(res, add, y4, 0)
            after(a, b)
        return
    w = weight.reshape(K, -1)
    kg, ck, P = K // group, w.shape[1], OH * OW
    y3 = out.reshape(n, K, -1)
    for a, b in chunks:
        x, y = (inp, y3) if b - a == n else (inp[a:b], y3[a:b])
        if algorithm == "1x1":
            cols = x.reshape(b - a, -1, OH * OW)
        else:
            cols = first(ws["cols"], (b - a, group * ck, OH * OW))
            C, kk = x.shape[1], KH * KW
            if _tiles(b - a, C, K * cols[0].size) and _long_patches(cols[0]):   # in tiles of channels too
                _tiled(lambda c0, c1: im2col.im2col(x[:, c0:c1], cols[0, c0 * kk:c1 * kk], *geometry), C)
            else:
                im2col.im2col_images(x, cols, *geometry)
        groups = ((w, cols, y),) if group == 1 else \
            [(w[g * kg:(g + 1) * kg], cols[:, g * ck:(g + 1) * ck], y[:, g * kg:(g + 1) * kg]) for g in range(group)]
        tiled = False
        for wg, xg, yg in groups:
            wide = P > kg                   # more positions than rows: tiles are blocks of positions
            if not _tiles(b - a, P if wide else kg, yg.size * wg.shape[1]):
                image_gemms(wg, xg, yg)
                continue
            tiled = True

            def block(k0, k1, p0, p1):
                np.matmul(wg[k0:k1], xg[:, :, p0:p1], out=yg[:, k0:k1, p0:p1])
                if tile is not None:
                    tile(a, (k0, k1, p0, p1))
            if wide:
                _tiled(lambda p0, p1: block(0, kg, p0, p1), P)
            else:
                _tiled(lambda k0, k1: block(k0, k1, 0, P), kg)
        if bias is not None:
            im2col.add_bias(y, bias)
        if not tiled or tile is None:
            after(a, b)


def _nothing(a, b):
    """conv2d_forward's `after` where the caller gives none."""


def conv2d_backward(dinp, dweight, dbias, dout, inp, weight, ws, KH, KW, SH, SW, PH, PW, DH, DW, group,
                    algorithm, fresh):
    """From dout (n, K, OH, OW), the input inp (n, C, H, W) and the patches conv2d_forward left
    in ws: dinp (n, C, H, W) (skipped when None) = the input gradient, written; dweight
    (K, C/group, KH, KW) and dbias (K,) += this call's gradients, or = when `fresh` (they hold
    zeros); either may be None (no bias, or a frozen param: not computed). The input gradient
    uses the current weights, as Caffe's."""
    n, K, OH, OW = dout.shape
    geometry = (KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    if algorithm in DEPTHWISE_ALGORITHMS:      # the kernels add: `fresh` targets are cleared first
        for target in (dbias, dweight) if fresh else ():
            if target is not None:
                target[...] = 0.0
        if dbias is not None:
            im2col.sum_bias(dout.reshape(n, K, -1), dbias)
        if algorithm == "depthwise":
            depthwise_backward(dinp, dweight, dout, inp, weight, *geometry[:8])
        elif dinp is not None or dweight is not None:
            depthwise_nhwc_backward(dinp, dweight, dout, weight, ws["xp"], ws["yt"], ws["dxp"], ws["wt"], ws["part"],
                                    inp.shape[2], inp.shape[3], *geometry[:8])
        return
    if algorithm == "direct":
        direct_backward(dinp, dweight, dbias, dout, inp, weight, ws, SH, SW, PH, PW, fresh)
        return
    if algorithm == "planes":
        planes_backward(dinp, dweight, dbias, dout, inp, weight, ws, PH, PW, fresh)
        return
    if algorithm in WINOGRAD_TILE:
        winograd_backward(dinp, dweight, dbias, dout, inp, weight, ws, PH, PW, fresh, WINOGRAD_TILE[algorithm])
        return
    if algorithm == "1x1":
        backward_1x1(dinp, dweight, dbias, dout, inp, weight, ws, group, fresh)
        return
    if algorithm == "1x1-strided":      # the pixels read, again; the input gradient zero elsewhere
        xs, dxs = pixels_read(inp, ws["xs"], SH, SW), None if dinp is None else ws["dxs"]
        backward_1x1(dxs, dweight, dbias, dout, xs, weight, ws, group, fresh)
        if dinp is not None:
            dinp[...] = 0.0
            dinp[:, :, ::SH, ::SW] = dxs
        return
    chunks = _chunks(inp, dout, weight, group, algorithm)
    again = len(chunks) > 1              # the patches are scratch: made again, chunk by chunk
    P = OH * OW
    if algorithm in ("im2row", "1x1-nhwc"):
        db = ws["no_bias"] if dbias is None else dbias
        wr = _rows_weights(weight, ws["wr"]) if dinp is not None else None
        for k, (a, b) in enumerate(chunks):
            xt, cols, res = _row_arrays(ws, b - a, P, algorithm)
            if again:
                im2col.nchw_to_nhwc(inp[a:b], xt)
                im2col.im2row(xt, cols, *geometry, 0)
            dres = res.reshape(K, -1)                # the forward's buffer, as (K, n*P)
            im2col.nchw_to_gemm(dout[a:b], dres, db)       # dout as (K, n*P), and the bias gradient
            if dweight is not None:                   # weight gradient, columns (i, j, c)
                gemm_columns(dres, cols, ws["dw"])
                if again:
                    if k == 0:
                        np.copyto(ws["dwsum"], ws["dw"])
                    else:
                        ws["dwsum"] += ws["dw"]
            if dinp is not None:                      # the patches' gradient, put back in place
                dcols = first(ws["dcols"], (res.shape[0], cols.shape[1]))
                gemm_columns(dres.T, wr, dcols)
                if algorithm == "im2row":
                    im2col.row2im(dcols, xt, *geometry)
                    im2col.nhwc_to_nchw(xt, dinp[a:b])
                else:
                    im2col.nhwc_to_nchw(dcols.reshape(xt.shape), dinp[a:b])
        if dweight is not None:
            dw4 = ws["dwsum" if again else "dw"].reshape(K, KH, KW, -1).transpose(0, 3, 1, 2)
            if fresh:
                np.copyto(dweight, dw4)
            else:
                dweight += dw4
        return
    w = weight.reshape(K, -1)
    kg, ck = K // group, w.shape[1]
    dy3 = dout.reshape(n, K, -1)
    if dbias is not None:
        im2col.sum_bias(dy3, dbias)
    for k, (a, b) in enumerate(chunks):
        cols = first(ws["cols"], (b - a, group * ck, P))
        if again:
            im2col.im2col_images(inp[a:b], cols, *geometry)
        if dweight is not None:
            dw = first(ws["dw"], (b - a, K, ck))
            for g in range(group):      # per image: dy[n] (kg, P) @ cols[n].T (P, ck)
                image_gemms(dy3[a:b, g * kg:(g + 1) * kg], cols[:, g * ck:(g + 1) * ck].transpose(0, 2, 1),
                            dw[:, g * kg:(g + 1) * kg])
            if again:                   # the chunks' sums, added in order
                if k == 0:
                    np.sum(dw, axis=0, out=ws["dwsum"])
                else:
                    ws["dwsum"] += dw.sum(axis=0)
            elif fresh:
                np.sum(dw, axis=0, out=dweight.reshape(K, ck))
            else:
                dweight.reshape(K, ck)[...] += dw.sum(axis=0)
        if dinp is not None:
            dcols = first(ws["dcols"], (b - a, group * ck, P))
            for g in range(group):
                image_gemms(w[g * kg:(g + 1) * kg].T, dy3[a:b, g * kg:(g + 1) * kg], dcols[:, g * ck:(g + 1) * ck])
            im2col.col2im_images(dcols, dinp[a:b], *geometry)
    if again and dweight is not None:
        if fresh:
            np.copyto(dweight.reshape(K, ck), ws["dwsum"])
        else:
            dweight.reshape(K, ck)[...] += ws["dwsum"]


def _chunks(inp, out, weight, group, algorithm, keeps=True):
    n, C, H, W = inp.shape
    if n == 1 or algorithm not in ("im2row", "im2col"):
        return ((0, n),)
    K, _, KH, KW = weight.shape
    return patch_chunks(n, C, H, W, K, KH, KW, out.shape[2], out.shape[3], group, algorithm, inp.itemsize, keeps)


def _row_arrays(ws, m, P, algorithm):
    """(xt, cols, res) of a chunk of m images in the rows layout ("1x1-nhwc": xt is cols)."""
    xt = ws["xt"]
    if m == xt.shape[0]:                 # the largest chunk: the arrays themselves
        return xt, ws["cols"] if algorithm == "im2row" else xt.reshape(-1, xt.shape[3]), ws["res"]
    xt = first(xt, (m,) + xt.shape[1:])
    cols = first(ws["cols"], (m * P, ws["cols"].shape[1])) if algorithm == "im2row" else xt.reshape(-1, xt.shape[3])
    return xt, cols, first(ws["res"], (m * P, ws["res"].shape[1]))
