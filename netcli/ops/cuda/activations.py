"""ReLU (with a negative slope), TanH and Sigmoid, forward and backward."""
from __future__ import annotations

import math

from .launch import _blocks, _launch, cuda, THREADS
from numba import float32  # after .launch, which checks the extra


# -- ReLU ---------------------------------------------------------------------------------------
@cuda.jit
def _relu_forward(x, y, slope, n):
    t = cuda.grid(1)
    if t < n:
        v = x[t]
        y[t] = v if v > 0 else v * slope


@cuda.jit
def _relu_backward(x, dy, dx, slope, n):
    """dx = dy where x > 0, slope * dy elsewhere (x: the input, or the output in place: same sign)."""
    t = cuda.grid(1)
    if t < n:
        dx[t] = dy[t] if x[t] > 0 else dy[t] * slope


def relu_forward(x, y, slope=0.0):
    _launch(_relu_forward, _blocks(x.size), THREADS, x.reshape(x.size), y.reshape(y.size), slope, x.size)


def relu_backward(x, dy, dx, slope=0.0):
    _launch(_relu_backward, _blocks(x.size), THREADS, x.reshape(x.size), dy.reshape(dy.size), dx.reshape(dx.size),
                                             slope, x.size)


# -- TanH, Sigmoid, Softmax ---------------------------------------------------------------------
TANH, SIGMOID = 0, 1


@cuda.jit
def _squash_forward(x, y, kind, n):
    t = cuda.grid(1)
    if t < n:
        v = x[t]
        y[t] = math.tanh(v) if kind == 0 else float32(0.5) * math.tanh(float32(0.5) * v) + float32(0.5)


@cuda.jit
def _squash_backward(y, dy, dx, kind, n):
    """From the output: tanh' = 1 - y^2, sigmoid' = y (1 - y)."""
    t = cuda.grid(1)
    if t < n:
        v = y[t]
        dx[t] = dy[t] * (float32(1.0) - v * v if kind == 0 else v * (float32(1.0) - v))


def squash_forward(x, y, kind):
    """y = tanh(x) (kind TANH) or the logistic sigmoid (SIGMOID, as 0.5 tanh(x/2) + 0.5, as the CPU)."""
    _launch(_squash_forward, _blocks(x.size), THREADS, x.reshape(x.size), y.reshape(y.size), kind, x.size)


def squash_backward(y, dy, dx, kind):
    _launch(_squash_backward, _blocks(y.size), THREADS, y.reshape(y.size), dy.reshape(dy.size),
            dx.reshape(dx.size), kind, y.size)
