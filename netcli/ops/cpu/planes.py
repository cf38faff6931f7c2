"""Convolution on few input channels ("planes", conv2d.py): each output plane a sum, over the input
planes and the kernel's taps, of a weight times the input plane shifted by the tap, in LLVM
vectors of LANES positions along the output rows. A first layer has one to three input channels:
im2col's GEMMs then have KH*KW*C = 25 terms a sum and 20-32 rows (LeNet's conv1, 1 -> 20
channels 5x5 on 28x28: 53 GFLOP/s a thread), and "direct" (direct.py), in vectors of output
channels, loads each input number for one multiply-add; here each loaded input vector serves
BLOCK output planes.

An image's input planes are copied into `xp` zero-padded ((H + 2 PH) rows of Wp = W + 2 PW
numbers each), so that tap (i, j) of output position (oh, ow) is xp[(oh + i)*Wp + ow + j]: one
unaligned vector load per tap. A row's vectors start at 0, LANES, ... and the last at OW - LANES
(overlapping the one before: its positions are computed twice, the same bits), so the rows need
OW >= LANES (`planes_fits`); the sums are written straight into the NCHW output.
- Forward: y[k, oh, ow] = b[k] + the sum over input channels c in order, then taps t = i*KW + j
  in order, of w[k, c, i, j] * xp[c, oh + i, ow + j], by fused multiply-adds.
- Input gradient: the same sums on dout padded by KH - 1 - PH, KW - 1 - PW, with the kernel
  turned 180 degrees and its channels swapped (`planes_backward`).
- Weight gradient: dw[k, c, t] = the LANES partial sums added in lane order; lane l's adds
  dout[k, oh, s + l] * xp[c, oh + i, s + l + j] image after image, in each the rows in order and
  a row's vectors s in order (an overlapping vector's repeated lanes masked to zero). The sums of
  2 output planes x 13 (then 12) taps of a 5x5 kernel, or 3 x 9 of a 3x3, stay in registers.
Stride 1, no groups or dilation, padding under the kernel. One thread runs a call's images (the
CPU executor's shares are the parallelism): the thread count changes no bits. Measured against
im2col: conv2d_rule.py."""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .depthwise_vectors import _are_integers, _Codegen, _is_float_arrays
from .direct_vectors import LANES, _broadcast, _fma
from .im2col import sum_bias

BLOCK = 4                  # output planes per pass over the input (each loaded vector serves BLOCK sums)
GROUP = 8                  # images per forward call: `after` runs on them while they are in cache


def planes_fits(C, H, W, K, KH, KW, SH, SW, PH, PW, DH, DW, group):
    """Whether "planes" computes this convolution: a 3x3 or 5x5 kernel, stride 1, no groups or
    dilation, padding under the kernel, rows of LANES numbers or more in the output and in the
    input gradient."""
    OW = W + 2 * PW - KW + 1
    return (KH == KW and KH in (3, 5) and SH == SW == DH == DW == group == 1 and PH < KH and PW < KW
            and min(W, OW) >= LANES)


def planes_scratch(n, C, H, W, K, KH, KW, OH, OW, dtype, keeps=True):
    """{name: (shape, dtype)}: one image's padded input planes (xp; where a backward `keeps`, also
    big enough for the input gradient's K planes of dout padded); the weights per input channel
    (wc, and the input gradient's turned ones); the weight gradient's lanes (part) and sums (dwc);
    zeros for no bias."""
    xp = C * (OH + KH - 1) * (OW + KW - 1)
    if keeps:
        xp = max(xp, K * (H + KH - 1) * (W + KW - 1))
    T = K * C * KH * KW
    return {"xp": ((xp,), dtype), "wc": ((T,), dtype), "dwc": ((T,), dtype), "part": ((T * LANES,), dtype),
            "zeros": ((max(K, C),), dtype)}


def _i64(k):
    return ir.Constant(ir.IntType(64), k)


def _start(builder, v, last):
    """The row's vector v's first position: min(v * LANES, last)."""
    s = builder.mul(v, _i64(LANES))
    return builder.select(builder.icmp_signed("<", s, last), s, last)


