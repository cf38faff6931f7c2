"""LRN across channels (lrn.py) as team jobs (exec/team.py; run by ops/cpu/team_jobs.py; posted by
layers/normalization.py): the forward and the backward in tiles of images, min(images,
PHASE_TILES) of them, each backward tile with its own `ratio` scratch; each image's windows are
its own, so the bits are one call's."""
import numpy as np
from numba import carray, njit

from ...exec.claims import HEAD, LRN_BACKWARD, LRN_FORWARD, PHASE_TILES, TILES, write_job
from .blas import address as _address, at as _at
from .lrn import lrn_backward, lrn_forward

_F8 = np.empty(0, np.float64)          # (the constants' dtype, for _at)

# a job's record, from HEAD: its arrays (forward: x, scale, y; backward also dy, dx), shape, the
# window and the address of (alpha, beta, k) as float64
(L_X, L_SCALE, L_Y, L_DY, L_DX, L_R, L_C, L_P, L_N, L_CONSTANTS) = range(HEAD, HEAD + 10)


@njit(cache=True, nogil=True)
def _job(record, kind, x, scale, y, dy, dx, n, constants):
    R, C, P = x.shape
    fields = (_address(x), _address(scale), _address(y), _address(dy), _address(dx), R, C, P, n,
              _address(constants))
    write_job(record, kind, min(R, PHASE_TILES), 0, 0, 0, x.itemsize, fields)


@njit(cache=True, nogil=True)
def forward_job(record, x, scale, y, n, constants):
    """The job (into record) of lrn_forward(x, scale, y, n, *constants); constants: float64
    (alpha, beta, k)."""
    _job(record, LRN_FORWARD, x, scale, y, y, y, n, constants)


@njit(cache=True, nogil=True)
def backward_job(record, x, y, dy, scale, dx, n, constants):
    """The job (into record) of lrn_backward(x, y, dy, scale, dx, ratio, n, alpha, beta)."""
    _job(record, LRN_BACKWARD, x, scale, y, dy, dx, n, constants)


@njit(cache=True, nogil=True, inline="always")
def _rows(record, field, t, like):
    R, C, P = record[L_R], record[L_C], record[L_P]
    r0, r1 = R * t // record[TILES], R * (t + 1) // record[TILES]
    return carray(_at(record[field] + r0 * C * P * like.itemsize, like), (r1 - r0, C, P))


@njit(cache=True, nogil=True)
def forward_tile(record, t, like):
    """Tile t of a forward_job: its images."""
    alpha, beta, k = carray(_at(record[L_CONSTANTS], _F8), (3,))
    lrn_forward(_rows(record, L_X, t, like), _rows(record, L_SCALE, t, like), _rows(record, L_Y, t, like),
                record[L_N], alpha, beta, k)


@njit(cache=True, nogil=True)
def backward_tile(record, t, like):
    """Tile t of a backward_job: its images."""
    constants = carray(_at(record[L_CONSTANTS], _F8), (3,))
    ratio = np.empty((record[L_C], record[L_P]), like.dtype)
    lrn_backward(_rows(record, L_X, t, like), _rows(record, L_Y, t, like), _rows(record, L_DY, t, like),
                 _rows(record, L_SCALE, t, like), _rows(record, L_DX, t, like), ratio, record[L_N], constants[0],
                 constants[1])
