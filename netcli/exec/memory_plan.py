"""The memory plan of a net on the CPU executor: every buffer a training iteration (or, for a TEST
net, a forward pass) writes, counted before the executor allocates its own, so that `netcli check`
and `netcli time` can say what a run will need and a net that cannot fit is refused in one line.

Counted are the pages a pass writes (NumPy's zeroed arrays take no memory until written): the
blobs' data, the diffs some layer writes (a bottom that takes a gradient, a loss top), the params
and their gradients, the gradient partials of shares 1..S-1 (exec/cpu.py), each layer's workspace
for every share, one scratch buffer per running thread, the arrays layers keep (a loss's
probabilities, a pooling mask), the data layers' prefetch buffers, the solver's history and
per-element multipliers (Solver adds them), and the process as it was before the net was built
(the interpreter, NumPy, Numba, the data set, other nets).

Each item is fixed + per_sample * batch + per_share * (shares - 1), so that the plan at another
batch (the largest that fits, for the refusal) follows from the one at this batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..blob import ALIGN_BYTES, aligned_zeros
from ..errors import NetcliError
from .late_grads import tile_elements

MB = 2 ** 20
# Numba's compiled kernels and LLVM, loaded at the first pass (measured: 60-90 MB on x86-64)
KERNELS_BYTES = 80 * MB


def resident_bytes(key="VmRSS"):
    """This process's resident memory now (Linux: VmRSS), or 0 where unknown."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def peak_resident_bytes():
    """This process's peak resident memory so far (Linux: VmHWM), or 0 where unknown."""
    return resident_bytes("VmHWM")


def memory_available():
    """Bytes this process may hold: what it holds now plus what the machine has available
    (Linux: MemAvailable), at most the address-space limit (ulimit -v)."""
    from ..blob import address_space_limit, physical_memory
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024 + resident_bytes()
    except (OSError, ValueError, IndexError):
        pass
    limit = address_space_limit()
    return min(avail or physical_memory(), limit or 2 ** 62)


@dataclass
class Item:
    what: str
    fixed: int = 0
    per_sample: float = 0.0
    per_share: int = 0          # times (shares - 1)


@dataclass
class MemoryPlan:
    batch: int
    shares: int
    threads: int
    training: bool
    items: list = field(default_factory=list)
    count_shares: object = None  # batch -> the executor's number of shares for it

    def add(self, what, fixed=0, per_sample=0.0, per_share=0):
        if fixed or per_sample or per_share:
            self.items.append(Item(what, int(fixed), float(per_sample), int(per_share)))

    def bytes_at(self, item, batch=None, shares=None):
        batch = self.batch if batch is None else batch
        shares = self.shares if shares is None else shares
        return item.fixed + item.per_sample * batch + item.per_share * (shares - 1)

    @property
    def total(self):
        return int(sum(self.bytes_at(i) for i in self.items))

    def total_at(self, batch):
        s = self.count_shares(batch) if self.count_shares is not None and batch != self.batch else self.shares
        return int(sum(self.bytes_at(i, batch, s) for i in self.items))

    def biggest(self, k=5):
        """The k largest items: [(what, bytes)]."""
        got = sorted(((i.what, int(self.bytes_at(i))) for i in self.items), key=lambda x: -x[1])
        return got[:k]

    def largest_batch(self, limit):
        """The largest batch whose plan stays within `limit` bytes (0: none)."""
        lo, hi = 0, max(self.batch, 1)
        while self.total_at(hi) <= limit and hi < 2 ** 24:
            lo, hi = hi, hi * 2
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if self.total_at(mid) <= limit else (lo, mid)
        return lo

    def lines(self, k=5):
        what = "one training iteration" if self.training else "one forward pass"
        head = (f"Memory plan ({what} at batch {self.batch}, {self.shares} share{'s' if self.shares != 1 else ''}, "
                f"{self.threads} thread{'s' if self.threads != 1 else ''}): {self.total / MB:,.0f} MB in all")
        return [head, "  biggest: " + ", ".join(f"{w} {b / MB:,.0f} MB" for w, b in self.biggest(k))]


def _address(a):
    return a.__array_interface__["data"][0]


def _nbytes(shape, dtype):
    return int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize


def spec_bytes(spec):
    return sum(_nbytes(shape, dt) for shape, dt in spec.values())


def _split(nbytes, first_dim, batch):
    """(fixed, per_sample) of an array of nbytes whose first axis is first_dim."""
    return (0, nbytes / batch) if batch and first_dim == batch else (nbytes, 0)


