"""The direct convolution's sums (direct.py) in LLVM vectors of 16 channels, with fused
multiply-adds, on channels-last arrays: the forward's (also the input gradient's) block of
positions x output channels, its sums held in registers over every tap and input channel; and
the weight gradient's block of input channels x output channels at one tap, its sums held in
registers over every position of an image. Each sum adds its terms in one fixed order (taps,
then channels; positions in order), whatever the block it is in: the bits do not depend on the
blocks.

Blocks of 24 sums (the forward: 24 positions x 16 channels, 12 x 32 or 6 x 64; the weight
gradient: 16 input channels x 16 output channels, or 8 x 32; 4 x 16 for the channels past
those) keep each loaded weight (or dout vector) for 24 multiply-adds. Forward, 32 images, one
thread, Intel Xeon (model 207), best of 7, ms (GFLOP/s), against PyTorch's conv2d on NCHW in
the same run: 16 -> 16 ch 32x32 0.97 (155) against 1.11; 16 -> 32 32x32 stride 2 0.40 (191)
against 0.67; 32 ch 16x16 0.74-0.86 (175-205) against 0.90-1.00; 32 -> 64 16x16 stride 2 0.43
(177) against 0.53; 64 ch 8x8 0.81 (187) against 0.83; 3 -> 16 32x32 0.30 (95) against 0.36.

A block's 24 positions each need their own input address, which the compiled loop keeps off
registers; where the inputs of a row's positions lie a step apart known when compiling (16
channels, stride 1; 32 channels, or 16 with stride 2), ROW_BLOCKS read each at a constant
offset instead. The sums alone, 32 images, one thread, the same run, 24-position blocks time
/ row blocks time: 16 ch 32x32 1.28-1.30x, 32 ch 16x16 1.05-1.07x, 16 -> 32 32x32 stride 2
1.10x (ResNet-20, bench/nets_vs_torch.py --against: training 1.05x with the first)."""
from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from .depthwise_vectors import _are_integers, _Codegen, _is_float_arrays

LANES = 16                # the numbers in one vector
FORWARD_BLOCKS = {1: 24, 2: 12, 4: 6}      # vectors of output channels: positions per block
# vectors of output channels: (positions of a row per block, numbers between their inputs)
ROW_BLOCKS = {1: (16, 16), 2: (8, 32)}
GRAD_BLOCKS = ((16, 1), (4, 1), (8, 2))    # the weight gradient's blocks: (input channels, vectors)


def _fma(g):
    kind = "f32" if isinstance(g.vector.element, ir.FloatType) else "f64"
    return cgutils.get_or_insert_function(g.builder.module, ir.FunctionType(g.vector, [g.vector] * 3),
                                          "llvm.fma.v%d%s" % (LANES, kind))


def _broadcast(g, base, offset):
    """The number at base[offset] in every lane."""
    b = g.builder
    undefined = ir.Constant(g.vector, ir.Undefined)
    one = b.insert_element(undefined, b.load(b.gep(base, [offset])), ir.Constant(ir.IntType(32), 0))
    return b.shuffle_vector(one, undefined,
                            ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))


def _constant(k):
    return ir.Constant(ir.IntType(64), k)


def _sums_kernel(vectors, rows=False):
    """The intrinsic for blocks of FORWARD_BLOCKS[vectors] positions x `vectors` vectors; with
    `rows`, ROW_BLOCKS[vectors]: blocks of positions in one row of the plane whose inputs lie a
    step apart (channels x stride) known when compiling."""
    positions, step = ROW_BLOCKS[vectors] if rows else (FORWARD_BLOCKS[vectors], None)

    @intrinsic
    def sums(typingctx, x, y, w, b, p0, k0, C, KH, KW, OW, SH, SW, strides):
        """For the positions p0 .. p0 + positions - 1 of the output plane (row p // OW, column
        p % OW) and the channels k0 .. k0 + 16 * vectors - 1: y[oh, ow, k] = b[k] + the sum over
        taps (i, j) in order, then input channels c in order, of x[oh*SH + i, ow*SW + j, c] *
        w[i, j, c, k]. x, y: 3-D (rows, columns, channels), w: 4-D, each with its channels one
        after another; strides: (x's rows, x's columns, y's rows, y's columns, w's i, j, c) in
        numbers. The caller keeps every read and write inside the arrays."""
        if not (_is_float_arrays(x, y, w, b) and _are_integers(p0, k0, C, KH, KW, OW, SH, SW, tuples=(strides,))):
            return None

        def codegen(context, builder, sig, args):
            g = _Codegen(context, builder, sig, args, LANES)
            px, py, pw, pb = (g.data(k) for k in range(4))
            p0, k0, C, KH, KW, OW, SH, SW = (g.number(k) for k in range(4, 12))
            xr, xq, yr, yq, wi, wj, wc = g.numbers(12)
            fma = _fma(g)
            if step is None:
                at = [(builder.sdiv(g.plus(p0, _constant(q)), OW), builder.srem(g.plus(p0, _constant(q)), OW))
                      for q in range(positions)]
                reads = [g.plus(g.times(oh, SH, xr), g.times(ow, SW, xq)) for oh, ow in at]
            else:                # (each read at a constant offset: no register or reload per position)
                oh, ow = builder.sdiv(p0, OW), builder.srem(p0, OW)
                at = [(oh, g.plus(ow, _constant(q))) for q in range(positions)]
                first = g.plus(g.times(oh, SH, xr), g.times(ow, SW, xq))
                reads = [g.plus(first, _constant(q * step)) for q in range(positions)]
            acc = [[cgutils.alloca_once(builder, g.vector) for _ in range(vectors)] for _ in range(positions)]
            for v in range(vectors):
                bias = g.load(pb, g.plus(k0, _constant(LANES * v)))
                for q in range(positions):
                    builder.store(bias, acc[q][v])
            with cgutils.for_range(builder, KH) as i:
                with cgutils.for_range(builder, KW) as j:
                    tap = g.plus(g.times(i.index, xr), g.times(j.index, xq))
                    wtap = g.plus(g.times(i.index, wi), g.times(j.index, wj), k0)
                    with cgutils.for_range(builder, C) as c:
                        wa = g.plus(wtap, g.times(c.index, wc))
                        ws = [g.load(pw, g.plus(wa, _constant(LANES * v))) for v in range(vectors)]
                        xa = g.plus(tap, c.index)
                        for q in range(positions):
                            s = _broadcast(g, px, g.plus(reads[q], xa))
                            for v in range(vectors):
                                builder.store(builder.call(fma, [s, ws[v], builder.load(acc[q][v])]), acc[q][v])
            for q, (oh, ow) in enumerate(at):
                ya = g.plus(g.times(oh, yr), g.times(ow, yq), k0)
                for v in range(vectors):
                    g.store(builder.load(acc[q][v]), py, g.plus(ya, _constant(LANES * v)))
            return context.get_dummy_value()

        return types.void(x, y, w, b, p0, k0, C, KH, KW, OW, SH, SW, strides), codegen
    return sums


