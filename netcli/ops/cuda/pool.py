"""Max pooling (with its mask) and average pooling, forward and backward, with Caffe's windows
(netcli/ops/cpu/pool.py)."""
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


def maxpool_forward(x, y, mask, KH, KW, SH, SW, PH, PW):
    _pool_launch(_maxpool_forward, (x, y, mask), x.shape, y.shape, False, (KH, KW, SH, SW, PH, PW))


@cuda.jit
def _maxpool_backward(dy, mask, dx, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, total):
    """One thread per input: the sum of the gradients of the outputs whose window it won (a
    gather over the windows that contain it: no atomics, a fixed order)."""
    t = cuda.grid(1)
    if t >= total:
        return
    n, c, h, w = _nchw(t, C, H, W)
    me = h * W + w
    acc = float32(0.0)
    oh0, oh1, ow0, ow1 = _windows_of(h, w, OH, OW, KH, KW, SH, SW, PH, PW)
    for oh in range(oh0, oh1):
        for ow in range(ow0, ow1):
            if mask[n, c, oh, ow] == me:
                acc += dy[n, c, oh, ow]
    dx[n, c, h, w] = acc


def maxpool_backward(dy, mask, dx, KH, KW, SH, SW, PH, PW):
    _pool_launch(_maxpool_backward, (dy, mask, dx), dx.shape, dy.shape, True, (KH, KW, SH, SW, PH, PW))


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


def avepool_forward(x, y, KH, KW, SH, SW, PH, PW):
    """Average pooling as netcli/ops/cpu/pool.py: the window's sum over its padded size."""
    _pool_launch(_avepool_forward, (x, y), x.shape, y.shape, False, (KH, KW, SH, SW, PH, PW))


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


def avepool_backward(dy, dx, KH, KW, SH, SW, PH, PW):
    _pool_launch(_avepool_backward, (dy, dx), dx.shape, dy.shape, True, (KH, KW, SH, SW, PH, PW))
