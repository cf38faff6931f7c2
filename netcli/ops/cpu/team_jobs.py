"""Running a team's jobs (exec/team.py): the lead's part and the helpers' loop, for every job kind
(winograd_team.py's, gemms_team.py's)."""
import numpy as np
from numba import njit

from ...exec.claims import ITEMSIZE, KIND, claim, close_job, finish, open_job, posted, stopped
from .gemms_team import IMAGE_GEMMS, image_gemms_tile
from .winograd_team import CONV, WEIGHTS, conv_tile, weight_grad_tile, weights_tile


@njit(cache=True, nogil=True)
def _tiles(flags, record, gen, like):
    """Take tiles of job gen until none is left; how many this thread took."""
    taken = 0
    t = claim(flags, record, gen)
    while t >= 0:
        if record[KIND] == CONV:
            conv_tile(record, t, like)
        elif record[KIND] == IMAGE_GEMMS:
            image_gemms_tile(record, t, like)
        elif record[KIND] == WEIGHTS:
            weights_tile(record, t, like)
        else:
            weight_grad_tile(record, t, like)
        finish(flags)
        taken += 1
        t = claim(flags, record, gen)
    return taken


@njit(cache=True, nogil=True)
def lead(flags, record, like):
    """Post the job just written into record (like: an empty array of its dtype), take its tiles
    with the helpers, and return once the last is done."""
    gen = open_job(flags)
    _tiles(flags, record, gen, like)
    close_job(flags, record, gen)


@njit(cache=True, nogil=True)
def serve(flags, record, run):
    """A helper: take tiles of the jobs posted on `flags` until the run `run` ends for this team;
    how many it took."""
    f32, f64 = np.empty(0, np.float32), np.empty(0, np.float64)
    seen, taken = -1, 0
    while not stopped(flags, run):
        gen = posted(flags)          # between jobs only this line is read: the lead's claims stay in its core
        if gen == seen:
            continue
        seen = gen
        taken += _tiles(flags, record, gen, f64) if record[ITEMSIZE] == 8 else _tiles(flags, record, gen, f32)
    return taken
