"""The thread pool: its placement (where the threads cover every usable core, each keeps one),
its hand-overs, errors and resizing, and a forked child."""
import os
import threading

import pytest

from netcli.exec import threads

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")


def test_placement_pins_only_threads_that_cover_every_core():
    assert threads.placement(4, {3, 1, 2, 0}) == [0, 1, 2, 3]
    assert threads.placement(2, {5, 9}) == [5, 9]
    assert threads.placement(3, {0, 1, 2, 3}) is None        # fewer threads than cores: others may want them
    assert threads.placement(1, {0}) is None
    assert threads.placement(1, {0, 1}) is None


@pytest.fixture
def fake_affinity(thread_count, monkeypatch):
    """(monkeypatch, set_threads) for a test that fakes the OS's affinity calls; after it, the pool
    it made is shut down while the fakes still stand, then the real thread count comes back."""
    yield monkeypatch, thread_count
    thread_count(1)


def test_pool_workers_and_caller_each_keep_one_core(fake_affinity):
    """With a fake machine of 4 cores: each worker pins itself to its own core once, the caller to
    the first core for the length of a run() and back to what it had after, even when a chunk fails."""
    monkeypatch, set_threads = fake_affinity
    masks = {}                                   # thread ident -> its affinity
    calls = []
    lock = threading.Lock()

    def getaffinity(pid):
        assert pid == 0
        with lock:
            return set(masks.get(threading.get_ident(), {0, 1, 2, 3}))

    def setaffinity(pid, cpus):
        assert pid == 0
        with lock:
            masks[threading.get_ident()] = set(cpus)
            calls.append((threading.get_ident(), frozenset(cpus)))

    monkeypatch.setattr(os, "sched_getaffinity", getaffinity)
    monkeypatch.setattr(os, "sched_setaffinity", setaffinity)
    set_threads(1)                               # a fresh pool on the next run
    set_threads(4)
    me = threading.get_ident()
    seen = {}

    def chunk(i, lo, hi):
        with lock:
            seen[i] = (threading.get_ident(), set(masks.get(threading.get_ident(), {0, 1, 2, 3})))
        barrier.wait()                           # all four at once: four distinct threads

    barrier = threading.Barrier(4)
    threads.run(chunk, threads.chunks(8))
    assert seen[0] == (me, {0})
    workers = {seen[i][0]: seen[i][1] for i in (1, 2, 3)}
    assert len(workers) == 3 and me not in workers
    assert sorted(min(m) for m in workers.values()) == [1, 2, 3] and all(len(m) == 1 for m in workers.values())
    assert masks[me] == {0, 1, 2, 3}             # the caller's own mask again

    def fails(i, lo, hi):
        if i == 0:
            raise ValueError("chunk 0 failed")

    with pytest.raises(ValueError, match="chunk 0 failed"):
        threads.run(fails, threads.chunks(8))
    assert masks[me] == {0, 1, 2, 3}
    pinned = [c for t, c in calls if t in workers]
    assert len(pinned) == 3                      # once each, when the worker started


def test_a_one_chunk_run_pins_its_caller_once_for_all_its_tiles(fake_affinity):
    """Batch-1 inference (exec/threads.py, tiles): the caller of a run() of one chunk is pinned at
    its first tiles hand-over, stays so for the others, and gets its mask back when the chunk
    ends; a one-chunk run that hands out no tiles pins nothing."""
    monkeypatch, set_threads = fake_affinity
    masks, calls = {}, []
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(masks.get(threading.get_ident(), {0, 1})))
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: (masks.__setitem__(threading.get_ident(), set(cpus)),
                                                                     calls.append(threading.get_ident())))
    set_threads(1)
    set_threads(2)
    me = threading.get_ident()
    seen = []

    def tile(j):
        if threading.get_ident() == me:
            seen.append(set(masks.get(me, {0, 1})))
    threads.run(lambda i, lo, hi: [threads.tiles(tile, 4) for _ in range(3)], [(0, 1)])
    assert seen == [{0}] * 6 and calls.count(me) == 2 and masks[me] == {0, 1}
    threads.run(lambda i, lo, hi: None, [(0, 1)])
    assert calls.count(me) == 2


