"""The 3x3 depthwise forward on NCHW planes in vectors along a row: no channels-last copy.

Each plane (image n, channel c) is copied into a small zero-bordered buffer that stays in the
L1 cache; then each vector of WIDE (16) or NARROW (8) outputs of a row is b + the nine taps'
terms in (i, j) order, w[i, j] * the vector of inputs the tap reads (with stride 2, the even
numbers of two vectors); four rows' sums interleaved, so that the adds of one wait on none of
another's. Planes of 4 or 8 columns with stride 1 and padding 1 go several rows to a vector
(packed): an image's planes stacked between rows of zeros, the taps that fall off a row's ends
masked to zero. The same float operations in the same order as depthwise.py's and
depthwise_nhwc.py's forwards (a product, then a sum; no fused multiply-add): the same bits.
The stride-1 input gradient is this forward of dout with the kernel turned 180 degrees.

Where the planes are small, depthwise_nhwc.py turns each image channels-last and back, and those
two copies took two thirds of its forward (MobileNet's 128 ch 16x16, 50 images, one thread,
Intel Xeon model 207: 0.54 ms to channels last, 0.63 the sums, 0.62 back); depthwise.py's phase
buffers cost more than its sums. Forward time, kernels before -> these, in conv2d_rule's
docstring; 512 ch 4x4 (packed) 0.39-0.48 -> 0.24-0.25 ms (50 images). The input gradient with
dout's channels-last copy (which the weight gradient reads), 32 images, the same machine, the
gathered sums (depthwise_nhwc.py) -> these, ms: 32 ch 32x32 1.33 -> 0.64, 128 ch 16x16 1.34 ->
0.81, 256 ch 8x8 0.88 -> 0.50, 512 ch 4x4 0.35 -> 0.20. MobileNet (bench/nets_vs_torch.py
--against, 2 threads, median of 5 rounds): inference 1.11-1.18x, training 1.00-1.04x."""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, register_jitable

from .depthwise_vectors import _are_integers, _Codegen, _is_float_arrays

WIDE, NARROW = 16, 8      # the lanes of a row's vectors: wide ones where a row has WIDE outputs
ROWS_FROM = 8             # output columns from which a plane's rows go in vectors (rows_fit)
ROW_BLOCK = 4             # rows (planes, where packed) whose sums run interleaved
PACKED = (4, 8)           # plane widths that go WIDE // W rows to a vector (packed_fit)


@register_jitable
def rows_fit(KH, KW, SH, SW, PH, PW, DH, DW, H, W, OW):
    """Whether depthwise_rows_forward runs this kernel: 3x3 without dilation, with stride 1 or 2
    both ways and ROWS_FROM output columns or more, or planes that fill vectors of WIDE in rows
    of PACKED columns, kept by stride 1 and padding 1 (packed_fit)."""
    if not (KH == KW == 3 and DH == DW == 1):
        return False
    return (SH in (1, 2) and SW in (1, 2) and OW >= ROWS_FROM) or packed_fit(SH, SW, PH, PW, H, W)


@register_jitable
def packed_fit(SH, SW, PH, PW, H, W):
    """Whether a 3x3 kernel's planes go several rows to a vector (`_packed_kernel`)."""
    return SH == SW == 1 and PH == PW == 1 and W in PACKED and (H * W) % WIDE == 0


def _splat(g, value):
    """The number `value` in every lane of g's vector."""
    b, lanes = g.builder, g.vector.count
    undefined = ir.Constant(g.vector, ir.Undefined)
    one = b.insert_element(undefined, value, ir.Constant(ir.IntType(32), 0))
    return b.shuffle_vector(one, undefined, ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes))


