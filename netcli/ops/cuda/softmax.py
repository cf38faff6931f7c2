"""Softmax, and softmax with the multinomial logistic loss, forward and backward. The loss has
the functions and parameters of netcli/ops/cpu/softmax.py (ignore_label included); its forward
returns device rows for softmax_loss_results instead of the sums. Softmax alone is device-only
here (the CPU's is NumPy in netcli/layers/common.py)."""
from __future__ import annotations

import math
import weakref

import numpy as np

from .launch import _blocks, _launch, cuda, THREADS, TINY
from numba import float32, float64  # after .launch, which checks the extra


@cuda.jit
def _softmax_forward(x, y, C, inner, total):
    """One thread per (outer, inner) position: softmax over the C entries between them."""
    t = cuda.grid(1)
    if t >= total:
        return
    o, i = t // inner, t % inner
    base = o * C * inner + i
    m = x[base]
    for c in range(1, C):
        m = max(m, x[base + c * inner])
    s = float32(0.0)
    for c in range(C):
        e = math.exp(x[base + c * inner] - m)
        y[base + c * inner] = e
        s += e
    inv = float32(1.0) / s
    for c in range(C):
        y[base + c * inner] *= inv


@cuda.jit
def _softmax_backward(y, dy, dx, C, inner, total):
    """dx = (dy - sum_c dy * y) * y along the softmax axis."""
    t = cuda.grid(1)
    if t >= total:
        return
    o, i = t // inner, t % inner
    base = o * C * inner + i
    d = float32(0.0)
    for c in range(C):
        d += dy[base + c * inner] * y[base + c * inner]
    for c in range(C):
        k = base + c * inner
        dx[k] = (dy[k] - d) * y[k]


def softmax_forward(x, y, axis):
    """Softmax of x along `axis` into y (same shape)."""
    C = x.shape[axis]
    inner = _prod(x.shape[axis + 1:])
    total = x.size // C
    _launch(_softmax_forward, _blocks(total), THREADS, x.reshape(x.size), y.reshape(y.size), C, inner, total)


def softmax_backward(y, dy, dx, axis):
    C = y.shape[axis]
    inner = _prod(y.shape[axis + 1:])
    total = y.size // C
    _launch(_softmax_backward, _blocks(total), THREADS, y.reshape(y.size), dy.reshape(dy.size),
            dx.reshape(dx.size), C, inner, total)


def _prod(shape):
    out = 1
    for d in shape:
        out *= d
    return out


# -- softmax with loss --------------------------------------------------------------------------
@cuda.jit
def _softmax_loss_forward(x, lab, prob, parts, C, I, total, ignore, has_ignore):
    """One thread per (r, i) position, as netcli/ops/cpu/softmax.py: prob = softmax over C;
    parts[t] = (log prob of the label, 1), (0, 0) where the label is ignored, or (the label, -1)
    where it is not a class index."""
    t = cuda.grid(1)
    if t >= total:
        return
    r, i = t // I, t % I
    m = x[r, 0, i]
    for c in range(1, C):
        m = max(m, x[r, c, i])
    s = 0.0
    for c in range(C):
        e = math.exp(x[r, c, i] - m)
        prob[r, c, i] = e
        s += e
    inv = 1.0 / s
    for c in range(C):
        prob[r, c, i] *= inv
    v = lab[r, i]
    if has_ignore and v == ignore:
        parts[t, 0] = 0.0
        parts[t, 1] = 0.0
    elif not (v >= 0 and v < C and v == math.floor(v)):   # NaN fails too
        parts[t, 0] = v
        parts[t, 1] = -1.0
    else:
        parts[t, 0] = math.log(max(float64(prob[r, int(v), i]), TINY))
        parts[t, 1] = 1.0


_PARTS = {}       # id(prob) -> (a weak reference to prob, the device rows its forward returns)


def _parts_for(prob, n):
    """The (n, 2) float64 device rows kept for this prob array; they go when prob goes."""
    key = id(prob)
    entry = _PARTS.get(key)
    if entry is None or entry[0]() is not prob or entry[1].shape[0] != n:
        _PARTS[key] = (weakref.ref(prob), cuda.device_array((n, 2), "float64"))
        weakref.finalize(prob, _PARTS.pop, key, None)
    return _PARTS[key][1]


def softmax_loss_forward(x, lab, prob, ignore, has_ignore):
    """x, prob (R, C, I); lab (R, I) class indices as floats. prob = softmax of x over C. The
    CPU's results (the sum of the log-probabilities of the labels not ignored, their count, the
    first label that is not a class index) cannot come back without waiting for the device:
    this returns a device array of one row per position instead, (log prob, 1), (0, 0) where
    ignored, (the label, -1) where it is not a class index, for softmax_loss_results to turn into
    the CPU's four values once read (netcli/exec/cuda.py's read_later). The rows are kept per
    `prob` array (they live as long as it does): a second call on the same prob reuses them."""
    R, C, I = x.shape
    parts = _parts_for(prob, R * I)
    _launch(_softmax_loss_forward, _blocks(R * I), THREADS, x, lab, prob, parts, C, I, R * I,
            float64(ignore), bool(has_ignore))
    return parts


def softmax_loss_results(parts):
    """The CPU's softmax_loss_forward results (total, count, bad label, found) from the rows
    softmax_loss_forward returned, copied to the host: the same sum, in the same order."""
    parts = np.asarray(parts, np.float64)
    bad = np.flatnonzero(parts[:, 1] < 0)
    if bad.size:
        return 0.0, 0, float(parts[bad[0], 0]), True
    total = float(np.cumsum(parts[:, 0])[-1]) if len(parts) else 0.0    # cumsum: one sum in row order
    return total, int(parts[:, 1].sum()), 0.0, False


@cuda.jit
def _softmax_loss_backward(prob, lab, dx, scale, C, I, total, ignore, has_ignore):
    t = cuda.grid(1)
    if t >= total:
        return
    r, c, i = t // (C * I), (t // I) % C, t % I
    v = lab[r, i]
    if not abs(v) < 2147483648.0:         # NaN or huge: no class (the forward reports the label)
        dx[r, c, i] = 0.0
        return
    k = int(v)
    if has_ignore and k == ignore:
        dx[r, c, i] = 0.0
        return
    v = float32(scale * prob[r, c, i])
    dx[r, c, i] = v - scale if c == k else v


def softmax_loss_backward(prob, lab, dx, scale, ignore, has_ignore):
    """dx = scale * (prob - one_hot(lab)); zero where the label is ignored (prob, dx (R, C, I))."""
    R, C, I = prob.shape
    _launch(_softmax_loss_backward, _blocks(R * C * I), THREADS, prob, lab, dx, float64(scale), C, I,
            R * C * I, int(ignore), bool(has_ignore))
