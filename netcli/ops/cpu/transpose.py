"""Blocks of 8 x 8 numbers transposed in vector registers: eight rows loaded as vectors, mixed by
three rounds of shuffles, stored as eight columns; and with them one row of an image between
channels first and channels last (`to_channels_last`, `from_channels_last`: the Winograd
transforms' copies, winograd_transforms.py, and the NCHW <-> NHWC moves, im2col.py). Each number
moves this way instead of one at a time with a stride: 32 images of 16 channels at 32x32 (NCHW ->
NHWC), one thread, AMD EPYC Zen 5, best of 20: 0.135 ms number by number, 0.065 ms in blocks
(float64: 0.105 ms). Onto rows a multiple of 4 KB apart (`aliased`) with more than 16 channels
the blocks run slower than a row buffer (`through_buffer`), which the callers take there.

The rows and columns are found through tables of where each starts (in numbers from the array's
first, whatever its strides), so that a block's columns can go to places that are not evenly
apart (the phases of Winograd's channels-last rows). The vectors are of the arrays' own type
(float32, float64): LLVM lowers them to whatever the CPU has (AVX-512, AVX2, SSE, NEON), the same
numbers moved."""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, register_jitable

BLOCK = 8
# the three rounds of shuffles: (step, lo, hi): vectors k and k + step (k // step even) become
# the shuffles lo and hi of the pair (numbers 0-7 from the first, 8-15 from the second): pairs
# of numbers mixed, then pairs of pairs, then halves
_ROUNDS = ((1, (0, 8, 1, 9, 4, 12, 5, 13), (2, 10, 3, 11, 6, 14, 7, 15)),
           (2, (0, 1, 8, 9, 4, 5, 12, 13), (2, 3, 10, 11, 6, 7, 14, 15)),
           (4, (0, 1, 2, 3, 8, 9, 10, 11), (4, 5, 6, 7, 12, 13, 14, 15)))