def plan_cpu(executor, ws, threads, partials, count_shares=None, arena_arrays=(), arena_bytes=0):
    """The CPU executor's plan for its net (executor.shares set, ws its exec.workspaces.Workspaces;
    nothing of either allocated); partials: the rows of share gradient partials a training
    iteration writes (exec/grad_tree.py; 0 when its params are another net's); count_shares:
    batch -> the number of shares; arena_arrays: the addresses of whole-batch arrays a training
    iteration replaces by its threads' arenas (exec/arena.py), each of arena_bytes."""
    net = executor.net
    batches = [n for n, _ in executor.stretches if n is not None]
    batch = max(batches, default=0) or max((net.blobs[n].shape[0] for n in net.inputs
                                            if net.blobs[n].data.ndim), default=1)
    S = max((len(s) for s in executor.shares.values()), default=1)
    training = net.phase == "TRAIN" and any(net.need_backward)
    T = max(1, min(threads, S))
    plan = MemoryPlan(batch, S, T, training, count_shares=count_shares)
    plan.add("this process before the net", getattr(net, "rss_before", 0))
    plan.add("compiled kernels", KERNELS_BYTES)
    written = {}                  # address -> (bytes, first dim)
    diffs = {}
    for i, layer in enumerate(net.layers):
        for t in net.top_vecs[i]:
            written[_address(t.data)] = max(written.get(_address(t.data), (0, 0)), (t.data.nbytes, _dim0(t.data)))
        for b, down in zip(net.bottom_vecs[i], net.propagate_down[i]):
            if training and net.need_backward[i] and down:
                diffs[_address(b.diff)] = max(diffs.get(_address(b.diff), (0, 0)), (b.diff.nbytes, _dim0(b.diff)))
    for what, table in (("activations", written), ("activation gradients", diffs)):
        parts = [_split(nb, d, batch) for addr, (nb, d) in table.items() if addr not in arena_arrays]
        plan.add(what, sum(p[0] for p in parts), sum(p[1] for p in parts))
    plan.add("params", net.param_data.nbytes)
    if training:
        late = executor.late                 # formed after the pass, tile by tile (exec/late_grads.py)
        late_bytes = sum(net.layers[i].blobs[j].diff[a0:a1].nbytes for i, j, a0, a1 in late)
        plan.add("param gradients", net.param_diff.nbytes)
        plan.add(f"activations and gradients of {T} share{'s' if T != 1 else ''} in flight (arenas)",
                 T * arena_bytes)
        partial = net.param_diff.nbytes - late_bytes
        if partials == S - 1:
            plan.add("param gradient partials of shares 1..S-1", per_share=partial)
        else:
            plan.add(f"param gradient partials ({partials} of the {S} shares at once)", partials * partial)
        if late:
            plan.add(f"late gradient tiles of {T} thread{'s' if T != 1 else ''}",
                     T * S * tile_elements(net, late) * net.param_diff.itemsize)
    for n, idx in executor.stretches:
        for i in idx if n is not None else ():
            nbytes, per_share = ws.planned(i, T if training else 0)
            if not training and not per_share:       # a forward pass alone keeps them per share
                nbytes, per_share = sum(spec_bytes(net.layers[i].workspace(r)) for r in ws.rows[i]), True
            fixed = len(ws.rows[i]) * spec_bytes(net.layers[i].workspace(0)) if per_share else nbytes
            plan.add(f"workspace of {net.layer_names[i]}", fixed, (nbytes - fixed) / n)
    plan.add(f"scratch of {T} thread{'s' if T != 1 else ''}", T * ws.scratch_bytes)
    for i, layer in enumerate(net.layers):
        held = [_split(v.nbytes, _dim0(v), batch) for v in vars(layer).values()
                if isinstance(v, np.ndarray) and v.base is None]
        plan.add(f"buffers of {net.layer_names[i]}", sum(h[0] for h in held) + layer.buffer_bytes,
                 sum(h[1] for h in held))
    return plan


def _dim0(a):
    return a.shape[0] if a.ndim else 0


def plan_solver(net, rule):
    """The solver's own arrays in its TRAIN net's plan (where its executor has one): the update
    rule's history and its per-element multipliers; refused as the net's plan is."""
    plan = getattr(net.executor, "memory", None)
    if plan is None:
        return
    plan.add("solver history", sum(h.nbytes for h in rule.history))
    plan.add("solver lr and decay multipliers", rule.lr.nbytes + rule.decay.nbytes)
    refuse_if_too_big(plan, net, "the net with its solver")


def refuse_if_too_big(plan, net, where="the net"):
    """One line when the plan exceeds the memory this process may have (memory_available)."""
    limit = memory_available()
    if plan.total <= limit:
        return
    fits = plan.largest_batch(limit)
    advice = (f"a batch of at most {fits} fits" if fits else "not even a batch of 1 fits")
    raise NetcliError(f"{net.source}: {where} ({net.phase}) would need {plan.total / MB:,.0f} MB "
                      f"({', '.join(f'{w} {b / MB:,.0f} MB' for w, b in plan.biggest(3))}), but this process "
                      f"may have {limit / MB:,.0f} MB; {advice} (netcli check prints the memory plan)")


def allocate(spec):
    """{name: (shape, dtype)} -> {name: zeroed array} (blob.aligned_zeros)."""
    return {name: aligned_zeros(shape, dtype) for name, (shape, dtype) in spec.items()}


def packed(spec, align=ALIGN_BYTES):
    """{name: (shape, dtype)} laid out in one byte buffer: (each array's offset, total bytes)."""
    offsets, end = [], 0
    for shape, dtype in spec.values():
        offsets.append(end)
        end += -(-_nbytes(shape, dtype) // align) * align
    return offsets, end
