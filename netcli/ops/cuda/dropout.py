"""Dropout on a CUDA device, forward and backward: the functions, parameters and random stream
of netcli/ops/cpu/dropout.py (read it): the uniform number of element e of sample r in pass p is
SplitMix64's finaliser of (key, p, r * E + e), so the device draws the CPU's masks bit for bit.
x, y, keep are (n, E) rows (keep a bool array); `first` is the row of x[0] in the batch."""
from __future__ import annotations

import warnings

from ...gpu.device import simulated
from .launch import _blocks, _launch, cuda, THREADS
from numba import float64, uint64  # after .launch, which checks the extra

GOLDEN = 0x9E3779B97F4A7C15
PASS_MIX = 0xD1B54A32D192ED03
MASK64 = (1 << 64) - 1


@cuda.jit(device=True)
def _uniform(key, counter):
    """A float in [0, 1) with 24 random bits, from a 64-bit key and counter (the CPU's)."""
    z = key + counter * uint64(GOLDEN)
    z = (z ^ (z >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> uint64(27))) * uint64(0x94D049BB133111EB)
    z = z ^ (z >> uint64(31))
    return (z >> uint64(40)) * (1.0 / 16777216.0)


@cuda.jit
def _dropout_forward(x, y, keep, k, first, E, total, ratio, scale):
    t = cuda.grid(1)
    if t >= total:
        return
    r, e = t // E, t % E
    kept = _uniform(k, uint64(first + r) * uint64(E) + uint64(e)) >= ratio
    keep[r, e] = kept
    y[r, e] = float64(x[r, e]) * scale if kept else 0.0      # in float64, as the CPU's


def dropout_forward(x, y, keep, key, pass_, first, ratio, scale):
    """keep = uniform >= ratio; y = x * keep * scale (x and y may be the same array)."""
    n, E = x.shape
    k = (key ^ (pass_ * PASS_MIX)) & MASK64         # the CPU's per-pass key, mod 2^64
    args = (x, y, keep, uint64(k), first, E, n * E, float(ratio), float(scale))
    if not simulated():
        _launch(_dropout_forward, _blocks(n * E), THREADS, *args)
        return
    with warnings.catch_warnings():      # the simulator's NumPy scalars warn where the hash wraps (as meant)
        warnings.filterwarnings("ignore", "overflow encountered", RuntimeWarning)
        _launch(_dropout_forward, _blocks(n * E), THREADS, *args)


@cuda.jit
def _dropout_backward(dy, keep, dx, scale, E, total):
    t = cuda.grid(1)
    if t < total:
        r, e = t // E, t % E
        dx[r, e] = float64(dy[r, e]) * scale if keep[r, e] else 0.0


def dropout_backward(dy, keep, dx, scale):
    n, E = dy.shape
    _launch(_dropout_backward, _blocks(n * E), THREADS, dy, keep, dx, float(scale), E, n * E)
