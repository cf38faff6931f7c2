"""Copies of rows of numbers (Concat's and Slice's, layers/utility.py, through team_call.copy_rows)
as team jobs (exec/team.py; run by ops/cpu/team_jobs.py): dst[r * dst_step + j] = src[r * src_step
+ j] for the rows r < rows and j < length, in min(rows, PHASE_TILES, numbers // TILE_NUMBERS)
tiles of rows, at least one. A copy moves every number as it is, so the bits are NumPy's."""
from numba import carray, njit

from ...exec.claims import COPY_ROWS, HEAD, PHASE_TILES, TILES, write_job
from .blas import address as _address, at as _at
from .eltwise_team import TILE_NUMBERS

# a job's record, from HEAD: the arrays' addresses, their steps from one row to the next (in
# numbers), the rows and the numbers a row
(K_SRC, K_SRC_STEP, K_DST, K_DST_STEP, K_ROWS, K_LENGTH) = range(HEAD, HEAD + 6)


@njit(cache=True, nogil=True)
def copy_job(record, src, dst, rows, length, src_step, dst_step):
    """The job (into record) of the copy above (src, dst: flat arrays holding every row)."""
    tiles = max(1, min(rows, PHASE_TILES, rows * length // TILE_NUMBERS))
    write_job(record, COPY_ROWS, tiles, 0, 0, 0, src.itemsize,
              (_address(src), src_step, _address(dst), dst_step, rows, length))


@njit(cache=True, nogil=True)
def copy_tile(record, t, like):
    """Tile t of a copy_job: its rows."""
    rows, length, size = record[K_ROWS], record[K_LENGTH], like.itemsize
    for r in range(rows * t // record[TILES], rows * (t + 1) // record[TILES]):
        src = carray(_at(record[K_SRC] + r * record[K_SRC_STEP] * size, like), (length,))
        dst = carray(_at(record[K_DST] + r * record[K_DST_STEP] * size, like), (length,))
        for j in range(length):
            dst[j] = src[j]
