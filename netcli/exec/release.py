"""A share's rows of the activations and their gradients handed back to the system once its
training pass is done with them (Net(release_rows=True); "auto", the Solver's: where memory is short).

In a training iteration each share runs the last stretch's forward and at once its backward
(exec/cpu.py), so the rows of a blob inside the stretch are needed from the step that first
writes them to the last step of that share that reads them (its producer's backward). After
that step the executor tells the system those pages are free (madvise MADV_DONTNEED: they read
as zeros when next touched, and take no memory until then), so a blob's whole-batch data and
diff are resident only for the shares in flight, as PyTorch frees activations and gradients
after their last use. Only whole pages inside a share's own rows are released, never a page
another share's rows touch; only arrays with at least MIN_SHARE_BYTES per share, in nets where
they add up to MIN_TOTAL_BYTES (small nets are left as they are); with release_rows="auto" (the
Solver's), only where the net would not fit in half the memory available without it (fresh pages
cost time); never the stretch's inputs, the net's outputs and loss tops, an array any layer outside
the stretch touches, or one that partly overlaps another. Linux only (elsewhere nothing is
released). What the blobs hold after such a pass is therefore not the pass's values: a net
whose activations someone reads after training steps (pycaffe's) keeps them (release_rows off).
"""
from __future__ import annotations

import ctypes
import mmap
import sys

import numpy as np

from .memory_plan import memory_available, plan_cpu

MIN_SHARE_BYTES = 2 ** 20
# Nets whose releasable arrays take less than this over the whole batch release nothing: LeNet and
# cifar10_quick would pay page faults every iteration (a few % of their time) to save a few MB.
MIN_TOTAL_BYTES = 256 * 2 ** 20
PAGE = mmap.PAGESIZE
_MADVISE = None
if sys.platform.startswith("linux") and hasattr(mmap, "MADV_DONTNEED"):
    try:
        _MADVISE = ctypes.CDLL(None, use_errno=True).madvise
        _MADVISE.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    except (OSError, AttributeError):
        _MADVISE = None


def available():
    return _MADVISE is not None


