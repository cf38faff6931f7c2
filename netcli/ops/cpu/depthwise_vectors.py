"""The 3x3 depthwise convolution's sums on channels-last planes (depthwise_nhwc.py) in vectors of
channels written as LLVM vectors. The forward (`forward3x3`; on planes turned 180 degrees, also
the stride-1 input gradient): a vector's nine weights and its bias are loaded once per image and
stay in registers while the loops run over the output positions, each position nine loads, nine
products and nine sums in tap order and one store. The weight gradient's per-position sums
(`weight_grad_taps`): a position's nine sums stay in registers over a group of images. The same
float operations in the same order as depthwise_nhwc.py's loops (no fused multiply-add): the same
bits.

Numba's loop over one position's channels (the form it replaced) reloaded the nine weight rows
at every position and paid a runtime check and set-up per position, 19 loads for 8 outputs. Taps
alone, outputs per ns, one thread, 2-vCPU Intel Xeon (model 207), best of 9, loops -> vectors:
512 ch 4x4 1.03 -> 1.58, 256 ch 8x8 1.08 -> 1.48, 1024 ch 2x2 0.78 -> 1.28, 128 ch 16x16 1.11 ->
1.97, 32 ch 32x32 0.74 -> 3.01; stride 2: 128 ch 16x16 1.06 -> 1.25, 256 ch 8x8 0.97 -> 1.19, 64
ch 32x32 0.90 -> 1.89. Vectors of 8, 16 and 32 channels (a row of positions per call), each
against the loops in its own run: 512 ch 4x4 0.89x, 1.34x, 1.59x; 256 ch 8x8 1.03x, 1.32x, 1.52x."""
from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

WIDE, NARROW = 32, 8      # the lanes of the vectors: as many wide ones as fit, then narrow ones
SUMS_WIDE = 16            # the weight gradient's wide vectors (nine sums held at once)


class _Codegen:
    """An intrinsic's arguments as LLVM values: arrays' data pointers, integers as int64, and
    pointers to vectors of `lanes` numbers at an offset."""

    def __init__(self, context, builder, sig, args, lanes):
        self.context, self.builder, self.sig, self.args = context, builder, sig, args
        kind = context.get_value_type(sig.args[0].dtype)
        self.vector, self.align = ir.VectorType(kind, lanes), context.get_abi_sizeof(kind)

    def data(self, k):
        return cgutils.create_struct_proxy(self.sig.args[k])(self.context, self.builder, value=self.args[k]).data

    def number(self, k):
        return self.context.cast(self.builder, self.args[k], self.sig.args[k], types.int64)

    def numbers(self, k):
        """The int64s of the tuple argument k."""
        t = self.sig.args[k]
        return [self.context.cast(self.builder, self.builder.extract_value(self.args[k], i), t.dtype, types.int64)
                for i in range(t.count)]

    def times(self, *factors):
        out = factors[0]
        for f in factors[1:]:
            out = self.builder.mul(out, ir.Constant(ir.IntType(64), f) if isinstance(f, int) else f)
        return out

    def plus(self, *terms):
        out = terms[0]
        for t in terms[1:]:
            out = self.builder.add(out, t)
        return out

    def load(self, base, offset):
        return self.builder.load(self._at(base, offset), align=self.align)

    def store(self, value, base, offset):
        self.builder.store(value, self._at(base, offset), align=self.align)

    def _at(self, base, offset):
        return self.builder.bitcast(self.builder.gep(base, [offset]), self.vector.as_pointer())


def _is_float_arrays(*arrays):
    return all(isinstance(a, types.Array) and a.dtype == arrays[0].dtype for a in arrays) and \
        isinstance(arrays[0].dtype, types.Float)


def _are_integers(*values, tuples=()):
    return all(isinstance(t, types.Integer) for t in values) and \
        all(isinstance(t, types.UniTuple) and isinstance(t.dtype, types.Integer) for t in tuples)


