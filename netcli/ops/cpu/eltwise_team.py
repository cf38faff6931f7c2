"""An Eltwise SUM with the ReLU on it (eltwise.py's weighted_sum_relu and its backward; the chain
exec/fusion.py's SumReLU runs), and a ReLU alone (relu.py's kernels; layers/neuron.py's ReLU
through relu_passes.py), as team jobs (exec/team.py; run by ops/cpu/team_jobs.py): the numbers
in min(PHASE_TILES, size // TILE_NUMBERS) blocks, at least one; each number is its own, so the
bits are one call's."""
from numba import carray, njit

from ...exec.claims import (HEAD, PHASE_TILES, RELU_BACKWARD, RELU_FORWARD, SUM_RELU_BACKWARD, SUM_RELU_FORWARD,
                            TILES, write_job)
from .blas import address as _address, at as _at
from .eltwise import weighted_sum_relu, weighted_sum_relu_backward
from .relu import relu_backward, relu_forward

TILE_NUMBERS = 4096         # numbers a block has at least (a hand-over costs about as much as 1,000)

# a job's record, from HEAD: forward a, b, y; backward y, dy, da, db (0: not wanted); the size;
# the address of (ca, cb, slope) in the arrays' dtype. A ReLU's: x as a, y; y, dy, dx as a; its
# k holds the slope first
(E_A, E_B, E_Y, E_DY, E_SIZE, E_K) = range(HEAD, HEAD + 6)


@njit(cache=True, nogil=True)
def _job(record, kind, a, b, y, dy, k):
    fields = (_address(a) if a.size else 0, _address(b) if b.size else 0, _address(y), _address(dy), y.size,
              _address(k))
    write_job(record, kind, max(1, min(PHASE_TILES, y.size // TILE_NUMBERS)), 0, 0, 0, y.itemsize, fields)


@njit(cache=True, nogil=True)
def forward_job(record, a, b, y, k):
    """The job (into record) of weighted_sum_relu(a, k[0], b, k[1], k[2], y) (flat arrays)."""
    _job(record, SUM_RELU_FORWARD, a, b, y, y, k)


@njit(cache=True, nogil=True)
def backward_job(record, y, dy, da, db, k):
    """The job (into record) of weighted_sum_relu_backward(y, dy, k[2], k[0], da, k[1], db); da
    or db empty: not wanted."""
    _job(record, SUM_RELU_BACKWARD, da, db, y, dy, k)


@njit(cache=True, nogil=True, inline="always")
def _part(record, field, t, like):
    """Tile t's block of the flat array at record[field] (none where its address is 0)."""
    n = record[E_SIZE]
    i0, i1 = n * t // record[TILES], n * (t + 1) // record[TILES]
    if record[field] == 0:
        i1 = i0
    return carray(_at(record[field] + i0 * like.itemsize, like), (i1 - i0,))


@njit(cache=True, nogil=True)
def forward_tile(record, t, like):
    k = carray(_at(record[E_K], like), (3,))
    weighted_sum_relu(_part(record, E_A, t, like), k[0], _part(record, E_B, t, like), k[1], k[2],
                      _part(record, E_Y, t, like))


@njit(cache=True, nogil=True)
def backward_tile(record, t, like):
    k = carray(_at(record[E_K], like), (3,))
    weighted_sum_relu_backward(_part(record, E_Y, t, like), _part(record, E_DY, t, like), k[2], k[0],
                               _part(record, E_A, t, like), k[1], _part(record, E_B, t, like))


@njit(cache=True, nogil=True)
def relu_forward_job(record, x, y, k):
    """The job (into record) of relu_forward(x, y, k[0]) (flat arrays; y may be x)."""
    _job(record, RELU_FORWARD, x, y[:0], y, y, k)


@njit(cache=True, nogil=True)
def relu_backward_job(record, y, dy, dx, k):
    """The job (into record) of relu_backward(y, dy, dx, k[0]) (flat arrays; dx may be dy)."""
    _job(record, RELU_BACKWARD, dx, dx[:0], y, dy, k)


@njit(cache=True, nogil=True)
def relu_forward_tile(record, t, like):
    k = carray(_at(record[E_K], like), (1,))
    relu_forward(_part(record, E_A, t, like), _part(record, E_Y, t, like), k[0])


@njit(cache=True, nogil=True)
def relu_backward_tile(record, t, like):
    k = carray(_at(record[E_K], like), (1,))
    relu_backward(_part(record, E_Y, t, like), _part(record, E_DY, t, like), _part(record, E_A, t, like), k[0])
