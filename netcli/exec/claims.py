"""The compiled side of teams (exec/team.py): how a lead posts a job and how every member of
the team claims its tiles, phase by phase, reading and writing the team's flags atomically
(exec/spin.py) without the GIL.

Flags (int64, 64 bytes apart): the job posted (its generation), the next tile to take (the
generation in the high bits, so that a late helper never takes a tile of the next job), the
tiles done, and the run whose end lets the helpers go. A job's record: its kind, its tiles, the
ends of its first two phases, the GEMM's address, its arrays' itemsize, then the job's own fields
from HEAD on (ops/cpu/winograd_team.py)."""
from numba import njit

from .spin import _add, _cas, _load, _store

POST, NEXT, DONE, STOP = 0, 8, 16, 24
KIND, TILES, PHASE1, PHASE2, GEMM, ITEMSIZE, HEAD = 0, 1, 2, 3, 4, 5, 8
SHIFT, MASK = 32, (1 << 32) - 1


@njit(cache=True, nogil=True)
def open_job(flags):
    """Post the job whose record was just written (by the lead); its generation."""
    gen = _load(flags, POST) + 1
    _store(flags, DONE, 0)
    _store(flags, NEXT, gen << SHIFT)
    _store(flags, POST, gen)
    return gen


@njit(cache=True, nogil=True)
def claim(flags, record, gen):
    """The next tile of job `gen` for the calling thread, returned once the tiles of the phases
    before its own are done; -1 where none is left. (The record is read between the two reads of
    the next tile that agree: the lead rewrites it only after closing the job, which changes that.)"""
    while True:
        v = _load(flags, NEXT)
        t = v & MASK
        if (v >> SHIFT) != gen or t >= record[TILES]:
            return -1
        if _cas(flags, NEXT, v, v + 1):
            break
    start = record[PHASE2] if t >= record[PHASE2] > 0 else (record[PHASE1] if t >= record[PHASE1] > 0 else 0)
    while _load(flags, DONE) < start:
        pass
    return t


@njit(cache=True, nogil=True)
def finish(flags):
    """A tile is done."""
    _add(flags, DONE, 1)


@njit(cache=True, nogil=True)
def close_job(flags, record, gen):
    """The lead, after its last tile: wait until every tile is done, then let no one take more."""
    while _load(flags, DONE) < record[TILES]:
        pass
    _store(flags, NEXT, (gen << SHIFT) | MASK)


@njit(cache=True, nogil=True)
def posted(flags):
    """The generation of the job posted last."""
    return _load(flags, POST)


@njit(cache=True, nogil=True)
def stopped(flags, run):
    """Whether the run `run` has ended for this team (its helpers go)."""
    return _load(flags, STOP) >= run