def _taps_kernel(lanes):
    """The intrinsic that runs the vectors of `lanes` channels (forward3x3)."""
    @intrinsic
    def taps(typingctx, x, y, w, b, c, OH, OW, SH, SW, DH, DW, strides):
        """For channels c..c + lanes of one image: y[oh, ow, c..] = b[c..] + the sum over taps
        (i, j) in order of w[i, j, c..] * x[oh*SH + i*DH, ow*SW + j*DW, c..]; x, y, w: 3-D, their
        channels one after another; strides: (x's rows, x's columns, y's rows, y's columns, w's
        rows, w's columns) in numbers. The caller keeps every read and write inside the arrays."""
        if not (_is_float_arrays(x, y, w, b) and _are_integers(c, OH, OW, SH, SW, DH, DW, tuples=(strides,))):
            return None

        def codegen(context, builder, sig, args):
            g = _Codegen(context, builder, sig, args, lanes)
            px, py, pw, pb = (g.data(k) for k in range(4))
            c, OH, OW, SH, SW, DH, DW = (g.number(k) for k in range(4, 11))
            xr, xq, yr, yq, wr, wq = g.numbers(11)
            weights = [g.load(pw, g.plus(g.times(wr, i), g.times(wq, j), c)) for i in range(3) for j in range(3)]
            bias = g.load(pb, c)
            taps = [g.plus(g.times(DH, xr, i), g.times(DW, xq, j)) for i in range(3) for j in range(3)]
            with cgutils.for_range(builder, OH) as row:
                start, out = g.plus(g.times(row.index, SH, xr), c), g.plus(g.times(row.index, yr), c)
                with cgutils.for_range(builder, OW) as column:
                    here = g.plus(start, g.times(column.index, SW, xq))
                    acc = bias
                    for t in range(9):
                        acc = builder.fadd(acc, builder.fmul(weights[t], g.load(px, g.plus(here, taps[t]))))
                    g.store(acc, py, g.plus(out, g.times(column.index, yq)))
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


def _grads_kernel(lanes):
    """The intrinsic that runs the vectors of `lanes` channels (weight_grad_taps)."""
    @intrinsic
    def grads(typingctx, x, y, part, c, n0, n1, OH, OW, SH, SW, DH, DW, strides):
        """For channels c..c + lanes, each output position (oh, ow) and each tap t = 3i + j of a
        3x3 kernel: part[t, oh, ow, c..] += the sum over images n0 <= n < n1, in order, of
        y[n, oh, ow, c..] * x[n, oh*SH + i*DH, ow*SW + j*DW, c..]; x, y, part: 4-D, their channels
        one after another; strides: (x's images, rows, columns, y's images, rows, columns, part's
        taps, rows, columns) in numbers."""
        if not (_is_float_arrays(x, y, part) and _are_integers(c, n0, n1, OH, OW, SH, SW, DH, DW, tuples=(strides,))):
            return None

        def codegen(context, builder, sig, args):
            g = _Codegen(context, builder, sig, args, lanes)
            px, py, pp = (g.data(k) for k in range(3))
            c, n0, n1, OH, OW, SH, SW, DH, DW = (g.number(k) for k in range(3, 12))
            xn, xr, xq, yn, yr, yq, pt, pr, pq = g.numbers(12)
            taps = [g.plus(g.times(DH, xr, i), g.times(DW, xq, j)) for i in range(3) for j in range(3)]
            sums = [cgutils.alloca_once(builder, g.vector) for _ in range(9)]     # (registers once promoted)
            with cgutils.for_range(builder, OH) as row:
                with cgutils.for_range(builder, OW) as column:
                    at = g.plus(g.times(row.index, pr), g.times(column.index, pq), c)
                    xa = g.plus(g.times(row.index, SH, xr), g.times(column.index, SW, xq), c)
                    ya = g.plus(g.times(row.index, yr), g.times(column.index, yq), c)
                    for t in range(9):
                        builder.store(g.load(pp, g.plus(at, g.times(pt, t))), sums[t])
                    with cgutils.for_range(builder, n1, start=n0) as image:
                        dy = g.load(py, g.plus(ya, g.times(image.index, yn)))
                        xi = g.plus(xa, g.times(image.index, xn))
                        for t in range(9):
                            term = builder.fmul(dy, g.load(px, g.plus(xi, taps[t])))
                            builder.store(builder.fadd(builder.load(sums[t]), term), sums[t])
                    for t in range(9):
                        g.store(builder.load(sums[t]), pp, g.plus(at, g.times(pt, t)))
            return context.get_dummy_value()

        return types.void(x, y, part, c, n0, n1, OH, OW, SH, SW, DH, DW, strides), codegen
    return grads


