"""Running a team's jobs (exec/team.py): the lead's part (run_job) and the helpers' loop (serve),
for every job kind (exec/claims.py's KINDS: winograd_team.py's and gemms_team.py's tiles)."""
import numpy as np
from numba import njit

from ...exec.claims import (CONV, IMAGE_GEMMS, ITEMSIZE, KIND, WEIGHT_GRAD, WEIGHTS, claim, close_job, finish,
                            open_job, posted, stopped)
from .gemms_team import image_gemms_tile
from .winograd_team import conv_tile, weight_grad_tile, weights_tile


@njit(cache=True, nogil=True)
def _tile(record, t, like):
    """Tile t of the job in record; whether it went without an error (a tile that fails still
    counts as done, so that no thread waits for it for ever)."""
    kind = record[KIND]
    try:
        if kind == CONV:
            conv_tile(record, t, like)
        elif kind == IMAGE_GEMMS:
            image_gemms_tile(record, t, like)
        elif kind == WEIGHTS:
            weights_tile(record, t, like)
        elif kind == WEIGHT_GRAD:
            weight_grad_tile(record, t, like)
        else:
            return False
    except Exception:       # noqa: BLE001 - (Numba: an allocation that failed) the lead raises
        return False
    return True


@njit(cache=True, nogil=True)
def _tiles(flags, record, gen, like):
    """Take tiles of job gen until none is left; how many this thread took."""
    taken = 0
    t = claim(flags, record, gen)
    while t >= 0:
        finish(flags, _tile(record, t, like))
        taken += 1
        t = claim(flags, record, gen)
    return taken


@njit(cache=True, nogil=True)
def _lead(flags, record, like):
    gen = open_job(flags)
    _tiles(flags, record, gen, like)
    return close_job(flags, record, gen)


def run_job(team, like):
    """Post the job just written into team.record (like: an empty array of its dtype), take its
    tiles with the team's helpers, and return once the last is done."""
    if not _lead(team.flags, team.record, like):
        raise MemoryError("a convolution's tile failed (out of memory?)")


@njit(cache=True, nogil=True)
def serve(flags, record, run):
    """A helper: take tiles of the jobs posted on `flags` until the run `run` ends for this team;
    how many it took."""
    f32, f64 = np.empty(0, np.float32), np.empty(0, np.float64)
    seen, taken = -1, 0
    while not stopped(flags, run):
        gen = posted(flags)          # between jobs: the lead's claims stay in its core's cache
        if gen == seen:
            continue
        seen = gen
        taken += _tiles(flags, record, gen, f64) if record[ITEMSIZE] == 8 else _tiles(flags, record, gen, f32)
    return taken
