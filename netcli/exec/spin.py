"""Waiting without sleeping and without the GIL, for the thread pool's hand-overs (exec/threads.py).

A thread that sleeps (a condition, a lock, a Future) is woken by the kernel, which on a virtual
machine whose idle cores halt takes 25-60 us: ThreadPoolExecutor's submit and result cost two
such wake-ups per run(), 60-140 us in all (2-core AMD EPYC VM), 60 times in ResNet-50's batch-1
forward. So the pool's threads wait for each other here instead, reading a flag in a loop of
machine code that holds no GIL (Numba, nogil), for a bounded number of reads; only after that do
they sleep. The flags are int64 array elements read and written atomically: each read is a real
load (a plain one could be hoisted out of the loop), each write is seen by the other thread's
next read, and a write then a read of another flag is ordered as written (the sleeper's check)."""
from .. import ops  # noqa: F401 - Numba's code generation set first (ops/codegen.py)
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


def _pointer(context, builder, sig, args):
    ary = context.make_array(sig.args[0])(context, builder, args[0])
    return cgutils.get_item_pointer(context, builder, sig.args[0], ary, [args[1]])


@intrinsic
def _load(typingctx, flags, i):
    """flags[i], read from memory on every call."""
    def codegen(context, builder, sig, args):
        return builder.load_atomic(_pointer(context, builder, sig, args), "acquire", 8)
    return types.int64(flags, i), codegen


@intrinsic
def _store(typingctx, flags, i, value):
    """flags[i] = value, ordered before every later read (sequentially consistent)."""
    def codegen(context, builder, sig, args):
        builder.store_atomic(args[2], _pointer(context, builder, sig, args), "seq_cst", 8)
        return context.get_dummy_value()
    return types.none(flags, i, value), codegen


@njit(cache=True, nogil=True)
def wait_change(flags, i, seen, reads):
    """Read flags[i] until it is not `seen`, at most `reads` times; the value read last."""
    v = _load(flags, i)
    for _ in range(reads):
        if v != seen:
            return v
        v = _load(flags, i)
    return v


@njit(cache=True, nogil=True)
def publish_then_wait(flags, done, value, asleep, posted, seen, reads):
    """flags[done] = value (this thread's task is finished, told with the GIL already let go);
    then -1 if flags[asleep] says the thread that waits for it sleeps (wake it), else as
    wait_change(flags, posted, seen, reads) (the next task)."""
    _store(flags, done, value)
    if _load(flags, asleep) != 0:
        return -1
    return wait_change(flags, posted, seen, reads)


@intrinsic
def _add(typingctx, flags, i, value):
    """flags[i] += value, atomically; the value after (sequentially consistent)."""
    def codegen(context, builder, sig, args):
        old = builder.atomic_rmw("add", _pointer(context, builder, sig, args), args[2], "seq_cst")
        return builder.add(old, args[2])
    return types.int64(flags, i, value), codegen


@intrinsic
def _cas(typingctx, flags, i, expected, value):
    """flags[i] = value if it is `expected`, atomically; whether it was (sequentially consistent)."""
    def codegen(context, builder, sig, args):
        pair = builder.cmpxchg(_pointer(context, builder, sig, args), args[2], args[3], "seq_cst", "seq_cst")
        return builder.extract_value(pair, 1)
    return types.boolean(flags, i, expected, value), codegen


@njit(cache=True, nogil=True)
def arrive(flags, i):
    """flags[i] += 1, atomically; the count after."""
    return _add(flags, i, 1)


@njit(cache=True, nogil=True)
def publish(flags, i, value):
    """flags[i] = value, seen by every later read of it."""
    _store(flags, i, value)


@njit(cache=True, nogil=True)
def ping(flags, rounds, reads):
    """One end of a round-trip measure (exec/team.py), once the other has come (flags[8] == 1):
    `rounds` times write flags[0], then wait for the answer in flags[8] (at most `reads` reads).
    Whether every answer came."""
    for i in range(rounds):
        _store(flags, 0, i + 1)
        if wait_change(flags, 8, i + 1, reads) != i + 2:
            return False
    return True


@njit(cache=True, nogil=True)
def pong(flags, rounds, reads):
    """The other end: say it has come (flags[8] = 1), then answer each of ping's writes."""
    _store(flags, 8, 1)
    for i in range(rounds):
        if wait_change(flags, 0, i, reads) != i + 1:
            return
        _store(flags, 8, i + 2)