def _rounds(rows, mix):
    """The rows after the three rounds, mix(x, y, mask) making one shuffle."""
    for step, lo, hi in _ROUNDS:
        mixed = list(rows)
        for k in range(BLOCK):
            if (k // step) % 2 == 0:
                mixed[k], mixed[k + step] = mix(rows[k], rows[k + step], lo), mix(rows[k], rows[k + step], hi)
        rows = mixed
    return rows


def _columns():
    """Which of the mixed vectors holds column j of the block, j = 0..7: the rounds run on the
    numbers' (row, column) positions."""
    cells = _rounds([[(i, j) for j in range(BLOCK)] for i in range(BLOCK)],
                    lambda x, y, mask: [(x + y)[t] for t in mask])
    order = [None] * BLOCK
    for r, vector in enumerate(cells):
        assert [cell for cell in vector] == [(i, vector[0][1]) for i in range(BLOCK)]
        order[vector[0][1]] = r
    return order


_COLUMNS = _columns()


@intrinsic
def transpose_block(typingctx, src, s0, s_rows, si, dst, d0, d_rows, di):
    """dst[d0 + d_rows[di + j] + i] = src[s0 + s_rows[si + i] + j] for i, j < 8: row i of the
    block starts at s0 + s_rows[si + i] of src, its column j goes to the row that starts at d0 +
    d_rows[di + j] of dst (offsets in numbers from each array's first, whatever its strides: a
    row's numbers one after another in both; the tables: contiguous int64 arrays; float32 or
    float64 either side, converted as a store would). The caller keeps every number inside the
    arrays."""
    table = types.Array(types.int64, 1, "C")
    if not (isinstance(src, types.Array) and isinstance(dst, types.Array) and isinstance(src.dtype, types.Float)
            and isinstance(dst.dtype, types.Float) and s_rows == table and d_rows == table
            and all(isinstance(t, types.Integer) for t in (s0, si, d0, di))):
        return None

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        source, target = (context.get_value_type(sig.args[k].dtype) for k in (0, 4))
        vector, to = ir.VectorType(source, BLOCK), ir.VectorType(target, BLOCK)

        def data(k):
            return cgutils.create_struct_proxy(sig.args[k])(context, builder, value=args[k]).data

        def places(k, kind):    # the pointers of the 8 rows: array k, base k + 1, table k + 2 from k + 3
            first, at, table = context.cast(builder, args[k + 1], sig.args[k + 1], types.int64), data(k), data(k + 2)
            entry = context.cast(builder, args[k + 3], sig.args[k + 3], types.int64)
            return [builder.bitcast(builder.gep(at, [builder.add(first, builder.load(builder.gep(
                table, [builder.add(entry, ir.Constant(i64, r))])))]), kind.as_pointer()) for r in range(BLOCK)]

        rows = _rounds([builder.load(p, align=context.get_abi_sizeof(source)) for p in places(0, vector)],
                       lambda x, y, mask: builder.shuffle_vector(x, y, ir.Constant(ir.VectorType(ir.IntType(32),
                                                                                               BLOCK), mask)))
        if source != target:    # another float type: as a number stored one at a time would be
            wider = context.get_abi_sizeof(target) > context.get_abi_sizeof(source)
            rows = [(builder.fpext if wider else builder.fptrunc)(r, to) for r in rows]
        for j, p in enumerate(places(4, to)):
            builder.store(rows[_COLUMNS[j]], p, align=context.get_abi_sizeof(target))
        return context.get_dummy_value()

    return types.void(src, s0, s_rows, si, dst, d0, d_rows, di), codegen


@intrinsic
def load_at(typingctx, src, i):
    """src's number i from its first, whatever its strides (as transpose_block counts)."""
    if not (isinstance(src, types.Array) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        data = cgutils.create_struct_proxy(sig.args[0])(context, builder, value=args[0]).data
        return builder.load(builder.gep(data, [context.cast(builder, args[1], sig.args[1], types.int64)]))

    return src.dtype(src, i), codegen


@intrinsic
def store_at(typingctx, dst, i, value):
    """dst's number i from its first = value, whatever dst's strides (as transpose_block counts)."""
    if not (isinstance(dst, types.Array) and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        data = cgutils.create_struct_proxy(sig.args[0])(context, builder, value=args[0]).data
        v = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
        builder.store(v, builder.gep(data, [context.cast(builder, args[1], sig.args[1], types.int64)]))
        return context.get_dummy_value()

    return types.void(dst, i, value), codegen


@njit(cache=True, nogil=True)
def steps(count, step, first=0):
    """The table (int64) of `count` rows (BLOCK at least) `step` numbers apart from `first`:
    first, first + step, first + 2*step, ..."""
    out = np.empty(max(count, BLOCK), np.int64)
    for r in range(out.shape[0]):
        out[r] = first + r * step
    return out


@register_jitable(inline="always")
def to_channels_last(rows, xr, at, down):
    """xr[at[w] + c] = rows[c, w]: one row of an image (rows: (C, W), its channels) into places
    channels last, column w's C channels from number at[w] of xr (counted from its first,
    whatever its shape and strides: transpose_block's way; at: int64, W or more; down:
    steps(BLOCK, the numbers from one channel of rows to the next)); in blocks of 8 x 8, the
    channels and columns past the last block one number at a time."""
    C, W = rows.shape
    C8, W8 = C - C % BLOCK, W - W % BLOCK
    for c in range(0, C8, BLOCK):
        for w in range(0, W8, BLOCK):
            transpose_block(rows, c * down[1] + w, down, 0, xr, c, at, w)
        for w in range(W8, W):
            for i in range(c, c + BLOCK):
                store_at(xr, at[w] + i, rows[i, w])
    for c in range(C8, C):
        row = rows[c]
        for w in range(W):
            store_at(xr, at[w] + c, row[w])


@register_jitable(inline="always")
def from_channels_last(yr, rows, bias, at, down):
    """rows[k, x] = bias[k] (where given: bias may be empty) + yr[at[x] + k]: to_channels_last's
    way back, column x's K channels from number at[x] of yr (counted as there) into one row of
    an image (rows: (K, OW); down: steps(BLOCK, the numbers from one channel of rows to the next))."""
    K, OW = rows.shape
    K8, OW8 = K - K % BLOCK, OW - OW % BLOCK
    for k in range(0, K8, BLOCK):
        for x in range(0, OW8, BLOCK):
            transpose_block(yr, k, at, x, rows, k * down[1] + x, down, 0)
        for x in range(OW8, OW):
            for i in range(k, k + BLOCK):
                rows[i, x] = load_at(yr, at[x] + i)
    for k in range(K8, K):
        row = rows[k]
        for x in range(OW):
            row[x] = load_at(yr, at[x] + k)
    if bias.shape[0] > 0:
        for k in range(K):
            row, b = rows[k], bias[k]
            for x in range(OW):
                row[x] = b + row[x]


# Back onto rows a multiple of ALIAS_BYTES apart, a block's 8 stores fall on one place of the 4 KB
# pattern by which the CPU matches loads to earlier stores and fills its L1 cache; with more than
# ALIASED_CHANNELS channels that costs more than the blocks save, and the callers go through a
# (columns, channels) buffer in L1 instead (`through_buffer`). To NCHW from a padded channels-last
# plane, one thread, AMD EPYC Zen 5, best of 20 (3 runs alike), buffer / blocks, ms: 32 images of
# 32x32 with 16, 32, 64 channels 0.17 / 0.11, 0.30 / 0.40, 0.56 / 1.00; 8 of 64x64 with 16, 32, 64
# 0.14 / 0.12, 0.25 / 0.34, 0.49 / 0.54; but 14 of 48x48 with 32 (rows 9 KB apart) 0.26 / 0.10.
# Winograd F(4x4)'s output transform, 16 images of 64 channels at 32x32: 0.44 ms through a
# buffer, 0.89 in blocks.
ALIAS_BYTES, ALIASED_CHANNELS = 4096, 16


@register_jitable
def aliased(rows_apart_bytes, channels):
    """Whether from_channels_last onto `channels` rows this many bytes apart goes through_buffer."""
    return rows_apart_bytes % ALIAS_BYTES == 0 and channels > ALIASED_CHANNELS


@register_jitable(inline="always")
def through_buffer(yr, rows, bias, at, buf):
    """from_channels_last's numbers through buf (>= OW, K): each column's run of K channels from
    at[x] of yr (1-D) copied in, then each channel's row written in order, bias added on the way."""
    K, OW = rows.shape
    for x in range(OW):
        dst, src = buf[x], yr[at[x]:at[x] + K]
        for k in range(K):
            dst[k] = src[k]
    for k in range(K):
        row = rows[k]
        if bias.shape[0] > 0:
            b = bias[k]
            for x in range(OW):
                row[x] = b + buf[x, k]
        else:
            for x in range(OW):
                row[x] = buf[x, k]
