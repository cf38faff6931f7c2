"""Running a team's jobs (exec/team.py): the lead's part (run_job) and the helpers' loop (serve),
for every job kind (exec/claims.py's kinds: winograd_team.py's and gemms_team.py's tiles). Both
are one compiled function, `_work`, over the tiles: each level of compiled calls above the tiles
is optimised again with all of them when first compiled (1.5-2 s each on a cold cache)."""
from numba import njit

from ...exec.claims import (CONV, IMAGE_GEMMS, ITEMSIZE, KIND, WEIGHT_GRAD, WEIGHTS, claim, close_job, finish,
                            open_job, posted, stopped)
from .gemms_team import image_gemms_tile
from .winograd_team import conv_tile, weight_grad_tile, weights_tile


@njit(cache=True, nogil=True)
def _work(flags, record, like, run, lead):
    """The lead (`lead`): post the job written into record, take its tiles until none is left, and
    return 1 once every tile is done without an error, else 0. A helper: take tiles of the jobs
    posted whose arrays have like's dtype until the run `run` ends; return how many it took. A
    tile that raises still counts as done, so that no thread waits for it for ever."""
    gen = open_job(flags) if lead else -1
    seen, taken = -1, 0
    while True:
        if not lead:
            if stopped(flags, run):
                return taken
            gen = posted(flags)          # between jobs: the lead's claims stay in its core's cache
            if gen == seen or record[ITEMSIZE] != like.itemsize:
                seen = gen
                continue
            seen = gen
        t = claim(flags, record, gen)
        while t >= 0:
            kind, ok = record[KIND], True
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
                    ok = False
            except Exception:       # noqa: BLE001 - (Numba: an allocation that failed) the lead raises
                ok = False
            finish(flags, ok)
            taken += 1
            t = claim(flags, record, gen)
        if lead:
            return 1 if close_job(flags, record, gen) else 0


def run_job(team, like):
    """Post the job just written into team.record (like: an empty array of its dtype), take its
    tiles with the team's helpers, and return once the last is done."""
    if not _work(team.flags, team.record, like, 0, True):
        raise MemoryError("a convolution's tile failed (out of memory?)")


def serve(flags, record, run, like):
    """A helper: take tiles of the jobs posted on `flags` whose arrays have like's dtype (a net's
    one) until the run `run` ends for this team; how many it took."""
    return _work(flags, record, like, run, False)
