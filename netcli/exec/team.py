"""Teams: threads that help one share's kernels, where a run has more threads than shares (a batch
of 16 on 2 threads, of 32 on 4 or more: exec/cpu.py).

A kernel call that can be cut posts a *job*: a record of its arrays (their addresses) and sizes,
and a fixed number of *tiles* that depend only on those sizes, each writing its own part of the
outputs (ops/cpu/winograd_team.py, gemms_team.py). The share's thread (the team's lead) and its
helpers take the tiles one at a time, in order, until none is left; a job's tiles come in up to three phases,
and a tile waits until every tile of the phases before it is done. All of it runs in compiled
code without the GIL: the helpers wait for a job in a loop of machine code (ops/cpu/team_jobs.py,
serve) for as long as the run lasts, so a hand-over costs what a read of a shared flag does, not a
wake-up of a sleeping thread (25-60 us on a virtual machine: why tiles handed over in Python did
not pay, exec/threads.py; the claims themselves: exec/claims.py). Whoever runs a tile computes it
the same way, so the bits do not depend on the team's size, and a lead without helpers (one
thread) runs every tile itself."""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager

import numpy as np

from .claims import FLAGS, RECORD, STOP
from .spin import ping, pong, publish, wait_change

# Helpers only where a cache line crosses from the lead's core to a helper's and back within
# NEAR_NS: on a 2-vCPU AMD EPYC VM, the host moved the two vCPUs between one core complex (95-110
# ns) and two (~500 ns) from one minute to the next; ResNet-20 at batch 16 on 2 threads then took
# 22.5-22.9 ms an iteration with a helper and 28-29 without where near, but 31 against 28 where
# far (each tile's inputs written on the other core). Measured again every RECHECK_S seconds (a
# round trip of ROUNDS, 25-130 us), MEASURES times, the least counting: the first measure after a
# pause reads high (near vCPUs, 100-120 ns a trip: 186-676 ns in 6 first measures of 10, one
# second apart, and 97-121 in every second and third), which left teams out half the time where
# they help (a measure whose worker does not come waits for it MEASURES times as long); who
# helps changes no bit.
NEAR_NS, RECHECK_S, ROUNDS, MEASURES = 250, 1.0, 256, 3
_near = {"at": None, "near": False, "held": False}


class Team:
    """One share thread's team: its flags and job record, the number of the run it serves, its
    threads in that run (the lead among them), and how many tiles its helpers took."""

    def __init__(self, dtype=np.float32):
        self.like = np.empty(0, dtype)      # the dtype of the jobs its helpers take
        self.flags = np.zeros(FLAGS, np.int64)
        self.record = np.zeros(RECORD, np.int64)
        self.run = 0
        self.size = 1
        self.helped = 0          # tiles its helpers took, all runs together


_local = threading.local()
_count = threading.Lock()


def current():
    """The calling thread's team (a team of its own, without helpers, outside a team run)."""
    team = getattr(_local, "team", None)
    if team is None:
        team = _local.team = Team()
    return team


def with_helpers(*arrays):
    """The calling thread's team where it has helpers and every array is one block of memory (a
    job's tiles address them so: ops/cpu/channel_passes.py, depthwise_passes.py), else None."""
    team = current()
    if team.size > 1 and all(a.flags.c_contiguous for a in arrays):
        return team
    return None


def lead(team, fn, *args):
    """fn(*args) on this thread as the lead of `team`; its helpers go when it returns."""
    before = current()
    _local.team = team
    try:
        return fn(*args)
    finally:
        publish(team.flags, STOP, team.run)      # first: the helpers go, whatever happens next
        _local.team = before


def help_lead(team):
    """Take tiles of the jobs `team`'s lead posts until its run ends (ops/cpu/team_jobs.py)."""
    from ..ops.cpu.team_jobs import serve
    taken = serve(team.flags, team.record, team.run, team.like)
    with _count:
        team.helped += taken


