"""The CPU executor: the one owner of parallelism, and why results do not depend on the thread count.

A batch of N samples is cut into fixed *shares* (`shares(N)`: a power of two of them, at least
SHARE_ROWS samples each where the batch allows, at most MAX_SHARES, chosen from N alone).
Consecutive per-sample layers (layers.base.PerSample) form a *stretch*; a stretch runs share by
share, each share through all of its layers back to back, and the threads take whole shares
(thread t runs a contiguous block of them); threads beyond the shares help their kernels, in teams
(exec/team.py). Every share is computed the same way whichever threads run it, so activations do
not depend on the thread count.

Parameter gradients: share 0 adds into the params' own diffs, share s > 0 into its own flat scratch
buffer (zero between passes). At the end of a backward pass every element is combined by one fixed
pairwise tree over the shares (ops.cpu.shares.combine_shares), in the same dispatch as the last
stretch's backward (a barrier, then each thread a slice of the params). So `net.param_diff` is
complete when backward returns, and its bits are the same for 1, 2, 3 or 8 threads. Where every
layer with a backward is in one stretch, each thread makes the tree's additions among its own
shares as they finish (exec/grad_tree.py: the same additions, fewer partials held). The same
combination over shares on several processes is what will make MPI runs independent of the
process count.

A layer that needs statistics over the whole batch (BatchNorm in TRAIN: `batch_stats`) stays in
its stretch: every share gathers its partial statistics, the threads meet at a barrier whose action
combines the shares' partials in share order, then every share goes on (`_segments`). Layers outside
stretches (not per-sample: a Concat or Softmax along the batch axis, a Python layer, ...) run on the
whole batch in the calling thread; `plan()` names them, since each splits a stretch.
"""
from __future__ import annotations

import math
import weakref
from functools import partial

import numpy as np

from . import team, threads
from ..blob import aligned_zeros
from ..errors import NetcliError
from ..ops.cpu.shares import combine_shares
from ..layers.base import PerSample
from .fusion import find_chains
from .grad_tree import add_child, schedule
from .late_grads import clip, dense_ranges, form_tile, late_tasks, of_layers, split_tasks, tile_elements, without_late
from .arena import rows_arena
from .memory_plan import plan_cpu, refuse_if_too_big
from .stretches import blocks as _blocks, plan_lines, plan_stretches, run_steps, share_steps, shares
from .workspaces import Workspaces