def _grads_kernel(channels, vectors):
    """The intrinsic for blocks of `channels` input channels x `vectors` vectors."""

    @intrinsic
    def grads(typingctx, x, dy, dw, c0, k0, i, j, oh0, oh1, OW, SH, SW, strides):
        """For the input channels c0 .. c0 + channels - 1 and output channels k0 .. k0 + 16 *
        vectors - 1 at tap (i, j): dw[i, j, c, k] += the sum over positions (oh, ow) in order,
        rows oh0 <= oh < oh1, of x[oh*SH + i, ow*SW + j, c] * dy[oh, ow, k]. x, dy: 3-D, dw: 4-D,
        each with its channels one after another; strides: (x's rows, x's columns, dy's rows,
        dy's columns, dw's i, j, c) in numbers."""
        if not (_is_float_arrays(x, dy, dw) and _are_integers(c0, k0, i, j, oh0, oh1, OW, SH, SW, tuples=(strides,))):
            return None

        def codegen(context, builder, sig, args):
            g = _Codegen(context, builder, sig, args, LANES)
            px, py, pw = (g.data(k) for k in range(3))
            c0, k0, i, j, oh0, oh1, OW, SH, SW = (g.number(k) for k in range(3, 12))
            xr, xq, yr, yq, wi, wj, wc = g.numbers(12)
            fma = _fma(g)
            at = g.plus(g.times(i, wi), g.times(j, wj), g.times(c0, wc), k0)
            acc = [[cgutils.alloca_once(builder, g.vector) for _ in range(vectors)] for _ in range(channels)]
            for c in range(channels):
                for v in range(vectors):
                    builder.store(g.load(pw, g.plus(at, g.times(wc, c), _constant(LANES * v))), acc[c][v])
            first = g.plus(g.times(i, xr), g.times(j, xq), c0)
            with cgutils.for_range(builder, oh1, start=oh0) as oh:
                row, yrow = g.plus(first, g.times(oh.index, SH, xr)), g.plus(g.times(oh.index, yr), k0)
                with cgutils.for_range(builder, OW) as ow:
                    xa, ya = g.plus(row, g.times(ow.index, SW, xq)), g.plus(yrow, g.times(ow.index, yq))
                    dys = [g.load(py, g.plus(ya, _constant(LANES * v))) for v in range(vectors)]
                    for c in range(channels):
                        s = _broadcast(g, px, g.plus(xa, _constant(c)))
                        for v in range(vectors):
                            builder.store(builder.call(fma, [s, dys[v], builder.load(acc[c][v])]), acc[c][v])
            for c in range(channels):
                for v in range(vectors):
                    g.store(builder.load(acc[c][v]), pw, g.plus(at, g.times(wc, c), _constant(LANES * v)))
            return context.get_dummy_value()

        return types.void(x, dy, dw, c0, k0, i, j, oh0, oh1, OW, SH, SW, strides), codegen
    return grads


sums1, sums2, sums4 = (_sums_kernel(v) for v in (1, 2, 4))
rows1, rows2 = (_sums_kernel(v, rows=True) for v in (1, 2))
grads16x1, grads4x1, grads8x2 = (_grads_kernel(c, v) for c, v in GRAD_BLOCKS)