def test_fewer_threads_than_cores_pin_nothing(fake_affinity):
    monkeypatch, set_threads = fake_affinity
    calls = []
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: calls.append(cpus))
    set_threads(1)
    set_threads(2)
    threads.run(lambda i, lo, hi: None, threads.chunks(4))
    assert calls == []


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
                    reason="needs 2 usable cores")
def test_real_affinity_with_every_core(thread_count):
    set_threads = thread_count
    cores = sorted(os.sched_getaffinity(0))
    set_threads(1)
    set_threads(len(cores))
    got = {}
    barrier = threading.Barrier(len(cores))

    def chunk(i, lo, hi):
        got[i] = os.sched_getaffinity(0)
        barrier.wait()

    threads.run(chunk, threads.chunks(len(cores)))
    assert sorted(next(iter(m)) for m in got.values()) == cores and all(len(m) == 1 for m in got.values())
    assert sorted(os.sched_getaffinity(0)) == cores


@pytest.mark.parametrize("reads", [0, 50, threads.SPIN_READS])
def test_every_hand_over_finishes_with_every_chunk_and_error(reads, monkeypatch):
    """The pool's hand-overs (exec/spin.py): with no reads (both sides sleep), a few (some wait
    by reading, some sleep) and the default, chunks of mixed lengths all run, each on its own
    thread, errors reach the caller, and no run waits for the 'lost wake-up' look-again: each
    wake-up is told."""
    import time
    import numpy as np
    monkeypatch.setattr(threads, "LOST_WAKE_S", 30.0)
    pool = threads.Pool(2, None, reads=reads)
    rng = np.random.default_rng(reads)
    try:
        for r in range(60):
            naps = rng.choice([0, 0, 1e-4, 2e-3], 3)
            out, who = np.zeros(6), {}

            def chunk(i, lo, hi):
                time.sleep(naps[i])
                out[lo:hi] = i + 1
                who[i] = threading.get_ident()
                if r % 7 == 3 and i == r % 3:
                    raise ValueError(f"chunk {i}")
            t = time.perf_counter()
            errors = pool.run(chunk, [(0, 2), (2, 4), (4, 6)])
            assert time.perf_counter() - t < 10
            assert list(out) == [1, 1, 2, 2, 3, 3] and len(set(who.values())) == 3
            assert [str(e) for e in errors] == ([f"chunk {r % 3}"] if r % 7 == 3 else [])
    finally:
        pool.close()
    assert not any(t.is_alive() for t in pool.threads)


def test_runs_do_not_nest_and_more_chunks_than_threads_run_on_the_caller():
    pool = threads.Pool(1, None)
    try:
        got = []
        assert pool.run(lambda i, lo, hi: got.append((i, threading.get_ident())), [(0, 1)] * 4) == []
        assert sorted(i for i, _ in got) == [0, 1, 2, 3]
        assert {t for i, t in got if i != 1} == {threading.get_ident()} != {t for i, t in got if i == 1}
        errors = pool.run(lambda i, lo, hi: pool.run(lambda *a: None, [(0, 1), (1, 2)]) if i == 0 else None,
                          [(0, 1), (1, 2)])
        assert len(errors) == 1 and "inside a run()" in str(errors[0])
    finally:
        pool.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this OS")
def test_a_forked_child_runs_on_a_pool_of_its_own(thread_count):
    """The parent's workers do not exist in a forked child (multiprocessing's fork start method):
    the child's first run() starts its own instead of handing chunks to no one."""
    import time
    thread_count(2)
    threads.run(lambda i, lo, hi: None, [(0, 1), (1, 2)])      # the parent's pool exists
    pid = os.fork()
    if pid == 0:                                               # the child: exit 0 if both chunks ran
        try:
            got = set()
            threads.run(lambda i, lo, hi: got.add(i), [(0, 1), (1, 2)])
            os._exit(0 if got == {0, 1} else 1)
        except BaseException:
            os._exit(2)
    end = time.monotonic() + 60
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the forked child's run() did not finish")


