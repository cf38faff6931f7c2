"""One owner of parallelism at a time. Numba's kernels here are serial; the parallel work is
BLAS's (one large GEMM per layer). So the thread count is BLAS's, and Numba's pool, if anything
starts it, is kept to the same count; nothing runs two pools at once."""
from __future__ import annotations

import os

_threads = {"n": None}


def configure(n=None):
    """Set the thread count before NumPy loads if possible, else through the BLAS library."""
    if n is None:
        return
    _threads["n"] = n
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(n)
    import sys
    if "numpy" in sys.modules:
        _set_blas_threads(n)


def _set_blas_threads(n):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return False
    threadpool_limits(n)
    return True


def count():
    return _threads["n"] or len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def describe():
    n = _threads["n"]
    blas = os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{n or blas or cores} BLAS thread(s) for the GEMMs, serial Numba kernels "
            f"({cores} core(s) available{'' if n or blas else '; set --threads to change'})")
