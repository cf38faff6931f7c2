"""BatchNorm's passes over a share's rows (channels.py's moments, norm_scale_relu.py's chain) as
team jobs (exec/team.py; run by ops/cpu/team_jobs.py; called through channel_passes.py).

The sums (the moments; the chain's gradient sums) go in tiles of channels: each channel's lanes
add the images in the same order whichever tile holds it (the kernels' `_part`). The element-wise
passes (the chain's forward and backward) go in tiles of images. So the bits are one call's.
Each job has min(channels or images, PHASE_TILES) tiles, fixed by its shape."""
import numpy as np
from numba import carray, njit

from ...exec.claims import HEAD, MOMENTS, NSR_BACKWARD, NSR_FORWARD, NSR_SUMS, PHASE_TILES, TILES, write_job
from .blas import address as _address, at as _at
from .channels import channel_moments_part
from .norm_scale_relu import norm_scale_relu_backward, norm_scale_relu_forward, norm_scale_relu_grad_sums_part

_F8, _BOOL = np.empty(0, np.float64), np.empty(0, np.bool_)      # (their dtypes, for _at)


@njit(cache=True, nogil=True, inline="always")
def _part(t, tiles, n):
    """Tile t's part of range(n), of `tiles`."""
    return n * t // tiles, n * (t + 1) // tiles


@njit(cache=True, nogil=True, inline="always")
def _rows(record, field, n0, n1, C, S, like):
    """Rows n0..n1 of the (N, C, S) array at record[field]."""
    return carray(_at(record[field] + n0 * C * S * like.itemsize, like), (n1 - n0, C, S))


@njit(cache=True, nogil=True, inline="always")
def _vector(record, field, C, like):
    """The (C,) array at record[field]."""
    return carray(_at(record[field], like), (C,))


# moments_job's record, from HEAD
(M_X, M_N, M_C, M_S, M_MEAN, M_M2) = range(HEAD, HEAD + 6)


@njit(cache=True, nogil=True)
def moments_job(record, x, count, mean, m2):
    """The job (into record) of channel_moments(x, count, mean, m2); count is written here."""
    N, C, S = x.shape
    count[0] = N * S
    write_job(record, MOMENTS, min(C, PHASE_TILES), 0, 0, 0, x.itemsize,
              (_address(x), N, C, S, _address(mean), _address(m2)))


@njit(cache=True, nogil=True)
def moments_tile(record, t, like):
    """Tile t of a moments_job: its channels."""
    N, C, S = record[M_N], record[M_C], record[M_S]
    c0, c1 = _part(t, record[TILES], C)
    channel_moments_part(_rows(record, M_X, 0, N, C, S, like), _vector(record, M_MEAN, C, _F8),
                         _vector(record, M_M2, C, _F8), c0, c1)


# forward_job's record, from HEAD
(F_X, F_N, F_C, F_S, F_A, F_B, F_GAMMA, F_BETA, F_K, F_RELU, F_Y, F_XHAT, F_KEEP, F_POS, F_MASK) = \
    range(HEAD, HEAD + 15)


@njit(cache=True, nogil=True)
def forward_job(record, x, a, b, gamma, beta, k, relu, y, xhat, pos):
    """The job (into record) of norm_scale_relu_forward with these arguments, in tiles of images."""
    N, C, S = x.shape
    fields = (_address(x), N, C, S, _address(a), _address(b), _address(gamma), _address(beta), _address(k),
              int(relu), _address(y), _address(xhat), int(xhat.shape[0] == N), _address(pos), int(pos.shape[0] == N))
    write_job(record, NSR_FORWARD, min(N, PHASE_TILES), 0, 0, 0, x.itemsize, fields)


