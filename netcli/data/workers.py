"""Decoding worker processes (issue 28, item 2): a data layer's batch is cut into contiguous
blocks of rows, one per worker; each worker reads its samples with its own copy of the layer's
reader (netcli/data/readers.py), decodes, transforms (crop, mirror, mean, scale) and writes them
straight into the batch, a shared-memory buffer of the prefetch ring. A worker draws the crops
and mirrors the whole batch would draw and keeps its rows' (Transformer's `rows`), so the pixels
are the same whatever the number of workers, and the same as without them.

A worker is a fresh `python -c` process (no fork of a threaded process, and, unlike
multiprocessing's spawn, the caller's main script is not run again in it), talking over two
pipes: it ends when its task pipe closes, so when the training process ends, however it ends
(a kill -9 included). The shared buffers are unlinked when the pool is dropped or the process
exits (after a kill -9, by the standard library's resource tracker)."""
from __future__ import annotations

import atexit
import os
import subprocess
import sys
import threading
import weakref
from multiprocessing import shared_memory
from multiprocessing.connection import Connection, wait

import numpy as np

from ..errors import NetcliError

MAX_DEFAULT = 8
POLL_S = 0.5


def default_workers(reader):
    """`threads` left unset: the cores the compute threads leave free (at most MAX_DEFAULT), for
    a source of encoded images; 0 (decoding on the prefetch thread) otherwise."""
    if not getattr(reader, "decodes", False) or getattr(reader, "one_process", False):
        return 0
    from ..exec.threads import count, usable_cores
    return max(0, min(MAX_DEFAULT, usable_cores() - count()))


def _start(reader, transformer):
    """One worker process: (its Popen, the task pipe's end, the result pipe's end)."""
    from ..exec.threads import BLAS_VARS
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.update({v: "1" for v in BLAS_VARS})
    task_r, task_w = os.pipe()
    done_r, done_w = os.pipe()
    try:
        # `-c` puts the working directory first on sys.path: taken out before anything is imported,
        # so that no module of the user's folder runs in a worker
        proc = subprocess.Popen([sys.executable, "-c", "import sys; del sys.path[0]; from netcli.data.workers import main; main()",
                                 str(task_r), str(done_w)], pass_fds=(task_r, done_w), env=env,
                                stdin=subprocess.DEVNULL)
    finally:
        os.close(task_r)
        os.close(done_w)
    tasks, done = Connection(task_w, readable=False), Connection(done_r, writable=False)
    tasks.send((reader, transformer))
    return proc, tasks, done


class DecodePool:
    """`n` worker processes filling rows of batches in shared memory for one data layer."""

    def __init__(self, n, reader, transformer, name):
        self.n, self.name = n, name
        self.workers, self.shms, self.names, self.slots, self.task = [], [], {}, {}, 0
        self._finalizer = weakref.finalize(self, _shutdown, self.workers, self.shms)
        _LIVE[id(self.shms)] = self.workers, self.shms
        try:
            for _ in range(n):
                self.workers.append(_start(reader, transformer))
        except OSError as e:
            self.stop()
            raise NetcliError(f"data layer '{name}': cannot start {n} decoding worker processes: "
                              f"{e.strerror or e} (set threads: 0 to decode in this process)") from None

    def slot(self, i, shape, batch):
        """Ring slot i: a (data (shape) float32, label (batch,) float32) pair in one shared-memory
        block, made once and kept for the prefetchers that follow (a rewind makes a new one)."""
        got = self.slots.get(i)
        if got is not None and got[0].shape == tuple(shape):
            return got
        count = int(np.prod(shape))
        shm = shared_memory.SharedMemory(create=True, size=4 * (count + batch))
        self.shms.append(shm)
        _reserve(shm, 4 * (count + batch))
        data = np.ndarray(shape, np.float32, shm.buf)
        label = np.ndarray((batch,), np.float32, shm.buf, offset=4 * count)
        self.names[data.ctypes.data] = shm.name
        self.slots[i] = data, label
        return data, label

    def fill(self, data, label, k, lo, hi, indices, seed):
        """Rows lo..hi of batch k (samples `indices`) into `data` and `label`, a slot of this pool,
        cut into one contiguous block per worker; waits for all; a worker's error is raised here."""
        shm = self.names[data.ctypes.data]
        bounds = np.linspace(lo, hi, min(self.n, hi - lo) + 1).round().astype(int)
        self.task += 1
        pending = {}
        for (proc, tasks, done), a, b in zip(self.workers, bounds[:-1], bounds[1:]):
            try:
                tasks.send((self.task, shm, data.shape, int(a), int(b), indices[a - lo:b - lo], seed, k))
            except OSError:
                raise NetcliError(f"a decoding worker stopped "
                                  f"({_exit(proc.poll())})") from None
            pending[done] = proc
        error = None
        while pending:
            for done in wait(list(pending), timeout=POLL_S):
                try:
                    tid, msg = done.recv()
                except (EOFError, OSError):
                    raise NetcliError(f"a decoding worker stopped "
                                      f"({_exit(pending[done].wait())})") from None
                if tid == self.task:
                    del pending[done]
                    error = error or msg
        if error:
            raise NetcliError(error)

    def stop(self):
        self._finalizer()


