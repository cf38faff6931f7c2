"""Where the CPU executor's layers find their arrays (layers.base.PerSample): each call gets one
dict of its layer's workspace() (what one share keeps from its forward to its backward) and
scratch() (written before read within the call).

- Scratch: one flat buffer per running thread, as large as the largest layer's scratch at its
  share; every layer and share that thread runs takes views of it.
- Workspaces, per share: a set per layer and share, for passes that run a share's forward and its
  backward apart (net.forward() then net.backward(), a stretch split by statistics over the
  batch, one layer timed alone); allocated at the first such pass.
- Workspaces, per thread: when one run takes every share through its forward and at once its
  backward (the training iteration's last stretch, `fused`), a share's workspaces are free again
  when the thread moves to its next share, so each thread holds one set for the stretch's layers
  (side by side in one flat buffer), not one per share: S shares on T threads hold T sets, not S.
  Layers whose workspaces are read across shares (finish_rows: a loss's sum; statistics over the
  batch) keep theirs per share.
The contents never depend on which thread ran a share: every array is written before it is read
in the share's own calls.
"""
from __future__ import annotations

import numpy as np

from ..blob import aligned_zeros
from .memory_plan import allocate, packed, spec_bytes


class Workspaces:
    def __init__(self, layers, stretches, shares, kept, fused_stretch):
        """kept: layer indices whose workspaces stay per share; fused_stretch: the layer indices
        of the stretch a training iteration runs fused (None: none)."""
        self.layers, self.shares, self.kept = layers, shares, set(kept)
        self.rows = {i: [hi - lo for lo, hi in shares[n]] for n, idx in stretches if n is not None for i in idx}
        self.scratch_specs = {(i, s): spec for i, rows in self.rows.items() for s, r in enumerate(rows)
                              for spec in [layers[i].scratch(r)] if spec}
        self.scratch_bytes = max((packed(spec)[1] for spec in self.scratch_specs.values()), default=0)
        self.fused = [i for i in (fused_stretch or ()) if i not in self.kept and layers[i].workspace(1)]
        self.offsets, end = {}, 0          # fused layer -> its region in a thread's workspace buffer
        for i in self.fused:
            self.offsets[i] = end
            end += packed(layers[i].workspace(max(self.rows[i])))[1]
        self.fused_bytes = end
        self.per_share = PerShare(layers, self.rows)   # layer -> its per-share sets (made when first asked)
        for i in self.kept & set(self.rows):
            self.per_share[i]
        self.thread_scratch, self.thread_workspace = [], []     # thread t -> its flat byte buffers
        self._calls = {False: [], True: []}                      # fused? -> thread t -> {layer: [per-share dict]}


    def calls(self, T, fused):
        """The dicts the calls of threads 0..T-1 get, per layer and share (made once per thread
        and kind; the thread count may grow)."""
        out = self._calls[fused]
        while len(out) < T:
            t = len(out)
            if len(self.thread_scratch) <= t:
                self.thread_scratch.append(aligned_zeros(self.scratch_bytes, np.uint8))
            if fused and len(self.thread_workspace) <= t:
                self.thread_workspace.append(aligned_zeros(self.fused_bytes, np.uint8))
            calls = {}
            for i, rows in self.rows.items():
                if fused and i in self.offsets:
                    calls[i] = [_views(self.thread_workspace[t], self.layers[i].workspace(r), self.offsets[i])
                                for r in rows]
                else:
                    calls[i] = list(self.per_share[i])
            for (i, s), spec in self.scratch_specs.items():
                calls[i][s] = {**calls[i][s], **_views(self.thread_scratch[t], spec, 0)}
            out.append(calls)
        return out

    def planned(self, i, threads):
        """(bytes, per-share?) of layer i's workspaces in a training iteration on `threads` threads."""
        if i in self.offsets:
            return threads * packed(self.layers[i].workspace(max(self.rows[i])))[1], False
        return sum(spec_bytes(self.layers[i].workspace(r)) for r in self.rows[i]), True


class PerShare(dict):
    """Layer index -> [one workspace dict per share], each allocated when first asked for."""

    def __init__(self, layers, rows):
        super().__init__()
        self.layers, self.rows = layers, rows       # not the Workspaces: no cycle keeping a dropped net's arrays

    def __missing__(self, i):
        self[i] = [allocate(self.layers[i].workspace(r)) for r in self.rows[i]]
        return self[i]


def _views(buf, spec, start):
    """{name: array view of buf} for spec laid out from byte `start` (memory_plan.packed)."""
    offsets, _ = packed(spec)
    out = {}
    for (name, (shape, dt)), off in zip(spec.items(), offsets):
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dt).itemsize
        out[name] = buf[start + off:start + off + nbytes].view(dt).reshape(shape)
    return out