@njit(cache=True, nogil=True)
def forward_tile(record, t, like):
    """Tile t of a forward_job: its images."""
    N, C, S = record[F_N], record[F_C], record[F_S]
    n0, n1 = _part(t, record[TILES], N)
    keep, mask = record[F_KEEP], record[F_MASK]
    norm_scale_relu_forward(
        _rows(record, F_X, n0, n1, C, S, like), _vector(record, F_A, C, like), _vector(record, F_B, C, like),
        _vector(record, F_GAMMA, C, like), _vector(record, F_BETA, C, like), _vector(record, F_K, 3, like),
        record[F_RELU] != 0, _rows(record, F_Y, n0, n1, C, S, like),
        _rows(record, F_XHAT, n0 if keep else 0, n1 if keep else 0, C, S, like),
        _rows(record, F_POS, n0 if mask else 0, n1 if mask else 0, C, S, _BOOL))


# sums_job's record, from HEAD
(G_DY, G_N, G_C, G_S, G_XHAT, G_GAMMA, G_BETA, G_K, G_RELU, G_DGAMMA, G_DBETA, G_SUM_DY, G_SUM_DY_XHAT) = \
    range(HEAD, HEAD + 13)


@njit(cache=True, nogil=True)
def sums_job(record, dy, xhat, gamma, beta, k, relu, dgamma, dbeta, sum_dy, sum_dy_xhat):
    """The job (into record) of norm_scale_relu_grad_sums with these arguments, in tiles of
    channels."""
    N, C, S = dy.shape
    fields = (_address(dy), N, C, S, _address(xhat), _address(gamma), _address(beta), _address(k), int(relu),
              _address(dgamma), _address(dbeta), _address(sum_dy), _address(sum_dy_xhat))
    write_job(record, NSR_SUMS, min(C, PHASE_TILES), 0, 0, 0, dy.itemsize, fields)


@njit(cache=True, nogil=True)
def sums_tile(record, t, like):
    """Tile t of a sums_job: its channels."""
    N, C, S = record[G_N], record[G_C], record[G_S]
    c0, c1 = _part(t, record[TILES], C)
    norm_scale_relu_grad_sums_part(
        _rows(record, G_DY, 0, N, C, S, like), _rows(record, G_XHAT, 0, N, C, S, like),
        _vector(record, G_GAMMA, C, like), _vector(record, G_BETA, C, like), _vector(record, G_K, 3, like),
        record[G_RELU] != 0, _vector(record, G_DGAMMA, C, _F8), _vector(record, G_DBETA, C, _F8),
        _vector(record, G_SUM_DY, C, _F8), _vector(record, G_SUM_DY_XHAT, C, _F8), c0, c1)


# backward_job's record, from HEAD
(B_DY, B_N, B_C, B_S, B_XHAT, B_GAMMA, B_BETA, B_MEAN_DY, B_MEAN_DY_XHAT, B_INV_STD, B_K, B_RELU, B_DX) = \
    range(HEAD, HEAD + 13)


@njit(cache=True, nogil=True)
def backward_job(record, dy, xhat, gamma, beta, mean_dy, mean_dy_xhat, inv_std, k, relu, dx):
    """The job (into record) of norm_scale_relu_backward with these arguments, in tiles of images."""
    N, C, S = dy.shape
    fields = (_address(dy), N, C, S, _address(xhat), _address(gamma), _address(beta), _address(mean_dy),
              _address(mean_dy_xhat), _address(inv_std), _address(k), int(relu), _address(dx))
    write_job(record, NSR_BACKWARD, min(N, PHASE_TILES), 0, 0, 0, dy.itemsize, fields)


@njit(cache=True, nogil=True)
def backward_tile(record, t, like):
    """Tile t of a backward_job: its images."""
    N, C, S = record[B_N], record[B_C], record[B_S]
    n0, n1 = _part(t, record[TILES], N)
    norm_scale_relu_backward(
        _rows(record, B_DY, n0, n1, C, S, like), _rows(record, B_XHAT, n0, n1, C, S, like),
        _vector(record, B_GAMMA, C, like), _vector(record, B_BETA, C, like),
        _vector(record, B_MEAN_DY, C, like), _vector(record, B_MEAN_DY_XHAT, C, like),
        _vector(record, B_INV_STD, C, like), _vector(record, B_K, 3, like), record[B_RELU] != 0,
        _rows(record, B_DX, n0, n1, C, S, like))