# Pools not yet shut down, by id of their block list: a pool dropped by its prefetch thread is
# shut down on that thread, which the interpreter stops at exit, perhaps between a block's unlink
# and the resource tracker's unregister (the tracker then calls the block leaked). The exit hook
# waits for a shutdown under way and finishes any the thread has not reached.
_LIVE = {}
_SHUTDOWN_LOCK = threading.Lock()


def _shutdown(workers, shms):
    """Unlink the shared blocks first (mapped ones stay valid until unmapped), then close the task
    pipes, on which the workers end by themselves. This may run on the prefetch thread (the last
    holder of a dropped layer): nothing here waits long, and it runs once whoever calls it."""
    with _SHUTDOWN_LOCK:
        _LIVE.pop(id(shms), None)
        for shm in shms:
            try:
                shm.unlink()
            except OSError:
                pass
            try:
                shm.close()
            except BufferError:           # the ring's arrays still view it: unmapped when they go
                pass
        shms.clear()
        for proc, tasks, done in workers:
            tasks.close()
        for proc, tasks, done in workers:
            try:
                proc.wait(timeout=1)
            except subprocess.TimeoutExpired:   # busy with a batch no one will read
                proc.kill()
            done.close()
        workers.clear()


@atexit.register
def _shutdown_all():
    with _SHUTDOWN_LOCK:              # a shutdown under way on another thread ends first
        live = list(_LIVE.values())
    for workers, shms in live:
        _shutdown(workers, shms)


def _attach(name):
    """The shared block `name`, made by the training process (which alone unlinks it)."""
    try:
        return shared_memory.SharedMemory(name=name, track=False)
    except TypeError:                 # before Python 3.13: attaching registers it; undo that
        from multiprocessing import resource_tracker
        shm = shared_memory.SharedMemory(name=name)
        resource_tracker.unregister(shm._name, "shared_memory")
        return shm


def _exit(code):
    """A worker's end in words: its exit code, or the signal that killed it."""
    if code is not None and code < 0:
        import signal
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exit code {code}"


def _reserve(shm, size):
    """Allocate the block's pages now: a full /dev/shm is one line here, not a SIGBUS in a worker
    at its first write."""
    fd = getattr(shm, "_fd", -1)
    if fd < 0 or not hasattr(os, "posix_fallocate"):
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        free = ""
        try:
            st = os.statvfs("/dev/shm")
            free = f" ({st.f_bavail * st.f_frsize / 2 ** 20:.0f} MB free in /dev/shm, {size / 2 ** 20:.0f} MB needed)"
        except OSError:
            pass
        raise NetcliError(f"no room for a shared-memory batch{free}: {e.strerror or e}; set the data layer's "
                          "threads: 0 to decode in the training process (or give the container more "
                          "--shm-size)") from None


def main():
    """A worker: reads (reader, transformer), then tasks (task, shared block, batch shape, rows
    lo..hi, samples, seed, batch k) -> those rows read, transformed and written; (task, None or
    the error's line) back. Ends when the task pipe closes. A terminal's Ctrl-C or hangup reaches
    the whole process group: the training process decides what they mean (a snapshot, a stop),
    so a worker ignores them and ends with its pipe."""
    import signal
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    from .sources import DataError
    tasks = Connection(int(sys.argv[1]), writable=False)
    done = Connection(int(sys.argv[2]), readable=False)
    try:
        reader, transformer = tasks.recv()
    except (EOFError, OSError):
        return
    blocks = {}
    while True:
        try:
            tid, name, shape, lo, hi, indices, seed, k = tasks.recv()
        except (EOFError, OSError):
            return                    # the training process is done (or gone): so is this one
        try:
            if name not in blocks:
                blocks[name] = _attach(name)
            buf = blocks[name].buf
            data = np.ndarray(shape, np.float32, buf)
            label = np.ndarray((shape[0],), np.float32, buf, offset=4 * int(np.prod(shape)))
            images, labels = reader.read(indices)
            transformer(images, data[lo:hi], np.random.default_rng([seed, 1 << 40, k]), rows=(lo, shape[0]))
            label[lo:hi] = labels
            del data, label, buf
            msg = None
        except Exception as e:      # noqa: BLE001 -- one line back to the training process
            msg = str(e) if isinstance(e, (DataError, NetcliError)) else f"{type(e).__name__}: {e}"
        try:
            done.send((tid, msg))
        except OSError:
            return
