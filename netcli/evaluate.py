"""Scoring passes of a net over its data, shared by `netcli test` and the solver's tests.

A pass over the whole data set counts every sample exactly once: the full batches run on the
net itself, and the last, partial one (when the set size is not a multiple of the batch size)
on a copy of the net built for that many rows, sharing the weights and reading exactly the
remaining samples. Outputs (batch means) are averaged weighted by each batch's samples. A pass of
a given number of batches (Caffe's test_iter, --iterations) runs those batches as they come,
wrapping around the data like Caffe.
"""
from __future__ import annotations

import weakref

import numpy as np

_TAILS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def whole_set_batches(net):
    """[(net to run, samples)] covering the data set of `net` once, or None without a Data layer."""
    n, b = net.data_size(), net.batch_size()
    if not n:
        return None
    full, rest = divmod(n, b)
    plan = [(net, b)] * full
    if rest:
        plan.append((_tail(net, rest, full * b), rest))
    return plan


def _tail(net, rows, start):
    """A copy of `net` with batch size `rows` whose data starts at sample `start` (cached)."""
    from .net import Net
    cached = _TAILS.get(net)
    if cached is None or cached[0] != rows:
        tail = Net(net.model, phase=net.phase, level=net.level, stages=net.stages, batch_size=rows)
        tail.share_weights(net)
        cached = _TAILS[net] = (rows, tail)
    tail = cached[1]
    for mine, src in zip(tail.data_layers(), net.data_layers()):
        st = src.get_state()
        mine.set_state({**st, "skip": st["skip"] + start, "batch": 0})
    return tail


def evaluate(net, batches=None, on_batch=None, stop=None):
    """Run `net` over its data from the first batch: `batches` batches, or (None) the whole data
    set once. on_batch(i, net_that_ran, samples) is called after each batch; stop() is asked
    before each and ends the pass early (the result is then None). Returns {"outputs": {name:
    mean as float64 array}, "loss": mean loss, "samples": n, "batches": k}."""
    net.rewind_data()
    plan = [(net, net.batch_size() or 1)] * batches if batches is not None else whole_set_batches(net)
    if plan is None:
        raise ValueError("a whole-set pass needs a Data layer")   # callers check data_size first
    sums, loss, seen = {}, 0.0, 0
    for i, (run, rows) in enumerate(plan):
        if stop is not None and stop():
            return None
        out = run.forward()
        for name in net.outputs:
            sums[name] = sums.get(name, 0.0) + rows * np.asarray(out[name], np.float64)
        loss += rows * run.loss
        seen += rows
        if on_batch is not None:
            on_batch(i, run, rows)
    seen = max(seen, 1)
    return {"outputs": {k: v / seen for k, v in sums.items()}, "loss": loss / seen, "samples": seen,
            "batches": len(plan)}
