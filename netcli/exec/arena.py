"""A training iteration's rows, or an inference net's forward's, in one arena per thread, not in
whole-batch arrays (Net(release_rows=True); "auto", the Solver's nets': for nets large enough to
gain from it).

In a training iteration each share runs the last stretch's forward and at once its backward
(exec/cpu.py), so the rows of a blob inside the stretch are needed from the step that first writes
them to the last step of that share that reads them (its producer's backward). Such an array
lives, for the share being run, in its thread's arena: one buffer per thread in which every array
has an offset, chosen so that arrays whose lifetimes overlap never share a byte and arrays whose
lifetimes do not reuse the same bytes (as PyTorch's allocator reuses a freed activation's memory).
A thread holds its arena from one share and one iteration to the next, so its pages are resident
once and never faulted again; the whole-batch arrays of those blobs are never touched by such a
pass and take no memory.

The layers do not know: a share with rows lo..hi gets blobs whose arrays are views placed so that
rows lo..hi fall on the share's region of the arena (`_at`), and a per-sample layer touches only
its share's rows (exec/cpu.py relies on that already: shares run at once on other threads). Rows
outside lo..hi of such a view are not memory of the view's and are never read or written.

Which arrays: the tops' data and diffs of the stretch's layers, at least MIN_SHARE_BYTES per share,
in nets where they add up to MIN_TOTAL_BYTES (small nets are left as they are); never the stretch's
inputs, the net's outputs and loss tops, an array any layer outside the stretch touches, one that
partly overlaps another, the blobs of a layer whose param gradients are formed after the pass
(exec/late_grads.py reads their rows then) or that finishes after every share (finish_rows), and
no diff some consumer does not write (propagate_down off), which its producer would read as it was.
What the blobs hold after such a pass is therefore not the pass's values: a net whose activations
someone reads after training steps (pycaffe's) keeps its whole-batch arrays (release_rows off).

A net for inference (Net(inference=True)) runs forward only: its blobs inside the stretch live
from the step that writes them to the last forward step that reads them, so each thread's share
runs through a few buffers that stay in cache (PyTorch's allocator hands a freed activation's
memory to the next the same way), and the net's outputs and loss tops keep their values. Such a
net that someone reads blobs of (extract_features) keeps its whole-batch arrays (release_rows off).
"""
from __future__ import annotations

import numpy as np

from ..blob import ALIGN_BYTES, Blob, aligned_zeros

MIN_SHARE_BYTES = 2 ** 20
# Nets whose arena arrays take less than this over the whole batch keep their whole-batch arrays:
# LeNet's and cifar10_quick's blobs keep the pass's values (a few MB to save).
MIN_TOTAL_BYTES = 256 * 2 ** 20
# An inference net's forward: its blobs' values are read by no backward, so reusing their memory
# costs nothing but the values, and a few MB of activations back in cache pays.
MIN_FORWARD_BYTES = 16 * 2 ** 20
ALIGN = ALIGN_BYTES       # the arrays' offsets: multiples of the engine's alignment (blob.py)


def rows_arena(executor, own):
    """For a CPU executor (exec/cpu.py) whose net asks for it (release_rows): (the Arena of its
    last stretch or None, the addresses of the whole-batch arrays it replaces). A training net
    whose params' diffs are its own: for its training iteration (forward and backward fused). A net
    for inference (Net(inference=True)): for its forward, whose blobs inside the stretch then live
    from the layer that writes them to the last that reads them (bench/nets_vs_torch.py, 2-vCPU
    Intel Xeon with 300 MB of L3: ResNet-56's inference at batch 100 1.16x as fast, ResNet-50's at
    batch 8 1.11x, MobileNet's 1.08x; ResNet-50's bench process peaked at 682 MB, not 1,107)."""
    net = executor.net
    n, last = executor.stretches[-1]
    forward_only = bool(getattr(net, "inference", False))
    if not (getattr(net, "release_rows", False) and n is not None and (forward_only or (own and executor._back(last)))):
        return None, set()
    segments = executor._segments(n, last, True, not forward_only)
    if len(segments) != 1:           # statistics over the batch: each share's forward waits for all
        return None, set()
    rows = [hi - lo for lo, hi in executor.shares[n]]
    late = set() if forward_only else {i for i, _, _, _ in executor.late}
    rowbytes = candidates(net, last, n, min(rows), late | {i for i in last if executor.finishes[i]},
                          MIN_FORWARD_BYTES if forward_only else MIN_TOTAL_BYTES)
    if not rowbytes:
        return None, set()
    steps = segments[0][0]
    arena = Arena(net, last, rowbytes, lifetimes(net, steps, executor.chains, rowbytes), max(rows),
                  executor.chains, forward_only)
    return arena, set(rowbytes)


