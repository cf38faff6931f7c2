"""Dropout with a counter-based random stream: the uniform number of element e of sample r in
pass p is a hash of (key, p, r * E + e) (SplitMix64's finaliser), so every sample's mask is the
same whichever share or thread computes it, and nothing is drawn in sequence. x, y, keep are
(n, E) rows; `first` is the row of x[0] in the batch."""
from numba import njit, uint64

from .inplace import same

GOLDEN = 0x9E3779B97F4A7C15


@njit(cache=True, nogil=True, inline="always")
def _uniform(key, counter):
    """A float in [0, 1) with 24 random bits, from a 64-bit key and counter."""
    z = key + counter * uint64(GOLDEN)
    z = (z ^ (z >> uint64(30))) * uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> uint64(27))) * uint64(0x94D049BB133111EB)
    z = z ^ (z >> uint64(31))
    return (z >> uint64(40)) * (1.0 / 16777216.0)


@njit(cache=True, nogil=True)
def dropout_forward(x, y, keep, key, pass_, first, ratio, scale):
    """keep = uniform >= ratio; y = x * keep * scale (x and y may be the same array)."""
    n, E = x.shape
    k = uint64(key) ^ (uint64(pass_) * uint64(0xD1B54A32D192ED03))
    for r in range(n):
        base = uint64(first + r) * uint64(E)
        for e in range(E):
            keep[r, e] = _uniform(k, base + uint64(e)) >= ratio
        kr, yr = keep[r], y[r]
        if same(x, y):                   # in place: one array named (ops/cpu/inplace.py)
            for e in range(E):
                yr[e] = yr[e] * scale if kr[e] else 0.0
        else:
            xr = x[r]
            for e in range(E):
                yr[e] = xr[e] * scale if kr[e] else 0.0


@njit(cache=True, nogil=True)
def dropout_backward(dy, keep, dx, scale):
    n, E = dy.shape
    for r in range(n):
        kr, o = keep[r], dx[r]
        if same(dy, dx):
            for e in range(E):
                o[e] = o[e] * scale if kr[e] else 0.0
        else:
            g = dy[r]
            for e in range(E):
                o[e] = g[e] * scale if kr[e] else 0.0