def teams_for(leads, ranges, idx, net):
    """A Team for each of a run's `leads` share threads where the run has threads to spare and
    work for them: more threads than leads, each on a core of its own (threads.placement: the
    helpers wait by spinning), shares of two images or more (one image: batch-1 inference's
    tiles, threads.tiles) and a layer of idx (net's) with team jobs (its `team_jobs`: a
    Convolution's algorithm, a BatchNorm, Pooling, LRN across channels); else None."""
    from . import threads
    helped = [net.layers[i] for i in idx if getattr(net.layers[i], "team_jobs", False)]
    if threads.count() <= leads or not threads.spin_reads() or min(hi - lo for lo, hi in ranges) < 2 \
            or not helped:
        return None
    return [Team(helped[0].dtype) for _ in range(leads)]


def staffed(work, blocks, teams):
    """(fn, ranges) for threads.run: work(j, first, stop) for each block j of shares, run as the
    lead of team j, and every other thread helping a team. A team's threads are neighbours: the
    threads of run chunks first(j) .. first(j + 1) - 1, which keep those cores (threads.placement),
    so that on a machine whose cores share caches in groups a team's tiles stay within one."""
    from . import threads
    if not teams or not near():
        return work, blocks
    for team in teams:
        team.run += 1
    leads, n = len(blocks), threads.count()
    first = [-(-j * n // leads) for j in range(leads + 1)]
    member = [j for j in range(leads) for _ in range(first[j], first[j + 1])]
    for j, team in enumerate(teams):
        team.size = first[j + 1] - first[j]

    def chunk(c, lo, hi):
        j = member[c]
        if c == first[j]:
            lead(teams[j], work, j, lo, hi)
        else:
            help_lead(teams[j])
    ranges = [(0, 0)] * n
    for j, block in enumerate(blocks):
        ranges[first[j]] = block
    return chunk, ranges


def round_trip_ns():
    """Nanoseconds for a cache line to go from the calling thread's core to the first worker's and
    back (the mean of ROUNDS trips); None where the worker did not come in time."""
    from . import threads
    flags, reads, took = np.zeros(16, np.int64), threads.SPIN_READS, []
    ping(flags, 0, 0), pong(np.zeros(16, np.int64), 0, 0)     # compiled (or loaded) here, not while timed

    def both(i, lo, hi):
        if i == 1:
            pong(flags, ROUNDS, reads)
        elif wait_change(flags, 8, 0, 16 * reads) == 1:     # the worker has come (at its first: ~10 ms)
            t = time.perf_counter()
            if ping(flags, ROUNDS, reads):
                took.append(time.perf_counter() - t)
    threads.run(both, [(0, 0), (0, 0)])
    return took[0] / ROUNDS * 1e9 if took else None


def near():
    """Whether a team's threads are near enough to help each other (NEAR_NS), as last measured
    (the least of MEASURES measures; not measured again while near_held)."""
    now = time.monotonic()
    if _near["at"] is None or (now - _near["at"] > RECHECK_S and not _near["held"]):
        least = least_round_trip_ns()
        if least is not None:               # (else: again at the next run)
            _near["near"], _near["at"] = least <= NEAR_NS, now
    return _near["near"]


@contextmanager
def near_held():
    """near()'s answer kept from its next measure to the end of the block: each run in it has
    helpers, or none has. A profile (commands/timing.py) warms up the kernels its timed passes
    call: were the answer to change between them, a timed call would run the other kernels (the
    teams' or the lone thread's) for its first time and time their compile (depthwise
    convolution's team kernels on a fresh cache, 2-vCPU Intel Xeon: 3.6 s in a forward)."""
    was = _near["held"]
    if not was:
        _near["at"] = None                   # measured afresh at the block's first run
    _near["held"] = True
    try:
        yield
    finally:
        _near["held"] = was


def least_round_trip_ns(measures=MEASURES):
    """The least of `measures` round_trip_ns() (the first after a pause reads high: NEAR_NS's
    comment); None where the worker never came."""
    trips = [ns for ns in (round_trip_ns() for _ in range(measures)) if ns is not None]
    return min(trips) if trips else None
