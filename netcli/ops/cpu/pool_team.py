"""Pooling (pool.py) as team jobs (exec/team.py; run by ops/cpu/team_jobs.py; posted by
layers/pooling.py): the forward and the backward in tiles of images, min(images, PHASE_TILES) of
them; each image's planes are its own, so the bits are one call's. A job names its kernel by
its variant (FORWARDS, BACKWARDS: the layer's choice from its shape)."""
import numpy as np
from numba import carray, njit

from ...exec.claims import HEAD, PHASE_TILES, POOL_BACKWARD, POOL_FORWARD, TILES, write_job
from . import pool
from .blas import address as _address, at as _at

FORWARDS = ("ave3x3", "ave", "max2x2", "max3x3", "max")      # a forward job's variant: its index here
BACKWARDS = ("max", "ave3x3", "ave")
_MASK = np.empty(0, np.int32)                                 # (the masks' dtype, for _at)

# a job's record, from HEAD: its variant, arrays (the mask: 0 where there is none) and geometry
(P_VARIANT, P_X, P_Y, P_MASK, P_N, P_C, P_H, P_W, P_OH, P_OW, P_KH, P_KW, P_SH, P_SW, P_PH, P_PW) = \
    range(HEAD, HEAD + 16)


@njit(cache=True, nogil=True)
def _job(record, kind, variant, x, y, mask, KH, KW, SH, SW, PH, PW):
    N, C, H, W = x.shape
    fields = (variant, _address(x), _address(y), _address(mask) if mask.shape[0] else 0, N, C, H, W, y.shape[2],
              y.shape[3], KH, KW, SH, SW, PH, PW)
    write_job(record, kind, min(N, PHASE_TILES), 0, 0, 0, x.itemsize, fields)


@njit(cache=True, nogil=True)
def forward_job(record, variant, x, out, mask, KH, KW, SH, SW, PH, PW):
    """The job (into record) of the forward kernel FORWARDS[variant] on x into out (and mask: no
    rows for an average)."""
    _job(record, POOL_FORWARD, variant, x, out, mask, KH, KW, SH, SW, PH, PW)


@njit(cache=True, nogil=True)
def backward_job(record, variant, dout, mask, dx, KH, KW, SH, SW, PH, PW):
    """The job (into record) of the backward kernel BACKWARDS[variant]: dx from dout (and mask)."""
    _job(record, POOL_BACKWARD, variant, dx, dout, mask, KH, KW, SH, SW, PH, PW)


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


@njit(cache=True, nogil=True, inline="always")        # (into its entry: ops/cpu/team_jobs.py)
def forward_tile(record, t, like):
    """Tile t of a forward_job: its images."""
    x, y, mask = _arrays(record, t, like)
    v, KH, KW, SH, SW, PH, PW = (record[P_VARIANT], record[P_KH], record[P_KW], record[P_SH], record[P_SW],
                                 record[P_PH], record[P_PW])
    if v == 0:
        pool.avepool3x3_forward(x, y, SH, SW, PH, PW)
    elif v == 1:
        pool.avepool_forward(x, y, KH, KW, SH, SW, PH, PW)
    elif v == 2:
        pool.maxpool2x2_forward(x, y, mask)
    elif v == 3:
        pool.maxpool3x3_forward(x, y, mask, SH, SW, PH, PW)
    else:
        pool.maxpool_forward(x, y, mask, KH, KW, SH, SW, PH, PW)


@njit(cache=True, nogil=True, inline="always")        # (into its entry: ops/cpu/team_jobs.py)
def backward_tile(record, t, like):
    """Tile t of a backward_job: its images."""
    dx, dout, mask = _arrays(record, t, like)
    v, KH, KW, SH, SW, PH, PW = (record[P_VARIANT], record[P_KH], record[P_KW], record[P_SH], record[P_SW],
                                 record[P_PH], record[P_PW])
    if v == 0:
        pool.maxpool_backward(dout, mask, dx)
    elif v == 1:
        pool.avepool3x3_backward(dout, dx, SH, SW, PH, PW)
    else:
        pool.avepool_backward(dout, dx, KH, KW, SH, SW, PH, PW)
