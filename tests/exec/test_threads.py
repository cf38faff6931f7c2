"""The thread pool's placement: where the threads cover every usable core, each keeps one."""
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