def test_the_flag_reads_see_another_threads_write():
    """exec/spin.py: wait_change returns what another thread wrote while it read (each read is
    a real load), or the old value once its reads run out; publish_then_wait writes `done`,
    then answers -1 where the waiter sleeps, else waits as wait_change."""
    import time
    import numpy as np
    from netcli.exec import spin
    flags = np.zeros(48, np.int64)
    assert spin.wait_change(flags, 0, 0, 1000) == 0
    writer = threading.Timer(0.02, lambda: flags.__setitem__(0, 7))
    writer.start()
    t = time.perf_counter()
    got = 0
    while got == 0 and time.perf_counter() - t < 30:
        got = spin.wait_change(flags, 0, 0, 10 ** 7)
    writer.join()
    assert got == 7
    flags[16] = 1
    assert spin.publish_then_wait(flags, 8, 3, 16, 0, 7, 10) == -1 and flags[8] == 3
    flags[16] = 0
    assert spin.publish_then_wait(flags, 8, 4, 16, 0, 7, 10) == 7 and flags[8] == 4
    assert spin.publish_then_wait(flags, 8, 5, 16, 0, 6, 10) == 7


@pytest.mark.parametrize("reads", [0, 50, threads.SPIN_READS])
def test_the_barrier_runs_its_action_once_per_meeting_before_anyone_goes_on(reads, monkeypatch):
    """threads.Barrier (the executor's meetings: a BatchNorm's statistics, the gradients' sum):
    with no reads (the waiters sleep), a few and the default, over many meetings of one barrier,
    the action runs once, in the last thread to arrive, after every thread arrived and before any
    goes on; each wake-up is told (no wait for the 'lost wake-up' look-again)."""
    import time
    import numpy as np
    monkeypatch.setattr(threads, "LOST_WAKE_S", 30.0)
    monkeypatch.setattr(threads, "spin_reads", lambda: reads)
    T, meetings = 3, 40
    arrived, log = np.zeros(T, int), []
    barrier = threads.Barrier(T, lambda: log.append((threading.get_ident(), arrived.copy())))
    seen = {t: [] for t in range(T)}
    rng = np.random.default_rng(reads)
    naps = rng.choice([0, 0, 1e-4, 2e-3], (meetings, T))

    def thread(t):
        for m in range(meetings):
            time.sleep(naps[m, t])
            arrived[t] = m + 1
            barrier.wait()
            seen[t].append(len(log))             # the action of this meeting ran before this

    t0 = time.perf_counter()
    workers = [threading.Thread(target=thread, args=(t,)) for t in range(T)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert time.perf_counter() - t0 < 30 and not any(w.is_alive() for w in workers)
    assert len(log) == meetings
    assert all(list(a) == [m + 1] * T for m, (_, a) in enumerate(log))
    assert all(seen[t] == list(range(1, meetings + 1)) for t in range(T))


def test_an_aborted_barrier_lets_every_waiter_go_with_an_error_until_reset(monkeypatch):
    """A thread's error (executor: work's except) aborts the barriers: the threads waiting there
    and those that come later get BrokenBarrierError, an action's error reaches its thread and
    breaks the barrier too; reset() makes it usable again (the executor's next run)."""
    monkeypatch.setattr(threads, "LOST_WAKE_S", 30.0)
    barrier, errors = threads.Barrier(3), []

    def waiter():
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            errors.append("broken")
    workers = [threading.Thread(target=waiter) for _ in range(2)]
    for w in workers:
        w.start()
    import time
    time.sleep(0.05)
    barrier.abort()
    for w in workers:
        w.join(30)
    assert errors == ["broken", "broken"]
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait()
    barrier.reset()

    def fails():
        raise ValueError("the action failed")
    barrier = threads.Barrier(1, fails)
    with pytest.raises(ValueError, match="the action failed"):
        barrier.wait()
    with pytest.raises(threading.BrokenBarrierError):
        barrier.wait()
    barrier.reset()
    barrier.action = None
    barrier.wait()                               # one party: goes on at once


def test_arrive_counts_every_thread_once():
    """exec/spin.py's arrive: an atomic add, so no arrival is lost when threads arrive at once."""
    import numpy as np
    from netcli.exec import spin
    flags = np.zeros(16, np.int64)
    got = []

    def many():
        got.extend(spin.arrive(flags, 0) for _ in range(20000))
    workers = [threading.Thread(target=many) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert flags[0] == 80000 and sorted(got) == list(range(1, 80001))
