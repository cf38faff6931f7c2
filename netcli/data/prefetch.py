"""Batches prepared ahead of training: a daemon thread fills a ring of buffers, a bounded queue
keeps it at most `ahead` batches ahead, and a loader error reaches the training thread. The ring
is sized (ring_plan) and checked against the memory budget when the data layer is set up; its
buffers are allocated as the thread first reaches them."""
from __future__ import annotations

import queue
import threading

import numpy as np

from ..errors import NetcliError


RING_BYTES = 2 ** 30     # batches prepared ahead take about this at most (but at least one is)


def ring_plan(batch_bytes, prefetch):
    """(batches prepared ahead, bytes of the ring): `prefetch` ahead, fewer (at least one) where
    batches are large. The ring holds those, the batch being read and the one being filled."""
    ahead = int(max(1, min(prefetch, RING_BYTES // max(batch_bytes, 1) - 2)))
    return ahead, (ahead + 2) * batch_bytes


class Prefetcher:
    """Prepares batches k, k+1, ... in a daemon thread into a ring of buffers; a bounded queue
    keeps it at most `layer.ahead` batches ahead. A loader error (or a buffer that cannot be
    allocated) is handed to the main thread."""

    def __init__(self, layer, start):
        self.layer = layer
        depth = getattr(layer, "ahead", None) or getattr(layer.dp, "prefetch", 4)
        self.shape = (layer.B,) + layer.transformer.out_shape
        self.slots = [None] * (depth + 2)    # (data, label) buffers, allocated at first use
        self.q = queue.Queue(maxsize=depth)
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(start,), daemon=True,
                                       name=f"netcli-prefetch-{layer.name}")
        self.thread.start()

    def _run(self, k):
        while not self.halt.is_set():
            data = label = None
            try:
                i = k % len(self.slots)
                if self.slots[i] is None:
                    self.slots[i] = (np.empty(self.shape, np.float32), np.empty(self.layer.B, np.float32))
                data, label = self.slots[i]
                self.layer.make_batch(k, data, label)
                item = (k, data, label)
            except BaseException as e:  # handed to the main thread, which raises it
                item = (k, e, None)
            while not self.halt.is_set():
                try:
                    self.q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if label is None or isinstance(item[1], BaseException):
                return
            k += 1

    def get(self, k):
        while True:
            try:
                got, data, label = self.q.get(timeout=0.5)
                break
            except queue.Empty:
                if not self.thread.is_alive():
                    raise NetcliError(f"data layer '{self.layer.name}': the loader thread stopped") from None
        if isinstance(data, BaseException):
            msg = str(data) if isinstance(data, NetcliError) else f"{type(data).__name__}: {data}"
            raise NetcliError(f"data layer '{self.layer.name}': {msg}") from data
        assert got == k, (got, k)
        return data, label

    def stop(self):
        self.halt.set()
        try:
            while True:
                self.q.get_nowait()
        except queue.Empty:
            pass
        self.thread.join(timeout=5)