_grads_wide, _grads_narrow = _grads_kernel(SUMS_WIDE), _grads_kernel(NARROW)
# Images per pass over the positions: each position's sums run over a group's images in
# registers, the group's images staying in cache. From VECTOR_POSITIONS output positions on: the
# weight gradient's taps, 50 images, one thread, Intel Xeon (model 207), median of 7, ms, loops ->
# vectors: 128 ch 16x16 4.55 -> 3.31 (IMAGES 4: 3.39 -> 2.95, 16: 4.60 -> 3.98), 256 ch 8x8
# 2.31 -> 1.80, but 512 ch 4x4 0.95 -> 0.92 and 1024 ch 2x2 0.46 -> 0.59.
IMAGES, VECTOR_POSITIONS = 8, 64


@njit(cache=True, nogil=True)
def weight_grad_taps(xp, yt, part, KW, SH, SW, DH, DW, t_from, t_to):
    """part[t, oh, ow, c] += the sum over images n in order of yt[n, oh, ow, c] *
    xp[n, oh*SH + i*DH, ow*SW + j*DW, c], for taps t = i*KW + j from t_from to t_to; a 3x3
    kernel's nine taps at once in vectors of SUMS_WIDE channels, then NARROW, in groups of IMAGES images
    (from VECTOR_POSITIONS positions on); the rest (other kernels, parts of the taps) in a loop
    over each position's channels, image by image."""
    N, OH, OW, C = yt.shape
    size = xp.itemsize
    if xp.strides[3] != size or yt.strides[3] != size or part.strides[3] != size:
        raise ValueError("the vectors need each position's channels one after another")
    strides = (xp.strides[0] // size, xp.strides[1] // size, xp.strides[2] // size, yt.strides[0] // size,
               yt.strides[1] // size, yt.strides[2] // size, part.strides[0] // size, part.strides[1] // size,
               part.strides[2] // size)
    nine = KW == 3 and t_from == 0 and t_to == 9 and part.shape[0] >= 9 and OH * OW >= VECTOR_POSITIONS
    wide, narrow = (C - C % SUMS_WIDE, C - C % NARROW) if nine else (0, 0)
    for n0 in range(0, N, IMAGES):
        n1 = min(N, n0 + IMAGES)
        for c in range(0, wide, SUMS_WIDE):
            _grads_wide(xp, yt, part, c, n0, n1, OH, OW, SH, SW, DH, DW, strides)
        for c in range(wide, narrow, NARROW):
            _grads_narrow(xp, yt, part, c, n0, n1, OH, OW, SH, SW, DH, DW, strides)
    if narrow == C:
        return
    for n in range(N):                     # the rest: a loop over each position's channels
        for t in range(t_from, t_to):
            a, b = (t // KW) * DH, (t % KW) * DW
            for oh in range(OH):
                for ow in range(OW):
                    acc, g = part[t, oh, ow, narrow:], yt[n, oh, ow, narrow:]
                    src = xp[n, oh * SH + a, ow * SW + b, narrow:]
                    for c in range(C - narrow):
                        acc[c] += g[c] * src[c]
