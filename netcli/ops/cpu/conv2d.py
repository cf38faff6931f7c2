"""2-D convolution, forward and backward: the kernel boundary of the Convolution layer (a second
backend replaces these functions). Arrays are NCHW; geometry is given in full:
kernel KH x KW, stride SH x SW, padding PH x PW, dilation DH x DW, `group` channel groups.

Nine algorithms, one per layer, picked from its shape by `conv2d_algorithm`:
- "depthwise": group == channels == num_output, direct loops (netcli/ops/cpu/depthwise.py);
  "depthwise-nhwc" the same on small planes, channels last (depthwise_nhwc.py).
- "1x1": a 1x1 kernel, stride 1, no padding: the input is its own patch matrix, so the
  per-image GEMMs read it (and the input gradient's write it) directly.
- "1x1-nhwc": the same kernels on small images: the channels-last copy of the input is the
  patch matrix of one GEMM per call (im2row without its patch copy).
- "1x1-strided": a 1x1 kernel with a stride (ResNet's projections): "1x1" on a copy of the
  pixels it reads (every SH-th row, SW-th column), its input gradient put back in their places.
- "winograd": 3x3 stride 1, F(2x2, 3x3): 16 GEMMs on transformed tiles, 2.25x fewer
  multiplications (netcli/ops/cpu/winograd.py); "winograd4" F(4x4, 3x3): 36 GEMMs, 4x fewer
  (transforms in winograd4.py).
- "im2row": channels-last images and one GEMM per call, rows (n*OH*OW, KH*KW*C); for many
  channels (patch layouts in netcli/ops/cpu/im2col.py).
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
from .chunks import first, image_chunks, largest
from ...exec import threads
from .depthwise import depthwise_backward_data, depthwise_backward_weight, depthwise_forward
from .depthwise_nhwc import (depthwise_nhwc_backward_data, depthwise_nhwc_backward_weight, depthwise_nhwc_fits,
                             depthwise_nhwc_forward, depthwise_nhwc_scratch, depthwise_nhwc_workspace)
from .winograd import winograd_backward, winograd_fits, winograd_forward, winograd_scratch, winograd_workspace

ALGORITHMS = ("depthwise", "depthwise-nhwc", "1x1", "1x1-nhwc", "1x1-strided", "winograd", "winograd4", "im2row", "im2col")
WINOGRAD_TILE = {"winograd": 2, "winograd4": 4}      # algorithm: m of F(m x m, 3x3)
STRIDED_1X1_PIXELS = 49       # "1x1-strided" from this many output pixels on (conv2d_algorithm)


def conv2d_algorithm(C, H, W, K, KH, KW, SH, SW, PH, PW, DH, DW, group, images=None):
    """The algorithm for a layer of this shape: a fixed rule (never a timing at run time, so the
    results are the same on every run). The measurements behind it: bench/conv_algorithms.py,
    speedups over the GEMM path as forward / backward, ranges over 3-4 runs (AMD EPYC Zen 3, one
    thread, shares of 32 images, best of 3-7 rounds; noisy: a shared 2-core machine under load).
    - depthwise whenever group == C == K: a direct kernel instead of one 1 x KH*KW GEMM per
      channel and image; 3x3 pad 1: 32 ch 32x32 4.1-5.3x / 3.3-5.6x, 128 ch 16x16 3.1-4.9x /
      3.9-4.7x, 256 ch 8x8 2.4-4.5x / 2.4-3.2x, 512 ch 4x4 1.4-3.4x / 1.2-1.8x; 64 ch 32x32
      stride 2 2.0x / 1.9-2.1x. "depthwise-nhwc" (the same sums, channels last) where the output
      plane has at most 64 positions, against "depthwise" (32 images, one thread, AMD EPYC Zen 5,
      best of 3, shared machine; forward / backward): 1024 ch 2x2 11x / 19x, 512 ch 4x4 4.7x /
      6.7x, 512 ch 8x8 stride 2 4.4x / 3.6x, 256 ch 8x8 1.4x / 2.3x, 256 ch 16x16 stride 2 1.4x /
      2.3x; from 16x16 outputs on it is slower (128 ch 16x16 0.5x / 0.9x, 64 ch 32x32 0.3x / 0.6x).
    - a 1x1 kernel with stride 1 and no padding (any dilation is the same kernel) needs no patch
      copy: "1x1" (GEMMs per image on the NCHW input) from 64 pixels per image on (32->64 at
      32x32: 2.7-3.0x / 1.4-1.8x; 64->128 and 128->128 at 16x16: 1.9-2.5x / 1.1-1.3x;
      256->256 at 8x8: 1.8x / 1.1-1.5x), "1x1-nhwc" (one GEMM on a channels-last copy) below
      that, where per-image GEMMs of 16 or 4 columns run at 0.3-0.7x of im2row (1x1-nhwc:
      0.8-1.3x / 0.9-1.2x, about im2row less its patch copy).
    - a 1x1 kernel with a stride and no padding: "1x1-strided" (copy the pixels read, then
      "1x1") from STRIDED_1X1_PIXELS output pixels per image on, against im2row, stride 2, one
      thread, AMD EPYC Zen 5, best of 3, 16 images (1 image) per call, forward / backward:
      ResNet-20's 16->32 at 32x32 3.2x / 1.6x (2.3x / 1.1x), 32->64 at 16x16 1.7x / 1.0x (1.4x /
      0.85x: microseconds); ResNet-50's 256->512 and 256->128 at 56x56 2.9x / 1.3x and 5.8x /
      1.9x, 512->1024 at 28x28 2.2x / 1.1x, 1024->2048 and 1024->512 at 14x14 (49 outputs)
      1.6x / 0.96x and 3.3x / 1.2x (1 image: 2.3x / 1.1x, 3.7x / 1.3x). On 16 outputs or fewer it
      loses: 64->128 at 8x8 1.2x / 0.87x, 512->1024 at 4x4 0.40x / 0.46x.
    - winograd (F(2x2, 3x3), netcli/ops/cpu/winograd.py) for 3x3 stride-1 kernels without
      dilation or groups, padding <= 2, from 16 input channels and 8x8 outputs on, where it
      measured faster than im2row: 16 ch 32x32 1.2-1.7x / 1.1-1.5x, 32 ch 16x16 1.05-1.8x /
      0.9-1.1x, 64 ch 8x8 0.9-1.6x / 1.0-1.1x, 64 ch 32x32 1.8-2.1x / 1.5x, 128 ch 16x16
      1.7-1.8x / 1.7-1.8x, 256 ch 8x8 1.1x / 1.3x; not on 3 input channels (0.4-0.6x /
      0.2-0.3x: its GEMMs have 3 rows) and not measured on outputs under 8x8. Its 16 GEMMs have
      one column per 2x2 output tile of every image of a call: with few images they are too
      narrow (one image, best of 5, AMD EPYC Zen 5: 16 ch 32x32 1.06x / 0.98x, 64 ch 32x32
      1.28x / 1.26x, 32 ch 16x16 0.73x / 0.77x, 128 ch 16x16 0.88x / 0.91x, 64 and 256 ch
      8x8 0.34-0.36x / 0.40x; ResNet-20 at batch 1: 2.2 ms without Winograd, 2.8-3.3 ms with),
      so it needs 256 tiles per call, counting the images of a call as min(images, 16):
      `images` is the batch (None: large), and the CPU executor's shares hold at least 16
      images where the batch has them (netcli/exec/stretches.py, MIN_ROWS).
    - winograd4 (F(4x4, 3x3)) instead, where both channel counts are at least 64 and the output
      plane has at least 28 x 28 pixels: its GEMMs do 2.25 multiplications per output instead of
      4, but its transforms (scalar code, like F(2x2, 3x3)'s) cost more per output, and on small
      planes its 4x4 tiles are few and partly outside the image. F(2x2) time / F(4x4) time,
      forward / backward, one thread, AMD EPYC Zen 5, best of 3 (images per call): VGG-16's
      64 ch 224x224 1.09x / 1.42x (2), 64->128 112x112 1.00x / 1.30x (4), 128 ch 112x112 1.12x /
      1.41x (4), 128->256 56x56 1.18x / 1.30x, 256 ch 56x56 1.27x / 1.35x, 256->512 28x28 1.10x /
      1.35x, 512 ch 28x28 1.18x / 1.40x (16 each); 64->192 56x56 (GoogLeNet) 1.06x / 1.27x, 64 ch
      56x56 (ResNet-50) 1.09x / 1.25x, 64 ch 32x32 1.01x / 1.12x (32); but 512 ch 14x14 0.62x /
      0.73x (16), 128 ch 16x16 0.92x / 1.02x, 16 ch 32x32 0.79x / 1.12x, 32 ch 16x16 0.76x /
      0.92x, 64 ch 8x8 0.63x / 0.69x (32). With few images its GEMMs are narrow, so it also needs
      784 4x4 tiles per call (images counted as for winograd); forward only (inference): 64 ch
      56x56 1.01x with 4 images (784 tiles), 0.67x with 1; 128 ch 28x28 1.03x with 16 images
      (784), 0.67x with 4, 0.34x with 1; 512 ch 28x28 with 4 images 0.70x; 64 ch 224x224 with 1
      image (3136 tiles) 1.11x. (ResNet-50's inference at batch 8 ran 3% slower on F(4x4)
      without this bound.)
    - otherwise the patch layout (patch_layout)."""
    if group == C == K:
        OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
        OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
        small = OH * OW <= 64 and depthwise_nhwc_fits(KH, KW, PH, PW, DH, DW)
        return "depthwise-nhwc" if small else "depthwise"
    if KH == KW == 1 and SH == SW == 1 and PH == PW == 0:
        return "1x1" if H * W >= 64 else "1x1-nhwc"
    if KH == KW == 1 and PH == PW == 0 and ((H - 1) // SH + 1) * ((W - 1) // SW + 1) >= STRIDED_1X1_PIXELS:
        return "1x1-strided"
    OH, OW = H + 2 * PH - 2, W + 2 * PW - 2          # what winograd_fits leaves: 3x3, stride 1
    tiles = min(16 if images is None else images, 16) * ((OH + 1) // 2) * ((OW + 1) // 2)
    if winograd_fits(KH, KW, SH, SW, PH, PW, DH, DW, group) and C >= 16 and OH >= 8 and OW >= 8 and tiles >= 256:
        tiles4 = min(16 if images is None else images, 16) * ((OH + 3) // 4) * ((OW + 3) // 4)
        return "winograd4" if min(C, K) >= 64 and OH * OW >= 28 * 28 and tiles4 >= 784 else "winograd"
    return patch_layout(C, KW, group)


def _pixels_read(inp, xs, SH, SW):
    """xs (n, C, OH, OW) = the pixels a 1x1 kernel of stride SH x SW reads from inp (no padding)."""
    np.copyto(xs, inp[:, :, ::SH, ::SW])
    return xs


def patch_layout(C, KW, group):
    """The GEMM path every shape can take: im2row when a kernel row spans at least 16 floats
    (C*KW) and there are no groups, else im2col."""
    return "im2row" if group == 1 and C * KW >= 16 else "im2col"


def patch_chunks(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, itemsize):
    """[(first, stop)]: the chunks of a call's images for "im2row" and "im2col" (the largest
    per-image array: the patches, or im2row's GEMM result); one chunk for the others."""
    if algorithm not in ("im2row", "im2col"):
        return ((0, n),)
    P, CKK = OH * OW, C // group * KH * KW
    per_image = max(P * CKK, P * K, H * W * C) + (K * CKK if algorithm == "im2col" else 0)
    return image_chunks(n, per_image * itemsize)


def _gathered_weight_gradient(C, K, P, group):
    """1x1: True when the per-image weight gradients (K x C/group per image) would move more
    floats than copying dout and the input to (channels, n*P) for one GEMM over all pixels."""
    return K * (C // group) > P * (K + C)


def conv2d_workspace(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype):
    """{name: (shape, dtype)} of what one call on n images keeps from the forward to the
    backward (its patches); the scratch used inside one call only is `conv2d_scratch`'s."""
    if len(patch_chunks(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, np.dtype(dtype).itemsize)) > 1:
        return {}                                # patches made again in the backward: scratch
    return _workspace(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype)


def conv2d_scratch(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype):
    """{name: (shape, dtype)} of the scratch one call on n images writes before it reads it (its
    contents mean nothing between calls: the executor shares it between layers); in chunks,
    the arrays of the largest chunk, its patches and a weight gradient summed over chunks."""
    chunks = patch_chunks(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, np.dtype(dtype).itemsize)
    if len(chunks) == 1:
        return _scratch(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype)
    m = largest(chunks)
    return {**_scratch(m, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype),
            **_workspace(m, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype),
            "dwsum": ((K, C // group * KH * KW), dtype)}


def _workspace(n, C, H, W, K, KH, KW, OH, OW, group, algorithm, dtype):
    P, CKK = OH * OW, C // group * KH * KW
    if algorithm in WINOGRAD_TILE:
        return winograd_workspace(n, C, H, W, K, OH, OW, dtype, WINOGRAD_TILE[algorithm])
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
        return winograd_scratch(n, C, H, W, K, OH, OW, dtype, WINOGRAD_TILE[algorithm])
    if algorithm == "1x1" and _gathered_weight_gradient(C, K, P, group):
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
# position blocks, 0.35 untiled), which idle threads take (exec/threads.py, tiles):
# the same bits whoever runs them. Smaller GEMMs cost less than handing them over (SqueezeNet 1.1
# at batch 1, 2 cores: 10.0 ms untiled, 11.6 ms with every GEMM tiled).
ONE_IMAGE_TILES = 4
TILED_MACS = 2 ** 24


def _tiles(n, rows, macs):
    """Whether a GEMM of `rows` output rows and `macs` multiply-adds on n images goes in tiles."""
    return n == 1 and rows >= 4 * ONE_IMAGE_TILES and macs >= TILED_MACS


def _tiled(gemm, rows):
    """gemm(r0, r1) for ONE_IMAGE_TILES blocks of `rows` rows (exec/threads.py tiles)."""
    threads.tiles(lambda j: gemm(rows * j // ONE_IMAGE_TILES, rows * (j + 1) // ONE_IMAGE_TILES), ONE_IMAGE_TILES)


def _rows_weights(weight, wr):
    """The weights as (K, KH*KW*C), the rows layout's column order (a copy in wr)."""
    np.copyto(wr, weight.transpose(0, 2, 3, 1))
    return wr.reshape(weight.shape[0], -1)


def conv2d_forward(out, inp, weight, bias, ws, KH, KW, SH, SW, PH, PW, DH, DW, group, algorithm):
    """out (n, K, OH, OW) = inp (n, C, H, W) * weight (K, C/group, KH, KW) + bias (K,), or no
    bias when bias is None."""
    n, K, OH, OW = out.shape
    geometry = (KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    if algorithm == "depthwise":
        depthwise_forward(out, inp, weight, ws["no_bias"] if bias is None else bias, *geometry[:8])
        return
    if algorithm == "depthwise-nhwc":
        depthwise_nhwc_forward(out, inp, weight, ws["no_bias"] if bias is None else bias, ws["xp"], ws["yt"],
                               ws["wt"], *geometry[:8])
        return
    if algorithm in WINOGRAD_TILE:
        winograd_forward(out, inp, weight, bias, ws, PH, PW, WINOGRAD_TILE[algorithm])
        return
    if algorithm == "1x1-strided":
        inp, algorithm = _pixels_read(inp, ws["xs"], SH, SW), "1x1"
    chunks = ((0, n),) if n == 1 else _chunks(inp, out, weight, group, algorithm)
    if algorithm in ("im2row", "1x1-nhwc"):
        wr = _rows_weights(weight, ws["wr"])
        for a, b in chunks:
            xt, cols, res = _row_arrays(ws, b - a, OH * OW, algorithm)
            im2col.nchw_to_nhwc(inp if b - a == n else inp[a:b], xt)
            if algorithm == "im2row":
                im2col.im2row(xt, cols, *geometry)
            if _tiles(b - a, res.shape[0], res.size * cols.shape[1]):
                _tiled(lambda r0, r1: np.dot(cols[r0:r1], wr.T, out=res[r0:r1]), res.shape[0])
            else:
                np.dot(cols, wr.T, out=res)
            im2col.rows_to_nchw(res, ws["no_bias"] if bias is None else bias, out if b - a == n else out[a:b])
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
            im2col.im2col_images(x, cols, *geometry)
        groups = ((w, cols, y),) if group == 1 else \
            [(w[g * kg:(g + 1) * kg], cols[:, g * ck:(g + 1) * ck], y[:, g * kg:(g + 1) * kg]) for g in range(group)]
        for wg, xg, yg in groups:
            wide = P > kg                   # more positions than rows: tiles are blocks of positions
            if not _tiles(b - a, P if wide else kg, yg.size * wg.shape[1]):
                np.matmul(wg, xg, out=yg)
            elif wide:
                _tiled(lambda p0, p1: np.matmul(wg, xg[:, :, p0:p1], out=yg[:, :, p0:p1]), P)
            else:
                _tiled(lambda k0, k1: np.matmul(wg[k0:k1], xg, out=yg[:, k0:k1]), kg)
    if bias is not None:
        im2col.add_bias(y3, bias)


def conv2d_backward(dinp, dweight, dbias, dout, inp, weight, ws, KH, KW, SH, SW, PH, PW, DH, DW, group,
                    algorithm, fresh):
    """From dout (n, K, OH, OW), the input inp (n, C, H, W) and the patches conv2d_forward left
    in ws: dinp (n, C, H, W) (skipped when None) = the input gradient, written; dweight
    (K, C/group, KH, KW) and dbias (K,) += this call's gradients, or = when `fresh` (they hold
    zeros); either may be None (no bias, or a frozen param: not computed). The input gradient
    uses the current weights, as Caffe's."""
    n, K, OH, OW = dout.shape
    geometry = (KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    if algorithm in ("depthwise", "depthwise-nhwc"):      # the kernels add: `fresh` targets are cleared first
        for target in (dbias, dweight) if fresh else ():
            if target is not None:
                target[...] = 0.0
        if dbias is not None:
            im2col.sum_bias(dout.reshape(n, K, -1), dbias)
        if algorithm == "depthwise":
            if dweight is not None:
                depthwise_backward_weight(dweight, dout, inp, *geometry[:8])
            if dinp is not None:
                depthwise_backward_data(dinp, dout, weight, *geometry[:8])
            return
        if dinp is not None:      # leaves dout channels-last in ws["yt"] for the weight gradient
            depthwise_nhwc_backward_data(dinp, dout, weight, ws["yt"], ws["dxp"], ws["wt"], *geometry[:8])
        if dweight is not None:
            depthwise_nhwc_backward_weight(dweight, dout, ws["xp"], ws["yt"], ws["part"], KH, KW, SH, SW, DH, DW,
                                           dinp is None)
        return
    if algorithm in WINOGRAD_TILE:
        winograd_backward(dinp, dweight, dbias, dout, inp, weight, ws, PH, PW, fresh, WINOGRAD_TILE[algorithm])
        return
    if algorithm == "1x1":
        _backward_1x1(dinp, dweight, dbias, dout, inp, weight, ws, group, fresh)
        return
    if algorithm == "1x1-strided":      # the pixels read, again; the input gradient zero elsewhere
        xs, dxs = _pixels_read(inp, ws["xs"], SH, SW), None if dinp is None else ws["dxs"]
        _backward_1x1(dxs, dweight, dbias, dout, xs, weight, ws, group, fresh)
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
                im2col.im2row(xt, cols, *geometry)
            dres = res.reshape(K, -1)                # the forward's buffer, as (K, n*P)
            im2col.nchw_to_gemm(dout[a:b], dres, db)       # dout as (K, n*P), and the bias gradient
            if dweight is not None:                   # weight gradient, columns (i, j, c)
                np.dot(dres, cols, out=ws["dw"])
                if again:
                    if k == 0:
                        np.copyto(ws["dwsum"], ws["dw"])
                    else:
                        ws["dwsum"] += ws["dw"]
            if dinp is not None:
                dcols = first(ws["dcols"], (res.shape[0], cols.shape[1]))
                np.dot(dres.T, wr, out=dcols)
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
                np.matmul(dy3[a:b, g * kg:(g + 1) * kg], cols[:, g * ck:(g + 1) * ck].transpose(0, 2, 1),
                          out=dw[:, g * kg:(g + 1) * kg])
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
                np.matmul(w[g * kg:(g + 1) * kg].T, dy3[a:b, g * kg:(g + 1) * kg], out=dcols[:, g * ck:(g + 1) * ck])
            im2col.col2im_images(dcols, dinp[a:b], *geometry)
    if again and dweight is not None:
        if fresh:
            np.copyto(dweight.reshape(K, ck), ws["dwsum"])
        else:
            dweight.reshape(K, ck)[...] += ws["dwsum"]


def _chunks(inp, out, weight, group, algorithm):
    n, C, H, W = inp.shape
    if n == 1 or algorithm not in ("im2row", "im2col"):
        return ((0, n),)
    K, _, KH, KW = weight.shape
    return patch_chunks(n, C, H, W, K, KH, KW, out.shape[2], out.shape[3], group, algorithm, inp.itemsize)


def _row_arrays(ws, m, P, algorithm):
    """(xt, cols, res) of a chunk of m images in the rows layout ("1x1-nhwc": xt is cols)."""
    xt = ws["xt"]
    if m == xt.shape[0]:                 # the largest chunk: the arrays themselves
        return xt, ws["cols"] if algorithm == "im2row" else xt.reshape(-1, xt.shape[3]), ws["res"]
    xt = first(xt, (m,) + xt.shape[1:])
    cols = first(ws["cols"], (m * P, ws["cols"].shape[1])) if algorithm == "im2row" else xt.reshape(-1, xt.shape[3])
    return xt, cols, first(ws["res"], (m * P, ws["res"].shape[1]))


def _backward_1x1(dinp, dweight, dbias, dout, inp, weight, ws, group, fresh):
    """conv2d_backward of "1x1": the input (n, C, P) is its own patch matrix and the input
    gradient is written by per-image GEMMs. The weight gradient: per image into ws["dw"]
    (n, K, C/group), then summed; or, where _gathered_weight_gradient says, one GEMM per group
    over (channels, n*P) copies of dout (its bias sum on the way) and of the input."""
    n, K = dout.shape[:2]
    C = inp.shape[1]
    kg, cg = K // group, C // group
    w = weight.reshape(K, cg)
    x3, dy3 = inp.reshape(n, C, -1), dout.reshape(n, K, -1)
    gathered = "xg" in ws and dweight is not None
    if dbias is not None and not gathered:
        im2col.sum_bias(dy3, dbias)
    if dweight is not None:
        dw, dw2 = ws["dw"], dweight.reshape(K, cg)
        if gathered:
            dres, xg = ws["dres"], ws["xg"]
            im2col.nchw_to_gemm(dout, dres, ws["no_bias"] if dbias is None else dbias)
            im2col.nchw_to_gemm(inp, xg, ws["no_bias"])
            for g in range(group):
                np.dot(dres[g * kg:(g + 1) * kg], xg[g * cg:(g + 1) * cg].T, out=dw[g * kg:(g + 1) * kg])
        else:
            for g in range(group):      # per image: dy[n] (kg, P) @ x[n].T (P, cg)
                np.matmul(dy3[:, g * kg:(g + 1) * kg], x3[:, g * cg:(g + 1) * cg].transpose(0, 2, 1),
                          out=dw[:, g * kg:(g + 1) * kg])
            dw = dw.sum(axis=0)
        if fresh:
            np.copyto(dw2, dw)
        else:
            dw2 += dw
    if dinp is not None:
        dx3 = dinp.reshape(n, C, -1)
        for g in range(group):
            np.matmul(w[g * kg:(g + 1) * kg].T, dy3[:, g * kg:(g + 1) * kg], out=dx3[:, g * cg:(g + 1) * cg])
