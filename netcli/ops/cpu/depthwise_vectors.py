"""The 3x3 depthwise convolution's forward sums on channels-last planes (depthwise_nhwc.py) in
vectors of channels written as LLVM vectors: a vector's nine weights and its bias are loaded once
per image and stay in registers while the loops run over the output positions, each position
nine loads, nine products and nine sums in tap order and one store. The same float operations in
the same order as depthwise_nhwc.py's loops (no fused multiply-add): the same bits.

Numba's loop over one position's channels (the form it replaced) reloaded the nine weight rows
at every position and paid a runtime check and set-up per position, 19 loads for 8 outputs. Taps
alone, outputs per ns, one thread, 2-vCPU Intel Xeon (model 207), loops -> vectors (3 runs
alike): 512 ch 4x4 0.93 -> 1.36, 256 ch 8x8 1.08 -> 1.48, 1024 ch 2x2 1.02 -> 1.77, 128 ch 16x16
1.03 -> 1.66, stride 2: 128 ch 16x16 0.63 -> 1.18, 256 ch 8x8 0.61 -> 0.76. Vectors of 32
channels against 16 and 8 (the channels past them in vectors of 8, then one by one): 512 ch 4x4
0.94 / 0.91 / 0.55, 256 ch 8x8 1.11 / 0.98 / 0.75 (a row of positions per call there)."""
from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

WIDE, NARROW = 32, 8      # the lanes of the vectors: as many wide ones as fit, then narrow ones


def _taps_kernel(lanes):
    """The intrinsic that runs the vectors of `lanes` channels (forward3x3)."""
    @intrinsic
    def taps(typingctx, x, y, w, b, c, OH, OW, SH, SW, DH, DW, strides):
        """For channels c..c + lanes of one image: y[oh, ow, c..] = b[c..] + the sum over taps
        (i, j) in order of w[i, j, c..] * x[oh*SH + i*DH, ow*SW + j*DW, c..]; x, y, w: 3-D, their
        channels one after another; strides: (x's rows, x's columns, y's rows, y's columns, w's
        rows, w's columns) in numbers. The caller keeps every read and write inside the arrays."""
        if not (all(isinstance(a, types.Array) and a.dtype == x.dtype for a in (x, y, w, b))
                and isinstance(x.dtype, types.Float) and isinstance(strides, types.UniTuple)
                and all(isinstance(t, types.Integer) for t in (c, OH, OW, SH, SW, DH, DW, strides.dtype))):
            return None

        def codegen(context, builder, sig, args):
            i64 = ir.IntType(64)
            kind = context.get_value_type(sig.args[0].dtype)
            vector, align = ir.VectorType(kind, lanes), context.get_abi_sizeof(kind)

            def data(k):
                return cgutils.create_struct_proxy(sig.args[k])(context, builder, value=args[k]).data

            def number(k):
                return context.cast(builder, args[k], sig.args[k], types.int64)

            def times(*factors):
                out = factors[0]
                for f in factors[1:]:
                    out = builder.mul(out, f)
                return out

            def at(base, offset):
                return builder.bitcast(builder.gep(base, [offset]), vector.as_pointer())

            px, py, pw, pb = (data(k) for k in range(4))
            c, OH, OW, SH, SW, DH, DW = (number(k) for k in range(4, 11))
            xr, xq, yr, yq, wr, wq = (context.cast(builder, builder.extract_value(args[11], k), sig.args[11].dtype,
                                                   types.int64) for k in range(6))
            weights = [builder.load(at(pw, builder.add(builder.add(times(ir.Constant(i64, i), wr),
                                                                   times(ir.Constant(i64, j), wq)), c)), align=align)
                       for i in range(3) for j in range(3)]
            bias = builder.load(at(pb, c), align=align)
            taps = [builder.add(times(ir.Constant(i64, i), DH, xr), times(ir.Constant(i64, j), DW, xq))
                    for i in range(3) for j in range(3)]
            with cgutils.for_range(builder, OH) as row:
                start, out = builder.add(times(row.index, SH, xr), c), builder.add(times(row.index, yr), c)
                with cgutils.for_range(builder, OW) as column:
                    here = builder.add(start, times(column.index, SW, xq))
                    acc = bias
                    for t in range(9):
                        s = builder.load(at(px, builder.add(here, taps[t])), align=align)
                        acc = builder.fadd(acc, builder.fmul(weights[t], s))
                    builder.store(acc, at(py, builder.add(out, times(column.index, yq))), align=align)
            return context.get_dummy_value()

        return types.void(x, y, w, b, c, OH, OW, SH, SW, DH, DW, strides), codegen
    return taps


_wide, _narrow = _taps_kernel(WIDE), _taps_kernel(NARROW)


@njit(cache=True, nogil=True)
def forward3x3(xp, yt, wt, b, SH, SW, DH, DW):
    """yt[n, oh, ow, c] = b[c] + the nine taps' terms in (i, j) order, wt[i, j, c] *
    xp[n, oh*SH + i*DH, ow*SW + j*DW, c] (xp: the padded input, channels last), in vectors of
    WIDE channels, then NARROW, the channels past them one by one."""
    N, OH, OW, C = yt.shape
    size = xp.itemsize
    if xp.strides[3] != size or yt.strides[3] != size or wt.strides[2] != size or b.strides[0] != size:
        raise ValueError("the vectors need each position's channels one after another")
    strides = (xp.strides[1] // size, xp.strides[2] // size, yt.strides[1] // size, yt.strides[2] // size,
               wt.strides[0] // size, wt.strides[1] // size)
    wide, narrow = C - C % WIDE, C - C % NARROW
    for n in range(N):
        x, y = xp[n], yt[n]
        for c in range(0, wide, WIDE):
            _wide(x, y, wt, b, c, OH, OW, SH, SW, DH, DW, strides)
        for c in range(wide, narrow, NARROW):
            _narrow(x, y, wt, b, c, OH, OW, SH, SW, DH, DW, strides)
        for c in range(narrow, C):
            for oh in range(OH):
                for ow in range(OW):
                    acc = b[c]
                    for i in range(3):
                        for j in range(3):
                            acc = acc + wt[i, j, c] * x[oh * SH + i * DH, ow * SW + j * DW, c]
                    y[oh, ow, c] = acc