class CpuExecutor:
    """Runs one net's layers: per-sample stretches over shares on the thread pool, the others on
    the whole batch. Built once per net (after its params are allocated)."""
    device = "CPU"

    def __init__(self, net, shared=None):
        """shared: the executor of the net whose params this one uses (share_weights): its diffs
        then live there, and backward goes layer by layer (bind_grads)."""
        self._net = weakref.ref(net)     # the net owns its executor: no cycle keeping a dropped net's arrays
        self.owns_grads = shared is None
        self.stretches = self._plan_stretches()
        self.batch_of = {i: n for n, idx in self.stretches for i in idx}   # layer -> its stretch's batch
        # layers with work after every share's forward (a loss's sum, a pass counter)
        self.finishes = [getattr(type(layer), "finish_rows", None) not in (None, PerSample.finish_rows)
                         for layer in net.layers]
        # Backward runs the stretches in reverse; the share gradients are combined at the end of
        # the last per-sample stretch it runs (the first in net order that has layers to run).
        back = [k for k, (n, idx) in enumerate(self.stretches) if n is not None and self._back(idx)]
        self.combine_at = back[0] if back else None
        # every layer with a backward in that one stretch: its shares' gradients are summed as they
        # finish (exec/grad_tree.py)
        self.single_back = len(back) == 1 and all(self.batch_of[i] is not None
                                                  for i, b in enumerate(net.need_backward) if b)
        self.group, self.own = None, {}   # distribute(): this process's block of shares per batch size
        self._step = None                # (a pass's update, its finishing layers, its shares): _run
        self._layout(None)
        self.bind_grads()

    @property
    def net(self):
        return self._net()

    @property
    def workspaces(self):
        """Layer index -> its per-share workspace dicts (exec/workspaces.py; made when first asked)."""
        return self.ws.per_share

    def _layout(self, count):
        """Shares of every stretch's batch (`count` of them, or shares(n)'s), their workspaces
        and gradient scratch."""
        net = self.net
        inference = net.phase != "TRAIN"          # (a TEST net may still run a backward: pycaffe)
        self.shares = {n: shares(n, count, inference) for n, _ in self.stretches if n is not None}
        S = max((len(s) for s in self.shares.values()), default=1)
        n, last = self.stretches[-1]
        kept = [i for i, layer in enumerate(net.layers) if self.finishes[i] or getattr(layer, "batch_stats", False)]
        fused = last if n is not None and not any(i in kept and not self.finishes[i] for i in last) else None
        self.ws = Workspaces(net.layers, self.stretches, self.shares, kept, fused)   # exec/workspaces.py
        T = max(1, min(threads.count(), S))
        rows = (schedule(S, tuple(_blocks(S, T)))[3] if self.single_back and fused is not None else S - 1)
        # large param gradients formed after the pass that combines the shares (exec/late_grads.py)
        self.late = (late_tasks(net, self.stretches[self.combine_at][1])
                     if S > 1 and self.owns_grads and self.combine_at is not None else [])
        self._planned = (T, rows if self.owns_grads else 0, None if count else lambda n: len(shares(n, None, inference)))
        self.scratch = aligned_zeros((S - 1, net.param_diff.size), net.param_diff.dtype)
        self._plans = {}

    def reshare(self, count):
        """Cut every stretch's batch into `count` shares (a power of two) instead of shares(n)'s
        choice: a finer split lets more processes take whole shares (netcli train --shares). The
        weights then differ from the default split's in the last bits, but not with the thread
        or process count."""
        if count & (count - 1) or count < 1:
            raise NetcliError(f"--shares must be a power of two, got {count}")
        small = [n for n, _ in self.stretches if n is not None and n < count]
        if small:
            raise NetcliError(f"--shares {count}: the batch of {min(small)} has fewer samples than shares")
        self._layout(count)
        self.bind_grads()

    # -- planning ------------------------------------------------------------------------------
    def steps(self):
        """The stretches and the layers between them, run one after another."""
        return len(self.stretches)

    def _plan_stretches(self):
        return plan_stretches(self.net)

    def bind_grads(self):
        """Per share, each layer's param-gradient targets: the params' diffs (share 0) or views
        at the same offsets in that share's scratch buffer. A layer whose param diffs no other
        layer uses may overwrite its targets (`fresh`) when they are known to be zero."""
        net = self.net
        base = net.param_diff

        def offset(diff):
            off = (diff.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // diff.itemsize
            return off if 0 <= off and off + diff.size <= base.size and diff.dtype == base.dtype else None
        own = all(offset(b.diff) is not None for layer in net.layers for b in layer.blobs)
        self.grads = [[[b.diff for b in layer.blobs] for layer in net.layers]]
        if own:           # diffs shared from another net (a test net) live elsewhere: no share scratch
            for buf in self.scratch:
                self.grads.append([[buf[offset(b.diff):offset(b.diff) + b.diff.size].reshape(b.diff.shape)
                                    for b in layer.blobs] for layer in net.layers])
        self.backward_ok = own
        if not own:
            self.late = []
        self.late_grads = without_late(self.grads, self.late)    # what backward_rows gets where late tiles run
        self.dense = dense_ranges(base, self.late, net)  # the rest of the gradient: share partials
        self.late_bufs = []                              # thread t -> its flat tile buffer
        users: dict[int, int] = {}
        for layer in net.layers:
            for b in layer.blobs:
                users[offset(b.diff)] = users.get(offset(b.diff), 0) + 1
        self.sole = [bool(layer.blobs) and all(users[offset(b.diff)] == 1 for b in layer.blobs)
                     for layer in net.layers]
        self.chains = find_chains(net, self.stretches, own)      # layers run as one pass (exec/fusion.py)
        self._plans = {}
        # a training iteration's rows, or an inference net's forward's, in one arena per thread (exec/arena.py)
        self.arena, arena_arrays = rows_arena(self, own)
        T, partials, count_shares = self._planned
        self.memory = plan_cpu(self, self.ws, T, partials, count_shares, arena_arrays,
                               self.arena.nbytes if self.arena else 0)
        refuse_if_too_big(self.memory, net)

    def plan(self):
        """Lines for `netcli check`/`time`: the stretches, the fused chains, and the layers that
        split stretches (exec/stretches.py)."""
        return plan_lines(self.net, self.stretches, self.shares, self.chains)

    def distribute(self, group):
        """Run only this process's block of each stretch's shares (netcli/distributed.py): the
        statistics layers combine over the batch are exchanged share by share first, and the
        data layers fill only this block's rows. Every layer but the data layers must be
        per-sample, so that each row is computed by exactly one process."""
        net = self.net
        odd = [f"'{net.layer_names[idx[0]]}' ({net.layers[idx[0]].type})" for n, idx in self.stretches
               if n is None and not (net.layers[idx[0]].reads_dataset or net.layers[idx[0]].is_input)]
        if odd:
            raise NetcliError(f"{net.source}: layer(s) {', '.join(odd)} of the {net.phase} net are not per-sample, "
                              "so the batch cannot be split across processes (netcli check names the "
                              "per-sample stretches)")
        for n, ranges in self.shares.items():
            group.check_shares(len(ranges), n)
            self.own[n] = group.block(len(ranges))
        self.group, self._plans = group, {}
        for n, idx in self.stretches:
            layer = net.layers[idx[0]]
            if n is None and layer.reads_dataset:
                rows = self.own_rows(layer.B)
                if rows is None:
                    raise NetcliError(f"{net.source}: data layer '{layer.name}': its batch of {layer.B} does not "
                                      "feed a per-sample stretch of the same batch size")
                layer.rows = rows

    def own_rows(self, n):
        """(lo, hi): the rows of a batch of n this process computes (None: no stretch has n)."""
        if n not in self.shares:
            return None
        first, stop = self.own.get(n, (0, len(self.shares[n])))
        return self.shares[n][first][0], self.shares[n][stop - 1][1]

    def _exchanged(self, combine, ws, keys, n):
        """combine(ws) after every process's share partials `keys` are in ws (distributed)."""
        if self.group is None or not keys:
            return partial(combine, ws)

        def both():
            self.group.exchange(ws, keys, *self.own[n])
            combine(ws)
        return both

    # -- params: where they live and how they change (netcli/exec/interface.py) -----------------
    def push(self):
        """Params, their gradients and the blobs live in host memory here: nothing to move or copy
        (the GPU executor copies): push, pull, pull_grads, blobs_to_host, diffs_to_device."""

    def blobs_to_host(self, names, diff=False):
        """As push()."""

    pull = pull_grads = push
    diffs_to_device = blobs_to_host

    def clear_param_diffs(self):
        self.net.param_diff[...] = 0

    def grad_sumsq(self):
        g = self.net.param_diff
        return float(np.dot(g, g))

    def update(self, rule, rate, it, scale):
        """One step of the Solver's update rule (netcli/update_rules/) on the thread pool."""
        rule.step(self.net.param_data, self.net.param_diff, rate, it, scale)

    # -- running -------------------------------------------------------------------------------
    def forward(self, stretches=None):
        net = self.net
        for n, idx in (self.stretches if stretches is None else stretches):
            if n is None:
                for i in idx:
                    net.layers[i].forward(net.bottom_vecs[i], net.top_vecs[i])
            else:
                self._run(n, idx, forward=True, backward=False)

    def forward_from(self, start):
        """Layers start, start+1, ... forward, one at a time (net.forward(start=...))."""
        net = self.net
        for i in range(start, len(net.layers)):
            net.layers[i].forward(net.bottom_vecs[i], net.top_vecs[i])

    def backward(self, upto=None, cleared=False):
        """Back-propagate through the stretches before index `upto` (default: all), in reverse;
        param diffs are complete when it returns."""
        net = self.net
        for k in reversed(range(len(self.stretches) if upto is None else upto)):
            n, idx = self.stretches[k]
            if n is None:
                for i in reversed(idx):
                    if net.need_backward[i]:
                        net.layers[i].backward(net.top_vecs[i], net.propagate_down[i], net.bottom_vecs[i])
            elif not self.backward_ok:
                self._backward_apart(n, idx)
            else:
                self._run(n, idx, forward=False, backward=True, cleared=cleared, combine=k == self.combine_at)

    def _backward_apart(self, n, idx):
        """The backward of a stretch in a net whose gradients live in another net (a test net
        sharing the training net's params: no per-share gradient buffers to combine): layer by
        layer, each over the shares in order on this thread, reading the workspaces the shares'
        forward wrote, adding to the params' diffs."""
        net, ranges = self.net, self.shares[n]
        calls = self.ws.calls(1, False)[0]          # the per-share workspaces, this thread's scratch
        for i in reversed(idx):
            if not net.need_backward[i]:
                continue
            layer, tops, bottoms = net.layers[i], net.top_vecs[i], net.bottom_vecs[i]
            if layer.batch_stats:
                for s, (lo, hi) in enumerate(ranges):
                    layer.grad_stats_rows(tops, lo, hi, calls[i][s])
                self._exchanged(layer.combine_grad_stats, self.workspaces[i], layer.grad_stats_keys, n)()
            grads = [b.diff for b in layer.blobs]
            for s, (lo, hi) in enumerate(ranges):
                layer.backward_rows(tops, net.propagate_down[i], bottoms, lo, hi, calls[i][s], grads, False)

    def forward_backward(self, cleared=False, step=None):
        """forward() then backward(): when the net ends in a stretch (LeNet: everything after the
        data layer), each share runs that stretch's forward and backward in one go, and where that
        is the net's only backward (and the gradients all the shares' own), the update `step` too."""
        last = len(self.stretches) - 1
        n, idx = self.stretches[last]
        if n is None or not self.backward_ok:
            self.forward()
            self.net.sum_loss()
            self.backward(cleared=cleared)
            return
        self.forward(self.stretches[:last])
        alone = self.single_back and last == self.combine_at and not self.late and self.group is None
        self._run(n, idx, forward=True, backward=True, cleared=cleared, combine=last == self.combine_at,
                  step=step if alone else None)
        self.net.sum_loss()
        self.backward(last, cleared=cleared)

    def _back(self, idx):
        return any(self.net.need_backward[i] for i in idx)

    def _segments(self, n, idx, forward, backward):
        """The per-share work of one run over layers idx (exec/stretches.py, share_steps), made once."""
        key = (tuple(idx), forward, backward)
        if key not in self._plans:
            self._plans[key] = share_steps(self.net, idx, forward, backward, self.chains,
                                           lambda combine, i, keys: self._exchanged(combine, self.workspaces[i], keys, n))
        return self._plans[key]

    def _setup(self, n, idx, forward, backward, combine, alone=False):
        """What a run over layers idx needs beyond its `cleared`: it depends only on these
        arguments and the thread count, so it is made once (batch-1 inference is mostly this).
        `alone`: the combination covers only the params of layers idx (time_layer)."""
        T_all = threads.count()
        key = ("run", n, tuple(idx), forward, backward, combine, alone, T_all)
        if key in self._plans:
            return self._plans[key]
        net = self.net
        segments = self._segments(n, idx, forward, backward)
        back = backward and any(net.need_backward[i] for i in idx)
        combine = combine and len(self.grads) > 1 and back
        ranges = self.shares[n]
        first, stop = self.own.get(n, (0, len(ranges)))
        inside = set(idx) if combine and self.late else ()
        late = [task for task in self.late if task[0] in inside]
        grads = self.late_grads if late else self.grads
        T = min(T_all, stop - first)
        blocks = tuple((first + a, first + b) for a, b in _blocks(stop - first, T))
        rows, after, final = range(-1, len(ranges)), None, None       # share s: grads[s], combined at the end
        if combine and self.single_back and self.group is None and len(segments) == 1:
            rows, after, final, _ = schedule(len(ranges), blocks)        # summed as they finish
        # a share's forward and backward in one go: its workspaces per thread (exec/workspaces.py)
        fused = forward and backward and len(segments) == 1
        calls = self.ws.calls(T, fused)
        arena = self.arena if (self.arena and list(idx) == list(self.stretches[-1][1]) and
                               (fused or (self.arena.forward_only and forward and len(segments) == 1))) else None
        dense = of_layers(self.dense, net.param_diff, net, idx) if alone else self.dense
        params = [clip(dense, *block) for block in _blocks(net.param_diff.size, T)] if combine else ()
        tiles = split_tasks(net, late, T) if late else [(0, 0)] * T
        while late and len(self.late_bufs) < T:
            self.late_bufs.append(aligned_zeros(len(ranges) * tile_elements(net, self.late), net.param_diff.dtype))
        finishes = [i for i in idx if self.finishes[i]] if forward else []
        barriers = []         # the last thread to reach one runs the segment's combination
        if T > 1:
            me = weakref.ref(self)             # (kept in the plan: no cycle through a bound method)
            barriers = [threads.Barrier(T, at) for _, at in segments[:-1]] + (
                [threads.Barrier(T, lambda: me()._before_step())] if combine else [])
        self._plans[key] = out = (segments, combine, ranges, (first, stop), late, grads, T, blocks, rows, after, final,
                                  calls, arena, params, dense, tiles, finishes, barriers, team.teams_for(T, ranges, idx, net))
        return out

    def _run(self, n, idx, forward, backward, cleared=False, combine=False, step=None, alone=False):
        net = self.net
        (segments, combine, ranges, own, late, grads, T, blocks, rows, after, final, calls, arena, params,
         dense, tiles, finishes, barriers, teams) = self._setup(n, idx, forward, backward, combine, alone)
        if not (combine or T == threads.count() == 1):
            step = None       # no sum of the shares' gradients here (the update's own run takes every thread)
        self._step = None if step is None else (step, finishes, own)
        updates = params if combine else [[(0, net.param_diff.size)]]
        layers, pdown, ws, sole = net.layers, net.propagate_down, self.workspaces, self.sole
        bvecs, tvecs = net.bottom_vecs, net.top_vecs
        shared = bvecs, tvecs, self.chains

        def work(t, first, stop):
            ws = calls[t]
            try:
                for k, (steps, combine_stats) in enumerate(segments):
                    for s in range(first, stop):
                        lo, hi = ranges[s]
                        bv, tv, ch = arena.views(t, s, lo) if arena else shared
                        run_steps(steps, layers, bv, tv, ch, pdown, lo, hi, ws, s, grads, rows[s] + 1, sole,
                                  s > 0 or cleared)
                        for a, b in after[s] if after else ():
                            for lo_, hi_ in dense:
                                add_child(net.param_diff, self.scratch, rows, a, b, lo_, hi_)
                    if combine_stats is not None:
                        if barriers:
                            barriers[k].wait()
                        else:
                            combine_stats()
            except BaseException:
                for b in barriers:
                    b.abort()                # the others stop waiting; threads.run raises this error
                raise
            if combine:
                if barriers:
                    barriers[-1].wait()
                for i, j, a0, a1 in late[tiles[t][0]:tiles[t][1]]:
                    form_tile(layers[i], tvecs[i], bvecs[i], j, a0, a1, ranges, own, self.late_bufs[t])
                for lo_, hi_ in params[t]:
                    if final is None and hi_ > lo_:
                        combine_shares(net.param_diff, self.scratch, lo_, hi_)
                    for a, b in final or ():
                        add_child(net.param_diff, self.scratch, rows, a, b, lo_, hi_)
            if step is not None:          # the params whose gradients this thread summed, updated
                if not barriers:
                    self._before_step()
                for lo_, hi_ in updates[t] if step.applied else ():
                    step.block(lo_, hi_)
        try:
            threads.run(*team.staffed(work, blocks, teams))
        except BaseException:
            for b in barriers:
                b.reset()
            raise
        finally:
            self._step = None
        if step is None:
            self._finish(finishes, own)

    def _finish(self, finishes, own):
        """The work of layers after every share's forward (a loss's sum over the shares)."""
        net, ws = self.net, self.workspaces
        for i in finishes:
            if self.group is not None and net.layers[i].finish_keys:
                self.group.exchange(ws[i], net.layers[i].finish_keys, *own)
            net.layers[i].finish_rows(net.top_vecs[i], ws[i])

    def _before_step(self):
        """Before a pass applies the update (the last barrier's action): its finishing work and
        the loss, which must be finite for the update to apply (the Solver then stops)."""
        if self._step is not None:
            step, finishes, own = self._step
            self._finish(finishes, own)
            self.net.sum_loss()
            step.applied = math.isfinite(self.net.loss)

    # -- one layer at a time (netcli time) ---------------------------------------------------------
    def synchronize(self):
        """Every pass has finished when it returns here (the GPU executor waits for its device)."""

    def counters(self):
        """No kernels launched, nothing copied: the passes run on the host's arrays."""
        return 0, 0, 0.0

    def time_layer(self, i, forward):
        """Run layer i alone, as training would (over shares, on the threads), its backward
        combining the shares' gradients of its own params only; None: timed by the caller's clock
        (the GPU executor returns its device's times)."""
        net = self.net
        n = self.batch_of[i]
        if n is None or (not forward and not self.backward_ok):
            if forward:
                net.layers[i].forward(net.bottom_vecs[i], net.top_vecs[i])
            else:
                net.layers[i].backward(net.top_vecs[i], net.propagate_down[i], net.bottom_vecs[i])
            return
        self._run(n, [i], forward=forward, backward=not forward, combine=not forward, alone=True)

