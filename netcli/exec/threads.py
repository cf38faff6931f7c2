"""netcli's thread pool, used by the executor (netcli/exec/cpu.py) and the update rules. Inside a
task, Numba kernels (nogil) and BLAS run on that thread alone, so BLAS is kept to one thread: two
pools (BLAS's and ours, or Numba's) never spin against each other on the same cores.

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
from concurrent.futures import ThreadPoolExecutor

_state = {"n": None, "pool": None, "blas_limited": False, "cpus": None, "next_cpu": 1}
_MAIN = threading.main_thread().ident
_lock = threading.Lock()
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
        _state["pool"].shutdown(wait=True)
        _state["pool"] = None
    _state["n"] = n
    _state["cpus"] = placement(n, os.sched_getaffinity(0)) if hasattr(os, "sched_setaffinity") else None
    _state["next_cpu"] = 1
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


def _worker_init(cpus):
    import numpy as np
    from ..ops.cpu.fpmode import flush_denormals
    if cpus:
        with _lock:
            k = _state["next_cpu"]
            _state["next_cpu"] += 1
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
        _state["next_cpu"] = 1
        _state["pool"] = ThreadPoolExecutor(n - 1, thread_name_prefix="netcli", initializer=_worker_init,
                                            initargs=(_state["cpus"],))
    return _state["pool"]


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
        return
    cpus = _state["cpus"]
    mask = _pin({cpus[0]}) if cpus else None      # the caller's core while the workers run theirs
    futs = [ex.submit(fn, i, lo, hi) for i, (lo, hi) in enumerate(ranges[1:], 1)]
    errors = []
    try:
        fn(0, *ranges[0])
    except BaseException as e:           # noqa: BLE001 - raised below, after the others finish
        errors.append(e)
    for f in futs:
        try:
            f.result()
        except BaseException as e:       # noqa: BLE001
            errors.append(e)
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
        _alone.on = False            # no tiles inside tiles
        try:
            n = min(count, _state["n"] or 1)
            run(lambda t, lo, hi: [fn(j) for j in range(lo, hi)], [(count * i // n, count * (i + 1) // n)
                                                                   for i in range(n)])
        finally:
            _alone.on = True
        return
    for j in range(count):
        fn(j)


def describe():
    """The thread line, in plain words: how many cores are used, how to change it, and that the
    results do not depend on it."""
    n, cores = count(), usable_cores()
    how = "--threads N or NETCLI_THREADS=N to change; " if n == cores else ""
    return (f"using {n} of {cores} CPU core{'s' if cores != 1 else ''} ({how}results are the same with any number)")