def release(start, stop):
    """The whole pages inside the byte addresses [start, stop) back to the system."""
    a = -(-start // PAGE) * PAGE
    b = stop // PAGE * PAGE
    if b > a:
        _MADVISE(a, b - a, mmap.MADV_DONTNEED)


# Param gradients of at least this many bytes are released between iterations (clear_grads)
GRADS_BYTES = 64 * 2 ** 20
# Fresh pages cost time: one training step, 2 cores, AMD EPYC VM, released against kept: the CIFAR
# Inception net 25% slower, VGG-16 b32 12-15% (8.8 s against 7.7-7.9 s), GoogLeNet b32 10%,
# CaffeNet b256 2-5%, with no rule of FLOPs per byte that foretells it (VGG-16 does 257 FLOPs per
# released byte, GoogLeNet 47). So release_rows="auto" releases only where the net would not fit
# in half the memory available without it: memory when it is short, speed when it is not.


def training_release(executor, own):
    """For a CPU executor (exec/cpu.py) whose net asks for it (release_rows), its params' diffs
    its own: (release_plan of its training iteration's fused last stretch, the addresses it
    releases, the bytes one share holds at once, whether clear_grads releases the gradients)."""
    net = executor.net
    n, last = executor.stretches[-1]
    if not (getattr(net, "release_rows", False) and own and n is not None and executor._back(last)):
        return {}, set(), 0, False
    segments = executor._segments(n, last, True, True)
    if len(segments) != 1:           # statistics over the batch: each share's forward waits for all
        return {}, set(), 0, False
    rows = [hi - lo for lo, hi in executor.shares[n]]
    steps = segments[0][0]
    plan = release_plan(net, last, steps, executor.chains, n, min(rows))
    if plan and net.release_rows == "auto":
        T, partials, count_shares = executor._planned
        whole = plan_cpu(executor, executor.ws, T, partials, count_shares).total
        if whole <= memory_available() / 2:
            plan = {}
    released = {addr for entries in plan.values() for addr, _ in entries}
    return (plan, released, peak_bytes(plan, steps, net, executor.chains, max(rows)),
            bool(plan) and net.param_diff.nbytes >= GRADS_BYTES)


def clear_grads(g, releasing):
    """g[...] = 0; where a training iteration releases rows and g is large, its pages go back to
    the system until the next backward writes them (as PyTorch's zero_grad(set_to_none=True)
    frees them), so the late gradients (exec/late_grads.py) take memory only after the pass,
    when its rows are gone."""
    if releasing and g.nbytes >= GRADS_BYTES:
        clear(g)
    else:
        g[...] = 0


def clear(a):
    """a[...] = 0, its whole pages handed back to the system (they read as zeros)."""
    addr, size = _span(a)
    head = min(a.size, (-(-addr // PAGE) * PAGE - addr) // a.itemsize)
    tail = max(head, (addr + size) // PAGE * PAGE - addr) // a.itemsize
    flat = a.reshape(-1)
    flat[:head] = 0
    flat[tail:] = 0
    release(addr + head * a.itemsize, addr + tail * a.itemsize)


def _span(a):
    return a.__array_interface__["data"][0], a.nbytes


def _touched(net, i, chains, kind):
    """The layer indices one step runs (a fused chain's layers, run by its head)."""
    if kind.startswith("fused") and i in chains:
        return chains[i].indices
    return (i,)


def release_plan(net, idx, steps, chains, n, min_rows):
    """{k: [(address, row bytes)]}: after step k (of `steps`, one share's (kind, layer) in
    order), the arrays whose rows of that share nothing reads again."""
    if not available():
        return {}
    inside = set(idx)
    spans, touched_outside, blob_arrays = {}, set(), {}
    for i in range(len(net.layers)):
        for b in list(net.bottom_vecs[i]) + list(net.top_vecs[i]):
            for a in (b.data, b.diff):
                if isinstance(a, np.ndarray) and a.size:
                    addr, size = _span(a)
                    spans.setdefault(addr, set()).add(size)
                    blob_arrays.setdefault(id(b), []).append(a)
                    if i not in inside:
                        touched_outside.add(addr)
    intervals = sorted((addr, max(sizes)) for addr, sizes in spans.items())
    unsafe = {addr for addr, sizes in spans.items() if len(sizes) > 1}
    for (a0, s0), (a1, s1) in zip(intervals, intervals[1:]):
        if a1 < a0 + s0:                         # partly overlapping arrays: left alone
            unsafe.update((a0, a1))
    kept = [net.blobs[name] for name in net.outputs] + [t for t, _ in net.loss_tops]   # a loss top's diff: its weight
    outputs = {_span(a)[0] for b in kept for a in (b.data, b.diff) if isinstance(a, np.ndarray)}
    produced = {id(t) for i in idx for t in net.top_vecs[i]}
    candidates = {}
    for i in idx:
        for t in net.top_vecs[i]:
            for a in (t.data, t.diff):
                if not isinstance(a, np.ndarray) or a.ndim == 0 or a.shape[0] != n or not a.flags.c_contiguous:
                    continue
                addr, size = _span(a)
                row = size // n
                if addr in unsafe or addr in touched_outside or addr in outputs or row * min_rows < MIN_SHARE_BYTES:
                    continue
                candidates[addr] = row
    # the stretch's inputs: arrays of bottoms no layer of the stretch produces
    for i in idx:
        for b in net.bottom_vecs[i]:
            if id(b) not in produced:
                for a in (b.data, b.diff):
                    if isinstance(a, np.ndarray) and a.size:
                        candidates.pop(_span(a)[0], None)
    if sum(row * n for row in candidates.values()) < MIN_TOTAL_BYTES:
        return {}
    last = {}
    for k, (kind, i) in enumerate(steps):
        for j in _touched(net, i, chains, kind):
            for b in list(net.bottom_vecs[j]) + list(net.top_vecs[j]):
                for a in blob_arrays.get(id(b), ()):
                    addr = _span(a)[0]
                    if addr in candidates:
                        last[addr] = k
    plan = {}
    for addr, k in last.items():
        plan.setdefault(k, []).append((addr, candidates[addr]))
    return plan


def _backward_step(kind):
    return "backward" in kind or "grad" in kind


def peak_bytes(plan, steps, net, chains, rows):
    """The most bytes of released arrays one share holds at once, at `rows` samples: an array
    from the step that first writes it (data: a forward step; a diff: a backward step) to the
    step after which it is released."""
    rowbytes = {addr: row for entries in plan.values() for addr, row in entries}
    first = {}
    for k, (kind, i) in enumerate(steps):
        for j in _touched(net, i, chains, kind):
            for b in list(net.bottom_vecs[j]) + list(net.top_vecs[j]):
                arrays = [b.data] + ([b.diff] if _backward_step(kind) else [])
                for a in arrays:
                    if isinstance(a, np.ndarray) and a.size:
                        first.setdefault(_span(a)[0], k)
    live, peak = 0, 0
    for k in range(len(steps)):
        live += sum(rowbytes[a] * rows for a, f in first.items() if f == k and a in rowbytes)
        peak = max(peak, live)
        live -= sum(row * rows for _, row in plan.get(k, ()))
    return peak
