"""Max pooling (with its mask) and average pooling, forward and backward, with Caffe's windows:
the functions, parameters and results of netcli/ops/cpu/pool.py (its unrolled 2x2 and 3x3
variants are CPU speed-ups of the same functions, not separate ops)."""
from __future__ import annotations

from .launch import _blocks, _launch, _nchw, cuda, THREADS
from numba import float32  # after .launch, which checks the extra


# -- max pooling --------------------------------------------------------------------------------
@cuda.jit
def _maxpool_forward(x, y, mask, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, total):
    """One thread per output: the max over its window clipped to the image, and the flat index
    (h * W + w) of its first occurrence, as netcli/ops/cpu/pool.py."""
    t = cuda.grid(1)
    if t >= total:
        return
    n, c, oh, ow = _nchw(t, C, OH, OW)
    hs, ws = oh * SH - PH, ow * SW - PW
    best = -3.4028234663852886e38
    arg = -1
    for h in range(max(hs, 0), min(hs + KH, H)):
        for w in range(max(ws, 0), min(ws + KW, W)):
            v = x[n, c, h, w]
            if v > best:
                best = v
                arg = h * W + w
    y[n, c, oh, ow] = best
    mask[n, c, oh, ow] = arg


def _pool_launch(kernel, arrays, x_shape, y_shape, per_input, geometry):
    """Launch a pooling kernel: one thread per output, or per input (per_input, the backwards)."""
    N, C, H, W = x_shape
    OH, OW = y_shape[2], y_shape[3]
    total = N * C * (H * W if per_input else OH * OW)
    _launch(kernel, _blocks(total), THREADS, *arrays, C, H, W, OH, OW, *geometry, total)


@cuda.jit(device=True)
def _windows_of(h, w, OH, OW, KH, KW, SH, SW, PH, PW):
    """The outputs (oh in [a, b), ow in [c, d)) whose windows [oh*SH - PH, +KH) hold input (h, w)."""
    return (max(0, (h + PH - KH) // SH + 1), min(OH, (h + PH) // SH + 1),
            max(0, (w + PW - KW) // SW + 1), min(OW, (w + PW) // SW + 1))


def maxpool_forward(x, out, mask, KH, KW, SH, SW, PH, PW):
    _pool_launch(_maxpool_forward, (x, out, mask), x.shape, out.shape, False, (KH, KW, SH, SW, PH, PW))


@cuda.jit
def _maxpool_backward(dout, mask, dx, C, H, W, OH, OW, total):
    """One thread per (n, c) plane, as netcli/ops/cpu/pool.py: dx = 0, then each output's
    gradient onto the input that won its window, in output order (no atomics: the CPU's sums).
    The mask alone says where each gradient goes, so no geometry is needed (the CPU's signature)."""
    t = cuda.grid(1)
    if t >= total:
        return
    n, c = t // C, t % C
    for h in range(H):
        for w in range(W):
            dx[n, c, h, w] = 0.0
    for oh in range(OH):
        for ow in range(OW):
            arg = mask[n, c, oh, ow]
            if arg >= 0:
                dx[n, c, arg // W, arg % W] += dout[n, c, oh, ow]


def maxpool_backward(dout, mask, dx):
    """dx = 0, then each output's gradient goes to the input that won its window."""
    N, C, H, W = dx.shape
    OH, OW = dout.shape[2], dout.shape[3]
    _launch(_maxpool_backward, _blocks(N * C), THREADS, dout, mask, dx, C, H, W, OH, OW, N * C)


@cuda.jit(device=True)
def _ave_size(hs, ws, KH, KW, H, W, PH, PW):
    """The divisor of the window at (hs, ws): its size clipped to the padded image (Caffe's)."""
    return (min(hs + KH, H + PH) - hs) * (min(ws + KW, W + PW) - ws)


@cuda.jit
def _avepool_forward(x, y, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, total):
    t = cuda.grid(1)
    if t >= total:
        return
    n, c, oh, ow = _nchw(t, C, OH, OW)
    hs, ws = oh * SH - PH, ow * SW - PW
    acc = float32(0.0)
    for h in range(max(hs, 0), min(hs + KH, H)):
        for w in range(max(ws, 0), min(ws + KW, W)):
            acc += x[n, c, h, w]
    y[n, c, oh, ow] = acc / _ave_size(hs, ws, KH, KW, H, W, PH, PW)


def avepool_forward(x, out, KH, KW, SH, SW, PH, PW):
    """Average pooling as netcli/ops/cpu/pool.py: the window's sum over its padded size."""
    _pool_launch(_avepool_forward, (x, out), x.shape, out.shape, False, (KH, KW, SH, SW, PH, PW))


@cuda.jit
def _avepool_backward(dy, dx, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, total):
    """One thread per input: the gradients of the windows that contain it, each over its size."""
    t = cuda.grid(1)
    if t >= total:
        return
    n, c, h, w = _nchw(t, C, H, W)
    acc = float32(0.0)
    oh0, oh1, ow0, ow1 = _windows_of(h, w, OH, OW, KH, KW, SH, SW, PH, PW)
    for oh in range(oh0, oh1):
        for ow in range(ow0, ow1):
            hs, ws = oh * SH - PH, ow * SW - PW
            acc += dy[n, c, oh, ow] / _ave_size(hs, ws, KH, KW, H, W, PH, PW)
    dx[n, c, h, w] = acc


def avepool_backward(dout, dx, KH, KW, SH, SW, PH, PW):
    _pool_launch(_avepool_backward, (dout, dx), dx.shape, dout.shape, True, (KH, KW, SH, SW, PH, PW))
