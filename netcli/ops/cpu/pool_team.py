"""Pooling (pool.py) as team jobs (exec/team.py; run by ops/cpu/team_jobs.py; posted by
layers/pooling.py): the forward and the backward in tiles of images, min(images, PHASE_TILES) of
them; each image's planes are its own, so the bits are one call's. Each kernel (FORWARDS,
BACKWARDS: the layer's choice from its shape) is a job kind of its own (exec/claims.py)."""
import numpy as np
from numba import carray, njit

from ...exec.claims import HEAD, PHASE_TILES, POOL_BACKWARDS, POOL_FORWARDS, TILES, write_job
from . import pool
from .blas import address as _address, at as _at

FORWARDS = ("ave3x3", "ave", "max2x2", "max3x3", "max")      # the kernels, as POOL_FORWARDS' kinds
BACKWARDS = ("max", "ave3x3", "ave")                          # as POOL_BACKWARDS'

_MASK = np.empty(0, np.int32)                                 # (the masks' dtype, for _at)

# a job's record, from HEAD: its arrays (the mask: 0 where there is none) and geometry
(P_X, P_Y, P_MASK, P_N, P_C, P_H, P_W, P_OH, P_OW, P_KH, P_KW, P_SH, P_SW, P_PH, P_PW) = range(HEAD, HEAD + 15)


@njit(cache=True, nogil=True)
def _job(record, kind, x, y, mask, KH, KW, SH, SW, PH, PW):
    N, C, H, W = x.shape
    fields = (_address(x), _address(y), _address(mask) if mask.shape[0] else 0, N, C, H, W, y.shape[2], y.shape[3],
              KH, KW, SH, SW, PH, PW)
    write_job(record, kind, min(N, PHASE_TILES), 0, 0, 0, x.itemsize, fields)


@njit(cache=True, nogil=True)
def forward_job(record, variant, x, out, mask, KH, KW, SH, SW, PH, PW):
    """The job (into record) of the forward kernel FORWARDS[variant] on x into out (and mask: no
    rows for an average)."""
    _job(record, POOL_FORWARDS[variant], x, out, mask, KH, KW, SH, SW, PH, PW)


@njit(cache=True, nogil=True)
def backward_job(record, variant, dout, mask, dx, KH, KW, SH, SW, PH, PW):
    """The job (into record) of the backward kernel BACKWARDS[variant]: dx from dout (and mask)."""
    _job(record, POOL_BACKWARDS[variant], dx, dout, mask, KH, KW, SH, SW, PH, PW)


@njit(cache=True, nogil=True, inline="always")
def _arrays(record, t, like):
    """Tile t's images: (x or dx, y or dout, mask: no rows where there is none)."""
    N, C, H, W, OH, OW = record[P_N], record[P_C], record[P_H], record[P_W], record[P_OH], record[P_OW]
    n0, n1 = N * t // record[TILES], N * (t + 1) // record[TILES]
    size = like.itemsize
    x = carray(_at(record[P_X] + n0 * C * H * W * size, like), (n1 - n0, C, H, W))
    y = carray(_at(record[P_Y] + n0 * C * OH * OW * size, like), (n1 - n0, C, OH, OW))
    rows = n1 - n0 if record[P_MASK] else 0
    mask = carray(_at(record[P_MASK] + n0 * C * OH * OW * 4, _MASK), (rows, C, OH, OW))
    return x, y, mask


@njit(cache=True, nogil=True, inline="always")
def _geometry(record):
    return record[P_KH], record[P_KW], record[P_SH], record[P_SW], record[P_PH], record[P_PW]


# each kernel's tile (one entry each in ops/cpu/team_jobs.py: a net compiles the kernels it uses)
@njit(cache=True, nogil=True)
def ave3x3_forward_tile(record, t, like):
    x, y, _ = _arrays(record, t, like)
    pool.avepool3x3_forward(x, y, *_geometry(record)[2:])


@njit(cache=True, nogil=True)
def ave_forward_tile(record, t, like):
    x, y, _ = _arrays(record, t, like)
    pool.avepool_forward(x, y, *_geometry(record))


@njit(cache=True, nogil=True)
def max2x2_forward_tile(record, t, like):
    x, y, mask = _arrays(record, t, like)
    pool.maxpool2x2_forward(x, y, mask)


@njit(cache=True, nogil=True)
def max3x3_forward_tile(record, t, like):
    x, y, mask = _arrays(record, t, like)
    pool.maxpool3x3_forward(x, y, mask, *_geometry(record)[2:])


@njit(cache=True, nogil=True)
def max_forward_tile(record, t, like):
    x, y, mask = _arrays(record, t, like)
    pool.maxpool_forward(x, y, mask, *_geometry(record))


@njit(cache=True, nogil=True)
def max_backward_tile(record, t, like):
    dx, dout, mask = _arrays(record, t, like)
    pool.maxpool_backward(dout, mask, dx)


@njit(cache=True, nogil=True)
def ave3x3_backward_tile(record, t, like):
    dx, dout, _ = _arrays(record, t, like)
    pool.avepool3x3_backward(dout, dx, *_geometry(record)[2:])


@njit(cache=True, nogil=True)
def ave_backward_tile(record, t, like):
    dx, dout, _ = _arrays(record, t, like)
    pool.avepool_backward(dout, dx, *_geometry(record))