def _span(a):
    return a.__array_interface__["data"][0], a.nbytes


def _arrays(blobs):
    return [a for b in blobs for a in (b.data, b.diff) if isinstance(a, np.ndarray) and a.size]


def candidates(net, idx, n, min_rows, excluded, min_total=MIN_TOTAL_BYTES):
    """{address: bytes per row} of the arrays of layers idx that may live in an arena (see the
    module's docstring; none where they add up to less than min_total); `excluded`: layer indices
    whose blobs stay whole."""
    inside = set(idx)
    spans, outside = {}, set()
    for i in range(len(net.layers)):
        for a in _arrays(list(net.bottom_vecs[i]) + list(net.top_vecs[i])):
            addr, size = _span(a)
            spans.setdefault(addr, set()).add(size)
            if i not in inside or i in excluded:
                outside.add(addr)
    intervals = sorted((addr, max(sizes)) for addr, sizes in spans.items())
    unsafe = {addr for addr, sizes in spans.items() if len(sizes) > 1}
    for (a0, s0), (a1, s1) in zip(intervals, intervals[1:]):
        if a1 < a0 + s0:                         # partly overlapping arrays: left alone
            unsafe.update((a0, a1))
    kept = [net.blobs[name] for name in net.outputs] + [t for t, _ in net.loss_tops]   # a loss top's diff: its weight
    unsafe.update(_span(a)[0] for a in _arrays(kept))
    produced = {id(t) for i in idx for t in net.top_vecs[i]}
    for i in idx:
        for b, down in zip(net.bottom_vecs[i], net.propagate_down[i]):
            if id(b) not in produced:             # the stretch's inputs
                unsafe.update(_span(a)[0] for a in _arrays([b]))
            elif not (net.need_backward[i] and down) and isinstance(b.diff, np.ndarray):
                unsafe.add(_span(b.diff)[0])        # a diff this consumer leaves as it is
    out = {}
    for i in idx:
        for a in _arrays(net.top_vecs[i]):
            if a.ndim == 0 or a.shape[0] != n or not a.flags.c_contiguous:
                continue
            addr, size = _span(a)
            row = size // n
            if addr not in unsafe and addr not in outside and row * min_rows >= MIN_SHARE_BYTES:
                out[addr] = row
    if sum(row * n for row in out.values()) < min_total:
        return {}
    return out


def _touched(i, chains, kind):
    """The layer indices one step runs (a fused chain's layers, run by its head; a convolution's,
    with the chain after it that runs inside its forward)."""
    if kind == "conv_fused_forward":
        return (i, *chains[i + 1].indices)
    if kind.startswith("fused") and i in chains:
        return chains[i].indices
    return (i,)


def _backward_step(kind):
    return "backward" in kind or "grad" in kind


def lifetimes(net, steps, chains, rowbytes):
    """{address: (first, last)}: the steps of one share (of `steps`, its (kind, layer) in order)
    from the one that first writes each array (data: a forward step; a diff: a backward step) to
    the last that touches it."""
    first, last = {}, {}
    for k, (kind, i) in enumerate(steps):
        for j in _touched(i, chains, kind):
            for b in list(net.bottom_vecs[j]) + list(net.top_vecs[j]):
                for a in _arrays([b]):
                    addr = _span(a)[0]
                    if addr not in rowbytes:
                        continue
                    last[addr] = k
                    if a is b.data or _backward_step(kind):
                        first.setdefault(addr, k)
    return {addr: (first.get(addr, last[addr]), last[addr]) for addr in last}