def _sums_kernel(KH, KW, planes):
    """The intrinsic for `planes` output planes at once of a KH x KW kernel."""
    T = KH * KW

    @intrinsic
    def sums(typingctx, x, y, w, b, y0, k0, C, K, plane, OH, OW, Wp):
        """For the output planes k0 + q, q < `planes` (OH x OW numbers each, one after another from
        y0) and their positions (oh, ow): y[y0 + q*OH*OW + oh*OW + ow] = b[k0 + q] + the sum over
        input planes c < C in order, then taps t = i*KW + j in order, of w[((c*K + k0 + q)*T + t]
        * x[c*plane + (oh + i)*Wp + ow + j]; in vectors of LANES positions of a row, two at a
        time. x, y, w, b: 1-D; OW >= LANES. The caller keeps every read and write inside the
        arrays."""
        if not (_is_float_arrays(x, y, w, b) and _are_integers(y0, k0, C, K, plane, OH, OW, Wp)):
            return None

        def codegen(context, builder, sig, args):
            g = _Codegen(context, builder, sig, args, LANES)
            px, py, pw, pb = (g.data(k) for k in range(4))
            y0, k0, C, K, plane, OH, OW, Wp = (g.number(k) for k in range(4, 12))
            fma = _fma(g)
            taps = [g.plus(g.times(Wp, i), _i64(j)) for i in range(KH) for j in range(KW)]
            area = g.times(OH, OW)
            starts = [_broadcast(g, pb, g.plus(k0, _i64(q))) for q in range(planes)]
            last = builder.sub(OW, _i64(LANES))
            pairs = builder.sdiv(g.plus(OW, _i64(2 * LANES - 1)), _i64(2 * LANES))
            sums = [[cgutils.alloca_once(builder, g.vector) for v in range(2)] for q in range(planes)]
            with cgutils.for_range(builder, OH) as row:
                xrow, yrow = g.times(row.index, Wp), g.plus(y0, g.times(row.index, OW))
                with cgutils.for_range(builder, pairs) as pair:
                    s = [_start(builder, g.plus(g.times(pair.index, 2), _i64(v)), last) for v in range(2)]
                    for q in range(planes):
                        for v in range(2):
                            builder.store(starts[q], sums[q][v])
                    with cgutils.for_range(builder, C) as c:
                        xc = g.plus(xrow, g.times(c.index, plane))
                        wc = g.times(g.plus(g.times(c.index, K), k0), T)
                        acc = [[builder.load(sums[q][v]) for v in range(2)] for q in range(planes)]
                        for t in range(T):
                            inputs = [g.load(px, g.plus(xc, taps[t], s[v])) for v in range(2)]
                            for q in range(planes):
                                weight = _broadcast(g, pw, g.plus(wc, _i64(q * T + t)))
                                acc[q] = [builder.call(fma, [weight, inputs[v], acc[q][v]]) for v in range(2)]
                        for q in range(planes):
                            for v in range(2):
                                builder.store(acc[q][v], sums[q][v])
                    for q in range(planes):
                        for v in range(2):
                            g.store(builder.load(sums[q][v]), py, g.plus(yrow, g.times(area, q), s[v]))
            return context.get_dummy_value()

        return types.void(x, y, w, b, y0, k0, C, K, plane, OH, OW, Wp), codegen
    return sums