def _rows_kernel(lanes, SW):
    """The intrinsic for vectors of `lanes` outputs of a row, column stride SW (1 or 2)."""
    @intrinsic
    def rows(typingctx, p, y, w, b, y0, w0, OH, NV, SH, pr, yr):
        """y[y0 + oh*yr + v*lanes + l] = b + the sum over taps (i, j) in order of w[w0 + 3i + j] *
        p[(oh*SH + i)*pr + (v*lanes + l)*SW + j], for oh < OH, v < NV, l < lanes; p, y, w 1-D
        (contiguous), b a number of their type. The caller keeps every read and write inside."""
        if not (_is_float_arrays(p, y, w) and _are_integers(y0, w0, OH, NV, SH, pr, yr) and b == p.dtype):
            return None

        def codegen(context, builder, sig, args):
            g = _Codegen(context, builder, sig, args, lanes)
            pp, py, pw = (g.data(k) for k in range(3))
            y0, w0, OH, NV, SH, pr, yr = (g.number(k) for k in range(4, 11))
            weights = [_splat(g, builder.load(builder.gep(pw, [g.plus(w0, ir.Constant(ir.IntType(64), t))])))
                       for t in range(9)]
            bias = _splat(g, args[3])
            evens = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [2 * l for l in range(lanes)])
            step, width = ir.Constant(ir.IntType(64), lanes * SW), ir.Constant(ir.IntType(64), lanes)

            def block(oh0, count):
                """Rows oh0 .. oh0 + count - 1, their sums interleaved (independent chains)."""
                firsts = [g.times(g.plus(oh0, ir.Constant(ir.IntType(64), r)), SH, pr) for r in range(count)]
                outs = [g.plus(y0, g.times(g.plus(oh0, ir.Constant(ir.IntType(64), r)), yr)) for r in range(count)]
                with cgutils.for_range(builder, NV) as v:
                    shift = g.times(v.index, step)
                    acc = [bias] * count
                    for t in range(9):
                        for r in range(count):
                            at = g.plus(firsts[r], shift, g.times(pr, t // 3), ir.Constant(ir.IntType(64), t % 3))
                            x = g.load(pp, at)
                            if SW == 2:
                                x = builder.shuffle_vector(x, g.load(pp, g.plus(at, width)), evens)
                            acc[r] = builder.fadd(acc[r], builder.fmul(weights[t], x))
                    for r in range(count):
                        g.store(acc[r], py, g.plus(outs[r], g.times(v.index, width)))

            blocks = builder.sdiv(OH, ir.Constant(ir.IntType(64), ROW_BLOCK))
            with cgutils.for_range(builder, blocks) as k:
                block(g.times(k.index, ROW_BLOCK), ROW_BLOCK)
            with cgutils.for_range(builder, OH, start=g.times(blocks, ROW_BLOCK)) as row:
                block(row.index, 1)
            return context.get_dummy_value()

        return types.void(p, y, w, b, y0, w0, OH, NV, SH, pr, yr), codegen
    return rows


def _copy_kernel(lanes):
    """The intrinsic that copies a plane's rows into the padded buffer in vectors of `lanes`."""
    @intrinsic
    def copy(typingctx, src, p, s0, H, NV, sr, pr, p0):
        """p[p0 + h*pr + v*lanes + l] = src[s0 + h*sr + v*lanes + l] for h < H, v < NV, l < lanes
        (src, p 1-D, contiguous); the caller keeps every read and write inside."""
        if not (_is_float_arrays(src, p) and _are_integers(s0, H, NV, sr, pr, p0)):
            return None

        def codegen(context, builder, sig, args):
            g = _Codegen(context, builder, sig, args, lanes)
            ps, pp = g.data(0), g.data(1)
            s0, H, NV, sr, pr, p0 = (g.number(k) for k in range(2, 8))
            width = ir.Constant(ir.IntType(64), lanes)
            with cgutils.for_range(builder, H) as h:
                a, b = g.plus(s0, g.times(h.index, sr)), g.plus(p0, g.times(h.index, pr))
                with cgutils.for_range(builder, NV) as v:
                    shift = g.times(v.index, width)
                    g.store(g.load(ps, g.plus(a, shift)), pp, g.plus(b, shift))
            return context.get_dummy_value()

        return types.void(src, p, s0, H, NV, sr, pr, p0), codegen
    return copy


def _packed_kernel(W):
    """The intrinsic for planes W columns wide, stride 1, padding 1: WIDE // W rows a vector."""
    @intrinsic
    def packed(typingctx, x, p, y, w, b, x0, C, P):
        """For the C planes of P numbers from x[x0] on (an image): each copied into p, then
        y[x0 + c*P + q] = b[c] + the sum over taps (i, j) in order of w[9c + 3i + j] * (the
        input at row q // W + i - 1, column q % W + j - 1; 0 outside the plane), q < P. p holds
        plane c from number W + 1 + c*(P + W) on, after a row of zeros (zero, and never
        written, as are p[0] and its last W + 1 numbers). x, p, y, w, b 1-D; the caller keeps
        every read and write inside."""
        if not (_is_float_arrays(x, p, y, w, b) and _are_integers(x0, C, P)):
            return None

        def codegen(context, builder, sig, args):
            g = _Codegen(context, builder, sig, args, WIDE)
            px, pp, py, pw, pb = (g.data(k) for k in range(5))
            x0, C, P = (g.number(k) for k in range(5, 8))
            i64 = ir.IntType(64)

            def broadcast(base, at):
                return _splat(g, builder.load(builder.gep(base, [at])))

            zeros = ir.Constant(g.vector, [0.0] * WIDE)
            inside = [ir.Constant(ir.VectorType(ir.IntType(1), WIDE), [int(0 <= l % W + j - 1 < W) for l in range(WIDE)])
                      for j in range(3)]
            NV = builder.sdiv(P, ir.Constant(i64, WIDE))

            def block(c0, count):
                """Planes c0 .. c0 + count - 1: copied, then their sums interleaved."""
                cs = [g.plus(c0, ir.Constant(i64, k)) for k in range(count)]
                planes = [g.plus(x0, g.times(c, P)) for c in cs]
                bases = [g.times(c, g.plus(P, ir.Constant(i64, W))) for c in cs]
                with cgutils.for_range(builder, NV) as v:
                    q = g.times(v.index, ir.Constant(i64, WIDE))
                    for plane, base in zip(planes, bases):
                        g.store(g.load(px, g.plus(plane, q)), pp, g.plus(base, q, ir.Constant(i64, W + 1)))
                weights = [[broadcast(pw, g.plus(g.times(c, ir.Constant(i64, 9)), ir.Constant(i64, t)))
                            for t in range(9)] for c in cs]
                biases = [broadcast(pb, c) for c in cs]
                with cgutils.for_range(builder, NV) as v:
                    q = g.times(v.index, ir.Constant(i64, WIDE))
                    acc = list(biases)
                    for t in range(9):
                        for k in range(count):
                            xv = g.load(pp, g.plus(bases[k], q, ir.Constant(i64, (t // 3) * W + t % 3)))
                            if t % 3 != 1:
                                xv = builder.select(inside[t % 3], xv, zeros)
                            acc[k] = builder.fadd(acc[k], builder.fmul(weights[k][t], xv))
                    for k in range(count):
                        g.store(acc[k], py, g.plus(planes[k], q))

            blocks = builder.sdiv(C, ir.Constant(i64, ROW_BLOCK))
            with cgutils.for_range(builder, blocks) as k:
                block(g.times(k.index, ROW_BLOCK), ROW_BLOCK)
            with cgutils.for_range(builder, C, start=g.times(blocks, ROW_BLOCK)) as c:
                block(c.index, 1)
            return context.get_dummy_value()

        return types.void(x, p, y, w, b, x0, C, P), codegen
    return packed


_packed4, _packed8 = (_packed_kernel(W) for W in PACKED)
_wide1, _wide2, _narrow1, _narrow2 = (_rows_kernel(lanes, sw) for lanes in (WIDE, NARROW) for sw in (1, 2))
_copy_wide, _copy_narrow = _copy_kernel(WIDE), _copy_kernel(NARROW)


@njit(cache=True, nogil=True, inline="always")
def _sums(p, y, w, b, y0, w0, OH, NV, SH, pr, yr, lanes, SW):
    """The rows kernel of these lanes and column stride."""
    if lanes == WIDE:
        if SW == 1:
            _wide1(p, y, w, b, y0, w0, OH, NV, SH, pr, yr)
        else:
            _wide2(p, y, w, b, y0, w0, OH, NV, SH, pr, yr)
    elif SW == 1:
        _narrow1(p, y, w, b, y0, w0, OH, NV, SH, pr, yr)
    else:
        _narrow2(p, y, w, b, y0, w0, OH, NV, SH, pr, yr)


@njit(cache=True, nogil=True)
def depthwise_rows_forward(out, inp, weight, bias, SH, SW, PH, PW):
    """out[n, c, oh, ow] = bias[c] (0 where bias is empty) + the sum over taps (i, j) in order of
    weight[c, 0, i, j] * inp[n, c, oh*SH - PH + i, ow*SW - PW + j] (zero outside the image): a
    3x3 kernel where rows_fit. Arrays NCHW, weight (C, 1, 3, 3), each one block of memory."""
    N, C, OH, OW = out.shape
    H, W = inp.shape[2], inp.shape[3]
    x, y, w = inp.reshape(N * C * H * W), out.reshape(N * C * OH * OW), weight.reshape(C * 9)
    if packed_fit(SH, SW, PH, PW, H, W):
        _packed_forward(x, y, w, bias, N, C, H, W)
        return
    lanes = WIDE if OW >= WIDE else NARROW
    NV = (OW + lanes - 1) // lanes               # vectors per row, the last into `tail` if short
    full = OW // lanes
    pr = SW * NV * lanes + lanes + 2             # the buffer's row: every read of every vector
    Hp = (OH - 1) * SH + 3
    p = np.zeros(Hp * pr, out.dtype)             # the padded plane; its border stays zero
    tail = np.empty(OH * lanes, out.dtype)
    zero = np.zeros(1, out.dtype)[0]
    h0, h1 = max(0, -PH), min(H, Hp - PH)        # the input's rows and columns the sums read
    cols = min(W, pr - PW)
    copy_lanes = WIDE if cols >= WIDE else NARROW
    vectors = cols // copy_lanes
    done = vectors * copy_lanes
    for n in range(N):
        for c in range(C):
            plane = (n * C + c) * H * W
            _copy_in(x, p, plane + h0 * W, h1 - h0, vectors, W, pr, (h0 + PH) * pr + PW, copy_lanes)
            for h in range(h0, h1):              # the columns past the vectors
                for k in range(done, cols):
                    p[(h + PH) * pr + PW + k] = x[plane + h * W + k]
            b = bias[c] if bias.shape[0] > 0 else zero
            y0 = (n * C + c) * OH * OW
            if full > 0:
                _sums(p, y, w, b, y0, c * 9, OH, full, SH, pr, OW, lanes, SW)
            if full < NV:                        # the columns past the full vectors
                _sums(p[full * lanes * SW:], tail, w, b, 0, c * 9, OH, 1, SH, pr, lanes, lanes, SW)
                for oh in range(OH):
                    for ow in range(full * lanes, OW):
                        y[y0 + oh * OW + ow] = tail[oh * lanes + ow - full * lanes]


@njit(cache=True, nogil=True)
def _packed_forward(x, y, w, bias, N, C, H, W):
    """depthwise_rows_forward where packed_fit: each image's planes copied between rows of
    zeros, then WIDE outputs a vector (x, y, w: the arrays, flat)."""
    P = H * W
    p = np.zeros(C * (P + W) + W + 2, y.dtype)
    b = bias if bias.shape[0] > 0 else np.zeros(C, y.dtype)
    for n in range(N):
        if W == 4:
            _packed4(x, p, y, w, b, n * C * P, C, P)
        else:
            _packed8(x, p, y, w, b, n * C * P, C, P)


@njit(cache=True, nogil=True, inline="always")
def _copy_in(x, p, x0, rows, vectors, xr, pr, p0, lanes):
    """p[p0 + h*pr + k] = x[x0 + h*xr + k] for h < rows, k < vectors * lanes."""
    if vectors == 0:
        return
    if lanes == WIDE:
        _copy_wide(x, p, x0, rows, vectors, xr, pr, p0)
    else:
        _copy_narrow(x, p, x0, rows, vectors, xr, pr, p0)


@register_jitable
def rows_backward_fit(KH, KW, SH, SW, PH, PW, DH, DW, H, W, OH, OW):
    """Whether depthwise_rows_backward_data runs this kernel's input gradient: 3x3, stride 1, no
    dilation, padding at most 2, where its form as a forward (there) fits the rows."""
    if not (KH == KW == 3 and SH == SW == 1 and DH == DW == 1 and PH <= 2 and PW <= 2):
        return False
    return rows_fit(3, 3, 1, 1, 2 - PH, 2 - PW, 1, 1, OH, OW, W)


@njit(cache=True, nogil=True)
def depthwise_rows_backward_data(dinp, dout, weight, PH, PW):
    """dinp[n, c, h, w] = the sum over taps (i, j) in reverse order (from (2, 2)) of
    weight[c, 0, i, j] * dout[n, c, h + PH - i, w + PW - j] (zero outside dout): the input
    gradient of a 3x3 kernel of stride 1 where rows_backward_fit, as depthwise_rows_forward of
    dout with the kernel turned 180 degrees and padding 2 - PH, 2 - PW (dinp written)."""
    C = weight.shape[0]
    turned = np.empty((C, 1, 3, 3), weight.dtype)
    for c in range(C):
        for i in range(3):
            for j in range(3):
                turned[c, 0, i, j] = weight[c, 0, 2 - i, 2 - j]
    depthwise_rows_forward(dinp, dout, turned, np.zeros(0, weight.dtype), 1, 1, 2 - PH, 2 - PW)
