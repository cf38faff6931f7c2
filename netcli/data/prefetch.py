"""Batches prepared ahead of training: a daemon thread fills a ring of buffers, a bounded queue
keeps it at most `ahead` batches ahead, and a loader error reaches the training thread. The ring
is sized (ring_plan) and checked against the memory budget when the data layer is set up; its
buffers are allocated as the thread first reaches them."""
from __future__ import annotations

import queue
import threading
import weakref

import numpy as np

from ..errors import NetcliError


RING_BYTES = 2 ** 30     # batches prepared ahead take about this at most (but at least one is)


def waited(net):
    """Seconds the net's data layers have waited for their batches so far (each layer's
    forward() counts the time it blocks on its prefetcher: what data costs the loop)."""
    return sum(getattr(layer, "wait_s", 0.0) for layer in net.data_layers())


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
        self._layer = weakref.ref(layer)          # the layer owns its prefetcher: no cycle
        depth = getattr(layer, "ahead", None) or getattr(layer.dp, "prefetch", 4)
        self.shape = (layer.B,) + layer.transformer.out_shape
        self.slots = [None] * (depth + 2)    # (data, label) buffers, allocated at first use
        self.q = queue.Queue(maxsize=depth)
        self.halt = threading.Event()
        # The thread holds the prefetcher weakly: a net that is dropped takes its layers, their
        # prefetchers and buffers along, and the thread ends (halt is set when this is collected).
        weakref.finalize(self, self.halt.set)
        self.thread = threading.Thread(target=_fill, args=(weakref.ref(self), self.halt, self.q, start), daemon=True,
                                       name=f"netcli-prefetch-{layer.name}")
        self.thread.start()

    @property
    def layer(self):
        return self._layer()

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
        if self.thread is not threading.current_thread():   # dropped by its own thread: it ends by itself
            self.thread.join(timeout=5)


def _fill(ref, halt, q, k):
    """The prefetch thread: batches k, k+1, ... into the ring of `ref()`'s slots, until halted
    or the prefetcher is gone."""
    while not halt.is_set():
        me = ref()
        layer = me and me.layer
        if layer is None:
            return
        data = label = None
        try:
            i = k % len(me.slots)
            if me.slots[i] is None:
                me.slots[i] = getattr(layer, "new_slot", lambda *a: None)(i, me.shape) or \
                    (np.empty(me.shape, np.float32), np.empty(layer.B, np.float32))
            data, label = me.slots[i]
            layer.make_batch(k, data, label)
            item = (k, data, label)
        except BaseException as e:  # handed to the main thread, which raises it (a buffer too)
            item = (k, e, None)
        del me, layer
        while not halt.is_set():
            try:
                q.put(item, timeout=0.1)
                break
            except queue.Full:
                continue
        if label is None or isinstance(item[1], BaseException):
            return
        k += 1
