"""The compiled side of teams (exec/team.py): how a lead posts a job and how every member of
the team claims its tiles, phase by phase, reading and writing the team's flags atomically
(exec/spin.py) without the GIL.

Flags (int64, 64 bytes apart): the job posted (its generation, 31 bits, wrapping), the next tile
to take (the generation in the high bits, so that a late helper never takes a tile of the next
job), the tiles done, the run whose end lets the helpers go, and whether a tile failed. A job's
record: its kind (the kinds below), its tiles, the ends of its first two phases, the GEMM's
address, its arrays' itemsize, the address of the compiled function that runs a tile of its kind
(ops/cpu/team_jobs.py writes it), then the job's own fields from HEAD on (ops/cpu/winograd_team.py,
gemms_team.py, channels_team.py, depthwise_team.py, pool_team.py, lrn_team.py, eltwise_team.py,
copy_team.py, direct_team.py; ops/cpu/team_jobs.py runs them)."""
from .. import ops  # noqa: F401 - Numba's code generation set first (ops/codegen.py)
from numba import njit

from .spin import _add, _cas, _load, _store

POST, NEXT, DONE, STOP, FAILED, FLAGS = 0, 8, 16, 24, 32, 40      # FLAGS: the flags' length
KIND, TILES, PHASE1, PHASE2, GEMM, ITEMSIZE, TILE, HEAD, RECORD = 0, 1, 2, 3, 4, 5, 6, 8, 64   # RECORD: its length
SHIFT, MASK, GENERATIONS = 32, (1 << 32) - 1, (1 << 31) - 1
# the job kinds: a block's Winograd convolution, its weight gradient's transform, per-image GEMMs,
# the weights' transform (or its adjoint); BatchNorm's moments, and the BatchNorm + Scale + ReLU
# chain's forward, gradient sums and backward; a depthwise convolution's forward and backward
# (planes in rows, or channels last); LRN's forward and backward; an Eltwise SUM's with its ReLU
# (exec/fusion.py's SumReLU); pooling's; a ReLU's; a copy of rows (Concat's and Slice's); the direct
# convolution's forward and backward (ops/cpu/direct_team.py). Numbered once, for good: a job
# writer compiled into Numba's cache keeps the number it was compiled with while its own file is
# unchanged.
CONV, WEIGHT_GRAD, IMAGE_GEMMS, WEIGHTS = 1, 2, 3, 4
MOMENTS, NSR_FORWARD, NSR_SUMS, NSR_BACKWARD = 5, 6, 7, 8
DW_FORWARD, DW_BACKWARD, NHWC_FORWARD, NHWC_BACKWARD = 9, 10, 11, 12
LRN_FORWARD, LRN_BACKWARD, SUM_RELU_FORWARD, SUM_RELU_BACKWARD = 13, 14, 15, 16
POOL_FORWARDS, POOL_BACKWARDS = (17, 18, 19, 20, 21), (22, 23, 24)       # a kind for each kernel (pool_team.py)
RELU_FORWARD, RELU_BACKWARD, COPY_ROWS = 25, 26, 27
DIRECT_FORWARD, DIRECT_BACKWARD = 28, 29
# tiles a job's phase aims at: a tile's hand-over costs the moves of two cache lines between
# cores (claim, finish: 0.25 us each on a 2-vCPU AMD EPYC VM whose vCPUs sit apart), so few
PHASE_TILES = 8


@njit(cache=True, nogil=True)
def write_job(record, kind, tiles, phase1, phase2, fn, itemsize, fields):
    """A job's record: its header, then `fields` (a tuple of ints) from HEAD on."""
    for i in range(len(fields)):
        record[HEAD + i] = fields[i]
    record[KIND], record[TILES], record[PHASE1], record[PHASE2] = kind, tiles, phase1, phase2
    record[GEMM], record[ITEMSIZE] = fn, itemsize


@njit(cache=True, nogil=True)
def open_job(flags):
    """Post the job whose record was just written (by the lead); its generation, never 0 (claim)."""
    gen = (_load(flags, POST) + 1) & GENERATIONS
    if gen == 0:
        gen = 1
    _store(flags, DONE, 0)
    _store(flags, NEXT, gen << SHIFT)
    _store(flags, POST, gen)
    return gen


@njit(cache=True, nogil=True)
def claim(flags, record, gen):
    """The next tile of job `gen` for the calling thread, returned once the tiles of the phases
    before its own are done; -1 where none is left. (The record is read between the two reads of
    the next tile that agree: the lead rewrites it only after closing the job, an atomic
    read-modify-write of that number which no later write passes.) Generation 0 is no job: a
    fresh team's flags read generation 0, tile 0, and a helper that took that for a job ran tile 0
    of the first record while the lead was still writing it (and its tile function's address: a
    crash, once in some hundred trainings on 2 threads)."""
    if gen == 0:
        return -1
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
def finish(flags, ok):
    """A tile is done (ok: without an error; else the job failed, and the lead says so)."""
    if not ok:
        _store(flags, FAILED, 1)
    _add(flags, DONE, 1)


@njit(cache=True, nogil=True)
def close_job(flags, record, gen):
    """The lead, after its last tile: wait until every tile is done, then let no one take more;
    whether every tile went without an error."""
    while _load(flags, DONE) < record[TILES]:
        pass
    while True:
        v = _load(flags, NEXT)
        if _cas(flags, NEXT, v, (gen << SHIFT) | MASK):
            break
    failed = _load(flags, FAILED) != 0
    _store(flags, FAILED, 0)
    return not failed


@njit(cache=True, nogil=True)
def posted(flags):
    """The generation of the job posted last."""
    return _load(flags, POST)


@njit(cache=True, nogil=True)
def stopped(flags, run):
    """Whether the run `run` has ended for this team (its helpers go)."""
    return _load(flags, STOP) >= run
