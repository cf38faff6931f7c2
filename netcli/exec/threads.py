"""netcli's thread pool, used by the executor (netcli/exec/cpu.py) and the update rules. Inside a
task, Numba kernels (nogil) and BLAS run on that thread (or on its team: exec/team.py, whose
helpers are this pool's threads), so BLAS is kept to one thread: two pools (BLAS's and ours, or
Numba's) never spin against each other on the same cores.

The thread count: `set_threads(n)` (the CLI's --threads), else $NETCLI_THREADS, else every usable
core; it may change at any time (results do not depend on it). The threads that compute also flush
subnormal floats to zero (netcli/ops/cpu/fpmode.py).

Where the threads are as many as the usable cores (the default), each keeps one core (placement):
the pool's workers for good, the calling thread while it runs a run(). Unpinned, Linux's wake-up
placement put a woken worker on the core of the thread that woke it after any idle gap (a test,
a snapshot, another process's turn), and the two shared one core for the next 30-60 ms: LeNet at
batch 32 on 2 threads took 8 ms per iteration for 6-7 iterations after a 0.5 s pause, 4.5 ms
after; pinned, 4.5 ms from the first (2-core AMD EPYC VM). With fewer threads than cores nothing
is pinned: other processes (several jobs, MPI ranks that mpiexec did not bind) may want the rest."""
from __future__ import annotations

import os
import sys
import threading

_state = {"n": None, "pool": None, "blas_limited": False, "cpus": None}
_MAIN = threading.main_thread().ident
_alone = threading.local()     # .on: this thread runs a run()'s only chunk, the pool idle (tiles())
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def usable_cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def env_threads():
    """$NETCLI_THREADS as a positive int, None when unset or empty; anything else is an error."""
    from ..errors import NetcliError
    env = os.environ.get("NETCLI_THREADS", "").strip()
    if not env:
        return None
    if not env.isdigit() or int(env) < 1:
        raise NetcliError(f"NETCLI_THREADS must be a whole number of threads >= 1, got {env!r}")
    return int(env)


def placement(n, cpus):
    """The core of each of n threads (index 0: the thread that calls run()), from the usable
    cores `cpus`; None (no pinning) unless n > 1 threads cover every one of them."""
    cpus = sorted(cpus)
    return cpus if 1 < n == len(cpus) else None