def layout(sizes, spans):
    """({address: offset}, total bytes): each array's place in an arena, no two arrays whose
    step spans overlap sharing a byte; the largest arrays placed first, each at the lowest offset
    free through its whole span."""
    placed, offsets, total = [], {}, 0
    for addr in sorted(sizes, key=lambda a: (-sizes[a], spans[a], a)):
        size = -(-sizes[addr] // ALIGN) * ALIGN
        f, l = spans[addr]
        busy = sorted((o, o + s) for o, s, (f2, l2) in placed if f2 <= l and f <= l2)
        at = 0
        for o0, o1 in busy:
            if at + size <= o0:
                break
            at = max(at, o1)
        placed.append((at, size, (f, l)))
        offsets[addr] = at
        total = max(total, at + size)
    return offsets, total


def buffer(nbytes):
    """One thread's arena (its contents never matter: every array is written before it is read),
    its offsets (ALIGN) counted from an aligned start."""
    return aligned_zeros(nbytes, np.uint8)


class _At:
    """An array interface at a raw address; `owner` keeps the memory alive."""

    def __init__(self, addr, shape, dtype, owner):
        self.__array_interface__ = {"data": (addr, False), "shape": shape, "typestr": dtype.str,
                                    "version": 3}
        self.owner = owner


def _at(addr, shape, dtype, owner):
    return np.asarray(_At(addr, shape, dtype, owner))


class Arena:
    """One arena per thread (allocated when the thread first runs a share) and, per thread and
    share, the blob lists and fused chains the executor hands to the layers."""

    def __init__(self, net, idx, rowbytes, spans, rows, chains, forward_only=False):
        self.spans, self.idx, self.forward_only = spans, tuple(idx), forward_only
        self.rowbytes = {a: r for a, r in rowbytes.items() if a in spans}      # (arrays no step touches stay whole)
        self.offsets, self.nbytes = layout({a: r * rows for a, r in self.rowbytes.items()}, self.spans)
        self.buffers, self._views = {}, {}
        self.bottoms, self.tops = net.bottom_vecs, net.top_vecs
        self.chains = {h: c for h, c in chains.items() if h in set(idx)}

    @property
    def addresses(self):
        return set(self.offsets)

    def views(self, t, s, lo):
        """(bottom vecs, top vecs, chains) for share s (first row lo) run by thread t."""
        key = (t, s)
        if key not in self._views:
            if t not in self.buffers:
                self.buffers[t] = buffer(self.nbytes)
            self._views[key] = self._make(self.buffers[t], lo)
        return self._views[key]

    def _make(self, buf, lo):
        base = buf.__array_interface__["data"][0]
        arrays, blobs = {}, {}

        def array(a):
            if not isinstance(a, np.ndarray) or not a.size:
                return a
            addr = _span(a)[0]
            if addr not in self.offsets:
                return a
            if id(a) not in arrays:
                arrays[id(a)] = _at(base + self.offsets[addr] - lo * self.rowbytes[addr], a.shape, a.dtype, buf)
            return arrays[id(a)]

        def blob(b):
            if id(b) not in blobs:
                v = Blob.__new__(Blob)
                v.name, v.data, v.diff = b.name, array(b.data), array(b.diff)
                blobs[id(b)] = v if (v.data is not b.data or v.diff is not b.diff) else b
            return blobs[id(b)]

        bottoms, tops = list(self.bottoms), list(self.tops)
        for i in self.idx:
            bottoms[i] = [blob(b) for b in self.bottoms[i]]
            tops[i] = [blob(b) for b in self.tops[i]]
        chains = {}
        for h, c in self.chains.items():
            chains[h] = c.on(blob)
        return bottoms, tops, chains
