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
        tail = Net(net.model, phase=net.phase, level=net.level, stages=net.stages, batch_size=rows,
                   allow_python=net.allow_python, inference=net.inference,
                   release_rows=net.release_rows)
        tail.share_weights(net)
        cached = _TAILS[net] = (rows, tail)
    tail = cached[1]
    for mine, src in zip(tail.data_layers(), net.data_layers()):
        st = src.get_state()
        mine.set_state({**st, "skip": st["skip"] + start, "batch": 0})
    return tail


def evaluate(net, batches=None, on_batch=None, stop=None, group=None):
    """Run `net` over its data from the first batch: `batches` batches, or (None) the whole data
    set once. on_batch(i, net_that_ran, samples) is called after each batch; stop() is asked
    before each and ends the pass early (the result is then None). With a process group
    (netcli.distributed), each process runs a contiguous block of the batches and the results
    are gathered in batch order, so every process gets the sums one process would. Returns
    {"outputs": {name: mean as float64 array}, "loss": mean loss, "samples": n, "batches": k,
    "per_batch": [(samples, {name: output}, loss)] in batch order}."""
    net.rewind_data()
    plan = [(net, net.batch_size() or 1)] * batches if batches is not None else whole_set_batches(net)
    if plan is None:
        raise ValueError("a whole-set pass needs a Data layer")   # callers check data_size first
    lo, hi = (0, len(plan)) if group is None else (len(plan) * group.rank // group.size,
                                                   len(plan) * (group.rank + 1) // group.size)
    if lo:
        for layer in net.data_layers():
            layer.set_state({**layer.get_state(), "batch": lo})
    records = []
    for i in range(lo, hi):
        run, rows = plan[i]
        if stop is not None and stop():
            return None
        out = run.forward()
        records.append((rows, {name: np.array(out[name], np.float64) for name in net.outputs}, run.loss))
        if on_batch is not None:
            on_batch(i, run, rows)
    if group is not None:
        records = [r for part in group.allgather(records) for r in part]
    sums, loss, seen = {}, 0.0, 0
    for rows, out, batch_loss in records:
        for name, v in out.items():
            sums[name] = sums.get(name, 0.0) + rows * v
        loss += rows * batch_loss
        seen += rows
    seen = max(seen, 1)
    return {"outputs": {k: v / seen for k, v in sums.items()}, "loss": loss / seen, "samples": seen,
            "batches": len(plan), "per_batch": records}