def set_threads(n=None):
    """Choose the number of threads (None: $NETCLI_THREADS or all usable cores)."""
    if n is None:
        n = env_threads() or usable_cores()
    if _state["pool"] is not None and _state["n"] != n:
        _state["pool"].close()
        _state["pool"] = None
    _state["n"] = n
    _state["cpus"] = placement(n, os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else None
    if "numpy" not in sys.modules:       # cheapest: BLAS reads these when it loads
        for var in BLAS_VARS:
            os.environ[var] = "1"
    return n


def count():
    return _state["n"] or set_threads()


def _prepare():
    """Once, before compute: BLAS to one thread, and flush-to-zero in this (the main) thread."""
    if _state["blas_limited"]:
        return
    _state["blas_limited"] = True
    from ..ops.cpu.fpmode import flush_denormals
    flush_denormals()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:   # only possible if installed without its dependencies
        return
    threadpool_limits(1, user_api="blas")


def _worker_init(cpus, k):
    """Worker k - 1 runs chunk k of each run(): it keeps core cpus[k] (placement), where pinned."""
    import numpy as np
    from ..ops.cpu.fpmode import flush_denormals
    if cpus:
        _pin({cpus[k % len(cpus)]})
    flush_denormals()
    # Overflow in a diverging net is reported once, by the solver's loss check; these threads
    # only run netcli's compute, so they do not warn (the main thread's np.errstate is its own).
    np.seterr(over="ignore", invalid="ignore")


def pool():
    """The shared thread pool (count() - 1 workers; the calling thread does one chunk)."""
    n = count()
    _prepare()
    if _state["pool"] is None and n > 1:
        _state["pool"] = Pool(n - 1, _state["cpus"])
    return _state["pool"]


def _forget_pool():
    """In a forked child: the parent's workers do not exist here; a new pool starts when needed."""
    _state["pool"] = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


SPIN_READS = 2_000_000   # flag reads a waiting thread makes before it sleeps (0.65 ms on a Zen 4 core)
LOST_WAKE_S = 0.05       # a sleeping thread looks again this often (were a wake-up lost)
_ROW = 24                # a worker's flags: posted task, done task, caller asleep (64 bytes apart)


class Pool:
    """`workers` threads, each running the chunks run() hands it. A hand-over is a task number
    written to the worker's flag, which the worker, between tasks, waits for by reading it
    (exec/spin.py), sleeping on a condition only after `reads` reads; the caller waits for the
    worker's `done` number the same way. The reads are made only where each thread has a core of
    its own (placement: `cpus`); elsewhere both sleep at once, as other work may want the cores.
    ResNet-50's batch-1 forward (60 run() calls of about 0.7 ms; 2 threads, 2-core AMD EPYC VM),
    medians of a call, ThreadPoolExecutor and the caller pinned at each call -> this, pinned once
    a forward (run()): the caller starts its chunk after 26 -> 5 us, the worker after 58 -> 27 us
    (what is left: the GIL, which the caller holds until its chunk reaches compiled code), the
    caller goes on 49 -> 3 us after the last chunk ends; the forward 62.2-64.5 -> 58.2-59.0 ms (4
    runs each, alternating); an empty run() of 2 chunks 60-67 -> 25-31 us."""

    def __init__(self, workers, cpus, reads=None):
        import numpy as np
        from . import spin                      # compiled on first use (cached after)
        self.spin = spin
        self.reads = (SPIN_READS if cpus else 0) if reads is None else reads
        self.flags = np.zeros(workers * _ROW, np.int64)
        self.tasks, self.errors = [None] * workers, [None] * workers
        self.asleep = [False] * workers          # worker k sleeps on cv (read and written under it)
        self.cv = threading.Condition()
        self.lock, self.owner, self.closing = threading.Lock(), None, False
        self.threads = [threading.Thread(target=self._serve, args=(k, cpus), name=f"netcli-{k + 1}", daemon=True)
                        for k in range(workers)]
        for t in self.threads:
            t.start()

    def _serve(self, k, cpus):
        _worker_init(cpus, k + 1)
        f, base, seen = self.flags, _ROW * k, 0
        got = self.spin.wait_change(f, base, seen, self.reads)
        while True:
            if got == seen:                      # nothing posted while it read: sleep until something is
                with self.cv:
                    self.asleep[k] = True
                    while f[base] == seen and not self.closing:
                        self.cv.wait(LOST_WAKE_S)
                    self.asleep[k] = False
                got = int(f[base])
            if self.closing:
                return
            seen = got
            fn, i, lo, hi = self.tasks[k]
            try:
                fn(i, lo, hi)
            except BaseException as e:           # noqa: BLE001 - the caller raises it
                self.errors[k] = e
            fn = None
            got = self.spin.publish_then_wait(f, base + 8, seen, base + 16, base, seen, self.reads)
            if got == -1:                        # the caller sleeps until this task is done: wake it
                with self.cv:
                    self.cv.notify_all()
                got = self.spin.wait_change(f, base, seen, self.reads)

    def run(self, fn, ranges):
        """fn(i, lo, hi) for every chunk, chunk 0 (and any beyond the workers) on this thread;
        every chunk's error, the first raised. Runs do not nest."""
        if self.owner == threading.get_ident():
            raise RuntimeError("netcli's thread pool: a run() inside a run() on the same thread")
        with self.lock:
            self.owner = threading.get_ident()
            try:
                return self._run(fn, ranges)
            finally:
                self.owner = None

    def _run(self, fn, ranges):
        f, used = self.flags, min(len(ranges) - 1, len(self.threads))
        posted = []
        for k in range(used):
            self.tasks[k], self.errors[k] = (fn, k + 1, *ranges[k + 1]), None
            posted.append(int(f[_ROW * k]) + 1)
            f[_ROW * k] = posted[-1]
        if any(self.asleep[:used]):
            with self.cv:
                self.cv.notify_all()
        errors = []
        for i in (0, *range(used + 1, len(ranges))):
            try:
                fn(i, *ranges[i])
            except BaseException as e:           # noqa: BLE001 - raised below, after the others finish
                errors.append(e)
        for k in range(used):
            done = _ROW * k + 8
            if self.spin.wait_change(f, done, posted[k] - 1, self.reads) != posted[k]:
                f[done + 8] = 1                  # asleep: the worker wakes this thread when it is done
                with self.cv:
                    while f[done] != posted[k]:
                        self.cv.wait(LOST_WAKE_S)
                f[done + 8] = 0
            if self.errors[k] is not None:
                errors.append(self.errors[k])
                self.errors[k] = None
            self.tasks[k] = None
        return errors

    def close(self):
        """Stop the workers (set_threads with another count) once they finish their task."""
        with self.lock:
            self.closing = True
            for k in range(len(self.threads)):
                self.flags[_ROW * k] += 1
            with self.cv:
                self.cv.notify_all()
        for t in self.threads:
            t.join()


def spin_reads():
    """How many flag reads a waiting thread makes before it sleeps: SPIN_READS where each thread
    has a core of its own (placement), else none (other work may want the cores)."""
    return SPIN_READS if _state["cpus"] else 0


class Barrier:
    """`parties` threads of one run() meet here; the last to arrive runs `action` (a layer's
    combination of the shares' statistics), then lets the others go. As the pool's hand-overs,
    the others wait by reading a flag without the GIL (exec/spin.py) and sleep only after
    spin_reads() reads; a threading.Barrier sleeps at once, and every meeting then cost a wake-up
    of 25-60 us (ResNet-20 has 43 per training iteration: its BatchNorms' statistics, forward and
    backward). Made once per plan and used by each of its runs: a generation number tells the
    meetings apart."""

    def __init__(self, parties, action=None):
        import numpy as np
        from . import spin
        self.spin, self.parties, self.action = spin, parties, action
        self.flags = np.zeros(16, np.int64)         # [0]: threads arrived; [8]: the generation
        self.cv, self.asleep, self.broken = threading.Condition(), 0, False

    def wait(self):
        f = self.flags
        gen = int(f[8])
        if self.broken:
            raise threading.BrokenBarrierError
        if self.spin.arrive(f, 0) == self.parties:
            f[0] = 0
            try:
                if self.action is not None:
                    self.action()
            except BaseException:
                self.abort()
                raise
            self._release(gen + 1)
            return
        if self.spin.wait_change(f, 8, gen, spin_reads()) == gen:
            with self.cv:               # (the count and the check under the GIL: ordered with _release)
                self.asleep += 1
                while f[8] == gen:
                    self.cv.wait(LOST_WAKE_S)
                self.asleep -= 1
        if self.broken:
            raise threading.BrokenBarrierError

    def _release(self, gen):
        self.spin.publish(self.flags, 8, gen)
        if self.asleep:
            with self.cv:
                self.cv.notify_all()

    def abort(self):
        """The others stop waiting (BrokenBarrierError), now and at later waits until reset()."""
        self.broken = True
        self._release(int(self.flags[8]) + 1)

    def reset(self):
        self.flags[0], self.broken = 0, False


def _pin(cpus):
    """Keep the calling thread on these cores; the cores it had (None where the OS refused)."""
    try:
        before = os.sched_getaffinity(0)
        os.sched_setaffinity(0, cpus)
    except OSError:                      # a container's cpuset changed under us: stay unpinned
        return None
    return before


LEAD = 1 / 16    # the calling thread's extra share: it starts while the others are still waking


def chunks(total, parts=None):
    """Split range(total) into at most `parts` (default: count()) contiguous (lo, hi) ranges;
    chunk 0, which the calling thread runs, gets a LEAD larger share. Calling it also pins BLAS to
    one thread."""
    _prepare()
    parts = max(1, min(parts or count(), total))
    out, lo = [], 0
    for i in range(1, parts):            # chunk i ends at the share (i + LEAD) / (parts + LEAD)
        hi = round(total * (i + LEAD) / (parts + LEAD))
        hi = min(max(hi, lo + 1), total - (parts - i))     # every chunk keeps at least one item
        out.append((lo, hi))
        lo = hi
    out.append((lo, total))
    return out


def run(fn, ranges):
    """fn(i, lo, hi) for every chunk i, in parallel; the caller's thread takes chunk 0.
    Exceptions propagate to the caller."""
    _prepare()                           # BLAS on one thread and flush-to-zero, before any compute
    ex = pool() if len(ranges) > 1 else None
    cpus = _state["cpus"]
    if ex is None:                       # one thread (or one chunk): every chunk here, in order
        alone = len(ranges) == 1 and count() > 1 and threading.get_ident() == _MAIN and \
            not getattr(_alone, "on", False)
        _alone.on = alone
        try:
            for i, (lo, hi) in enumerate(ranges):
                fn(i, lo, hi)
        finally:
            if alone:
                _alone.on = False
                if getattr(_alone, "mask", None) is not None:      # pinned by its tiles: as before
                    _pin(_alone.mask)
                    _alone.mask = None
        return
    mask = None                          # the caller's core while the workers run theirs
    if cpus and getattr(_alone, "mask", None) is None:
        mask = _pin({cpus[0]})
        if mask is not None and getattr(_alone, "tiling", False):    # kept until the one chunk ends
            _alone.mask, mask = mask, None
    try:
        errors = ex.run(fn, ranges)
    finally:
        if mask is not None:
            _pin(mask)
    if errors:   # the error itself, not a BrokenBarrierError of a thread it left waiting
        raise next((e for e in errors if not isinstance(e, threading.BrokenBarrierError)), errors[0])


def tiles(fn, count):
    """fn(j) for j in range(count): fixed tiles of one kernel call (output channels, rows of a
    GEMM), which give the same bits whoever runs them. Where the caller runs a run()'s only
    chunk (a share of one image: batch-1 inference) the idle threads take them, else the caller
    does, in order."""
    if count > 1 and getattr(_alone, "on", False):
        _alone.on, _alone.tiling = False, True       # no tiles inside tiles
        try:
            n = min(count, _state["n"] or 1)
            run(lambda t, lo, hi: [fn(j) for j in range(lo, hi)], [(count * i // n, count * (i + 1) // n)
                                                                   for i in range(n)])
        finally:
            _alone.on, _alone.tiling = True, False
        return
    for j in range(count):
        fn(j)


# A pass over one sample's numbers (Eltwise's sum, a ReLU) at batch 1 goes in SAMPLE_TILES fixed
# blocks where the sample has SAMPLE_TILED numbers or more: a hand-over costs about 30 us, the
# pass 0.1-0.4 ms there (ResNet-50's res2 and res3 blocks, 802,816 and 401,408 numbers; its res4
# and res5 ones, 200,704 and 100,352, stay whole).
SAMPLE_TILES, SAMPLE_TILED = 4, 1 << 18


def sample_tiles(fn, size, samples):
    """fn(lo, hi) over range(size), the numbers of `samples` samples: in SAMPLE_TILES blocks
    (tiles) where that is one large sample, else once."""
    if samples == 1 and size >= SAMPLE_TILED:
        block_tiles(fn, size, SAMPLE_TILES)
    else:
        fn(0, size)


def block_tiles(fn, size, count):
    """fn(lo, hi) on `count` fixed blocks of range(size), as tiles."""
    tiles(lambda j: fn(size * j // count, size * (j + 1) // count), count)


def describe():
    """The thread line, in plain words: how many cores are used, how to change it, and that the
    results do not depend on it."""
    n, cores = count(), usable_cores()
    how = "--threads N or NETCLI_THREADS=N to change; " if n == cores else ""
    return (f"using {n} of {cores} CPU core{'s' if cores != 1 else ''} ({how}results are the same with any number)")