def _grads_kernel(KH, KW, t0, t1, planes):
    """The intrinsic for the taps t0 <= t < t1 of `planes` output planes' weight gradient (on one
    input plane) of a KH x KW kernel: (t1 - t0) * planes sums held in registers."""
    T = KH * KW

    @intrinsic
    def grads(typingctx, x, dy, part, x0, dy0, part0, C, OH, OW, Wp):
        """part[part0 + (q*C*T + t)*LANES + l] += the sum over the rows oh, then the row's vectors
        s in order, of dy[dy0 + q*OH*OW + oh*OW + s + l] * x[x0 + (oh + i)*Wp + s + l + j], for t =
        i*KW + j, t0 <= t < t1, and the planes q < `planes`; the last vector of a row (s = OW -
        LANES) without the lanes the one before it had. OW >= LANES."""
        if not (_is_float_arrays(x, dy, part) and _are_integers(x0, dy0, part0, C, OH, OW, Wp)):
            return None

        def codegen(context, builder, sig, args):
            g = _Codegen(context, builder, sig, args, LANES)
            px, pdy, ppart = (g.data(k) for k in range(3))
            x0, dy0, part0, C, OH, OW, Wp = (g.number(k) for k in range(3, 10))
            fma = _fma(g)
            taps = {t: g.plus(g.times(Wp, t // KW), _i64(t % KW)) for t in range(t0, t1)}
            area = g.times(OH, OW)
            at = {(q, t): g.plus(part0, g.times(g.plus(g.times(C, q * T), _i64(t)), LANES))
                  for q in range(planes) for t in range(t0, t1)}
            sums = {key: cgutils.alloca_once(builder, g.vector) for key in at}      # (registers once promoted)
            for key in at:
                builder.store(g.load(ppart, at[key]), sums[key])
            lanes = ir.Constant(ir.VectorType(ir.IntType(64), LANES), list(range(LANES)))
            zero = ir.Constant(g.vector, [0.0] * LANES)
            last = builder.sub(OW, _i64(LANES))
            count = builder.sdiv(g.plus(OW, _i64(LANES - 1)), _i64(LANES))
            with cgutils.for_range(builder, OH) as row:
                xrow, dyrow = g.plus(x0, g.times(row.index, Wp)), g.plus(dy0, g.times(row.index, OW))
                with cgutils.for_range(builder, count) as v:
                    s = _start(builder, v.index, last)
                    done = builder.sub(builder.mul(v.index, _i64(LANES)), s)     # lanes the vector before had
                    fresh = builder.icmp_signed(">=", lanes, _splat(builder, done))
                    d = [builder.select(fresh, g.load(pdy, g.plus(dyrow, g.times(area, q), s)), zero)
                         for q in range(planes)]
                    for t in range(t0, t1):
                        term = g.load(px, g.plus(xrow, taps[t], s))
                        for q in range(planes):
                            sum_ = sums[q, t]
                            builder.store(builder.call(fma, [d[q], term, builder.load(sum_)]), sum_)
            for key in at:
                g.store(builder.load(sums[key]), ppart, at[key])
            return context.get_dummy_value()

        return types.void(x, dy, part, x0, dy0, part0, C, OH, OW, Wp), codegen
    return grads


def _splat(builder, value):
    """An int64 in every lane of a vector of LANES."""
    vector = ir.VectorType(ir.IntType(64), LANES)
    one = builder.insert_element(ir.Constant(vector, ir.Undefined), value, ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(one, ir.Constant(vector, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES))


_sums3, _sums3_one = _sums_kernel(3, 3, BLOCK), _sums_kernel(3, 3, 1)
_sums5, _sums5_one = _sums_kernel(5, 5, BLOCK), _sums_kernel(5, 5, 1)
# The weight gradient's sums in registers: 3x3, 9 taps of 3 planes (or 1); 5x5, 13 and 12 taps of 2
# planes (or 25 taps of 1). Each input vector loaded serves as many multiply-adds as planes.
_grads3, _grads3_one = _grads_kernel(3, 3, 0, 9, 3), _grads_kernel(3, 3, 0, 9, 1)
_grads5a, _grads5b, _grads5_one = _grads_kernel(5, 5, 0, 13, 2), _grads_kernel(5, 5, 13, 25, 2), _grads_kernel(5, 5, 0, 25, 1)


@njit(cache=True, nogil=True)
def _pad(inp, xp, n, PH, PW):
    """Image n's planes into xp (zeros where no one writes), each (H + 2 PH) x (W + 2 PW) from
    row PH and column PW; returns Wp, the padded rows' numbers."""
    C, H, W = inp.shape[1], inp.shape[2], inp.shape[3]
    Wp = W + 2 * PW
    plane = (H + 2 * PH) * Wp
    if xp.size < C * plane:
        raise ValueError("planes: scratch for the padded planes")
    for c in range(C):
        for h in range(H):
            row = xp[c * plane + (h + PH) * Wp + PW:]
            src = inp[n, c, h]
            for w in range(W):
                row[w] = src[w]
    return Wp


@njit(cache=True, nogil=True)
def planes_images(out, inp, wc, b, xp, PH, PW):
    """out (n, K, OH, OW), contiguous, = b (K,) + inp (n, C, H, W) * the kernel wc (C, K, KH,
    KW) (its numbers per input channel), image by image through xp (planes_scratch's)."""
    N, C, H, W = inp.shape
    K, OH, OW = out.shape[1], out.shape[2], out.shape[3]
    KH, KW = wc.shape[2], wc.shape[3]
    if not (KH == KW and KH in (3, 5)) or OW < LANES:
        raise ValueError("planes: a 3x3 or 5x5 kernel, output rows of LANES")
    y, w = out.reshape(-1), wc.reshape(-1)
    plane = (H + 2 * PH) * (W + 2 * PW)
    xp[:C * plane] = 0.0
    full = K - K % BLOCK
    for n in range(N):
        Wp = _pad(inp, xp, n, PH, PW)
        for k0 in range(0, full, BLOCK):
            if KH == 3:
                _sums3(xp, y, w, b, (n * K + k0) * OH * OW, k0, C, K, plane, OH, OW, Wp)
            else:
                _sums5(xp, y, w, b, (n * K + k0) * OH * OW, k0, C, K, plane, OH, OW, Wp)
        for k in range(full, K):
            if KH == 3:
                _sums3_one(xp, y, w, b, (n * K + k) * OH * OW, k, C, K, plane, OH, OW, Wp)
            else:
                _sums5_one(xp, y, w, b, (n * K + k) * OH * OW, k, C, K, plane, OH, OW, Wp)


@njit(cache=True, nogil=True)
def planes_weight_images(dwc, part, dout, inp, xp, PH, PW):
    """dwc (K, C, KH, KW) = the weight gradient of the images of dout (n, K, OH, OW), contiguous,
    and inp (n, C, H, W): each (k, c, tap)'s LANES partial sums in part (K*C*KH*KW*LANES), over the
    images in order, then the lanes' in order."""
    N, C, H, W = inp.shape
    K, OH, OW = dout.shape[1], dout.shape[2], dout.shape[3]
    KH, KW = dwc.shape[2], dwc.shape[3]
    T = KH * KW
    if not (KH == KW and KH in (3, 5)) or OW < LANES or part.size < K * C * T * LANES:
        raise ValueError("planes: a 3x3 or 5x5 kernel, output rows of LANES, scratch for the sums")
    dy = dout.reshape(-1)
    plane = (H + 2 * PH) * (W + 2 * PW)
    xp[:C * plane] = 0.0
    part[:K * C * T * LANES] = 0.0
    for n in range(N):
        Wp = _pad(inp, xp, n, PH, PW)
        k = 0
        while k < K:
            for c in range(C):
                at, dy0 = (k * C + c) * T * LANES, (n * K + k) * OH * OW
                if KH == 3 and k + 3 <= K:
                    _grads3(xp, dy, part, c * plane, dy0, at, C, OH, OW, Wp)
                elif KH == 3:
                    _grads3_one(xp, dy, part, c * plane, dy0, at, C, OH, OW, Wp)
                elif k + 2 <= K:
                    _grads5a(xp, dy, part, c * plane, dy0, at, C, OH, OW, Wp)
                    _grads5b(xp, dy, part, c * plane, dy0, at, C, OH, OW, Wp)
                else:
                    _grads5_one(xp, dy, part, c * plane, dy0, at, C, OH, OW, Wp)
            k += (3 if k + 3 <= K else 1) if KH == 3 else (2 if k + 2 <= K else 1)
    d = dwc.reshape(-1)
    for e in range(K * C * T):
        total = part[e * LANES]
        for lane in range(1, LANES):
            total += part[e * LANES + lane]
        d[e] = total


def planes_forward(out, inp, weight, bias, ws, PH, PW, after):
    """conv2d_forward of "planes": groups of GROUP images, after(a, b) on each."""
    n, K = out.shape[:2]
    C, KH, KW = weight.shape[1:]
    wc = ws["wc"][:weight.size].reshape(C, K, KH, KW)
    np.copyto(wc, weight.transpose(1, 0, 2, 3))
    b = bias
    if bias is None:
        b = ws["zeros"][:K]
        b[...] = 0.0
    for a in range(0, n, GROUP):
        z = min(n, a + GROUP)
        planes_images(out[a:z], inp[a:z], wc, b, ws["xp"], PH, PW)
        after(a, z)


def planes_backward(dinp, dweight, dbias, dout, inp, weight, ws, PH, PW, fresh):
    """conv2d_backward of "planes": dinp written; dweight and dbias = (fresh) or += (each may be
    None: not computed). The input gradient: the forward's sums on dout with the kernel turned
    180 degrees, its channels swapped."""
    n, K = dout.shape[:2]
    C, KH, KW = weight.shape[1:]
    if dbias is not None:
        if fresh:
            dbias[...] = 0.0
        sum_bias(dout.reshape(n, K, -1), dbias)
    if dweight is not None:
        dwc = ws["dwc"][:weight.size].reshape(weight.shape)
        planes_weight_images(dwc, ws["part"], dout, inp, ws["xp"], PH, PW)
        if fresh:
            np.copyto(dweight, dwc)
        else:
            dweight += dwc
    if dinp is not None:
        turned = ws["wc"][:weight.size].reshape(weight.shape)
        np.copyto(turned, weight[:, :, ::-1, ::-1])
        zeros = ws["zeros"][:C]
        zeros[...] = 0.0
        planes_images(dinp, dout, turned, zeros, ws["xp"], KH - 1 - PH, KW - 1 - PW)
