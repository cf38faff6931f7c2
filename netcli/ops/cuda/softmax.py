"""Softmax, and softmax with the multinomial logistic loss, forward and backward
(netcli/ops/cpu/softmax.py)."""
from __future__ import annotations

import math

from .launch import _blocks, _launch, cuda, THREADS, TINY
from numba import float32  # after .launch, which checks the extra


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
def _softmax_loss_forward(x, lab, prob, logp, N, C):
    """Per row (one thread each): prob = softmax(x[r]), logp[r] = log prob[r, label] (clamped)."""
    r = cuda.grid(1)
    if r >= N:
        return
    m = x[r, 0]
    for c in range(1, C):
        m = max(m, x[r, c])
    s = float32(0.0)
    for c in range(C):
        e = math.exp(x[r, c] - m)
        prob[r, c] = e
        s += e
    inv = 1.0 / s
    for c in range(C):
        prob[r, c] *= inv
    logp[r] = math.log(max(prob[r, int(lab[r])], TINY))


def softmax_loss_forward(x, lab, prob, logp):
    """x, prob (N, C); lab (N,) class indices as floats (checked by the data layer); logp (N,).
    The loss is -sum(logp) / N (summed on the host in row order: the same sum as the CPU's)."""
    N, C = x.shape
    _launch(_softmax_loss_forward, _blocks(N), THREADS, x, lab, prob, logp, N, C)


@cuda.jit
def _softmax_loss_backward(prob, lab, dx, scale, N, C):
    t = cuda.grid(1)
    if t < N * C:
        r, c = t // C, t % C
        dx[r, c] = scale * (prob[r, c] - (1.0 if int(lab[r]) == c else 0.0))


def softmax_loss_backward(prob, lab, dx, scale):
    """dx = scale * (prob - one_hot(lab)); scale = loss_weight / N."""
    N, C = prob.shape
    _launch(_softmax_loss_backward, _blocks(N * C), THREADS, prob, lab, dx, scale, N, C)
