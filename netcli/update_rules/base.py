"""What every update rule shares, written once: the Rule class (its history, the per-thread
slices of the flat buffers, the registry), the gradient Caffe's solvers use, flush-to-zero, and
the two drivers that run a rule's per-element formula: a fused Numba loop on the CPU and one
elementwise CUDA kernel (compiled on first use, so netcli imports without numba-cuda).

A rule is a subclass in its own module of this package that sets `name` (Caffe's `type:`),
`n_history`, its `formula` (a plain Python function) and `scalars()`; defining the class registers it (see docs/adding-an-update-rule.md).

The gradient the formula sees is g' = scale*g + decay*w (L2) or decay*sign(w) (L1): `scale` is
1/iter_size times any clipping factor and `decay` the per-element weight_decay*decay_mult, as
Caffe adds weight decay for every rule (a rule with decoupled decay sets `gradient` to
`scaled_gradient` and applies the decay `d` itself). Results below float32's smallest normal
number are stored as zero (flush to zero): under weight decay some weights and running averages
drift into the subnormal range, where every operation that touches them becomes many times slower
(RMSProp on LeNet went from 58 to 15 iterations/s), and they carry nothing a float32 net can use."""
from __future__ import annotations

import bisect
import dataclasses
import hashlib
import marshal

import numpy as np
from numba import njit
from numba.extending import register_jitable

from ..exec import threads
from .element import ONE, TINY, caffe_gradient, element, flush, scaled_gradient  # noqa: F401 (the rules' imports)

RULES = {}                     # the schema's spelling of `type` (upper case) -> Rule subclass


def _cpu_loop(n_history, formula, gradient, stamp):
    """The fused loop over elements lo..hi of the flat buffers, one run of equal multipliers
    (pieces) at a time. Numba caches it on disk per rule: its key holds the closure's cells (the
    rule's functions, by name) and `stamp`, the hash of their code."""
    one = register_jitable(element(n_history, formula, gradient, flush))

    def update(w, g, h0, h1, lo, hi, starts, stops, lrs, decays, rate, args, scale, l1):
        """starts, stops, lrs, decays: the pieces (Rule.pieces) of the whole buffer."""
        stamp                                           # noqa: B018 - part of the cache key
        for k in range(starts.shape[0]):
            a, b = max(starts[k], lo), min(stops[k], hi)
            if b > a:       # on slices, from 0: an index the loop knows is not negative vectorises
                r, decay, w_, g_, h0_, h1_ = rate * lrs[k], decays[k], w[a:b], g[a:b], h0[a:b], h1[a:b]
                for i in range(b - a):
                    one(i, w_, g_, h0_, h1_, r, decay, args, scale, l1)
    # NumPy's error model: a division by zero (a rule's delta set to 0) gives inf or nan, as
    # Caffe's, which the solver's loss check reports; Python's model checks every division for
    # zero, and that branch kept the loop scalar (Adam over 431k params 1.42 -> 0.17 ms).
    return njit(cache=True, nogil=True, error_model="numpy")(update)


class PerParam:
    """One float32 value per param over the flat param buffer (a multiplier: lr_mult, weight decay),
    kept as runs (lo, hi, value) of equal values instead of one value per element (two such
    vectors took twice the params' memory). np.asarray() gives the per-element vector (the GPU's
    copy); the CPU loop takes each run's value as one float32. Reading it per element, through a
    stride-0 view, kept the loop from vectorising: SGD over LeNet's 431k params took 0.60 ms
    instead of 0.11 ms (a 2-core AMD EPYC), a tenth of a training step at batch 32."""

    def __init__(self, values, offsets):
        self.runs = []
        for v, lo, hi in zip(values, offsets[:-1], offsets[1:]):
            v, lo, hi = np.float32(v), int(lo), int(hi)
            if self.runs and self.runs[-1][2] == v and self.runs[-1][1] == lo:
                self.runs[-1] = (self.runs[-1][0], hi, v)
            elif hi > lo:
                self.runs.append((lo, hi, v))
        self.size = int(offsets[-1]) if len(offsets) else 0
        self.nbytes = 16 * len(self.runs)
        self.starts = [lo for lo, _, _ in self.runs]
        self.cuts = sorted({b for lo, hi, _ in self.runs for b in (lo, hi)})

    def __array__(self, dtype=None, copy=None):
        out = np.zeros(self.size, np.float32)
        for lo, hi, v in self.runs:
            out[lo:hi] = v
        return out if dtype is None else out.astype(dtype)

    @classmethod
    def of(cls, values):
        """The runs of a per-element float32 vector (kept as it is when already runs)."""
        if isinstance(values, PerParam):
            return values
        values = np.asarray(values, np.float32).ravel()
        starts = np.concatenate([[0], np.flatnonzero(values[1:] != values[:-1]) + 1]) if values.size else []
        return cls(values[starts] if values.size else [], np.append(starts, values.size))

    def value(self, lo, hi):
        """The float32 of elements lo..hi (inside one run; 0 between runs)."""
        k = bisect.bisect_right(self.starts, lo) - 1
        return self.runs[k][2] if k >= 0 and hi <= self.runs[k][1] else np.float32(0)


def _pieces(lo, hi, *vectors):
    """[lo, hi) cut at every run boundary of the PerParam vectors."""
    cuts = {lo, hi}
    for v in vectors:
        cuts.update(v.cuts[bisect.bisect_right(v.cuts, lo):bisect.bisect_left(v.cuts, hi)])
    cuts = sorted(cuts)
    return list(zip(cuts[:-1], cuts[1:]))


class Rule:
    """One update rule over the net's flat param buffers; history is kept as flat arrays, which
    snapshots store."""
    name = None            # Caffe's spelling of `type:` (Nesterov, AdaGrad, ...)
    solver_type = None     # Caffe's legacy SolverParameter.solver_type number (None: not in Caffe)
    n_history = 1          # arrays of per-element state
    fields = ()            # SolverParameter fields only some rules read (config.schema.Field)
    formula = None         # formula(w, g, r, d, (history...), args) -> (w, (history...))
    gradient = caffe_gradient
    _compiled = None       # {device: compiled driver} per class, made on first use

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        if cls.name is not None:
            RULES[cls.name.upper()] = cls
            cls._compiled = {}
        if "formula" in cls.__dict__:             # callable from Numba code, inlined into the loop
            register_jitable(inline="always")(cls.formula)

    def __init__(self, p, lr_mult, decay):
        """lr_mult, decay: per-element learning-rate multipliers and weight decay (float32 arrays,
        or PerParam runs)."""
        self.p = p
        size = lr_mult.size
        self.lr, self.decay = PerParam.of(lr_mult), PerParam.of(decay)
        self.l1 = p.regularization_type == "L1"
        self.history = [np.zeros(size, np.float32) for _ in range(self.n_history)]
        self.ranges = threads.chunks(size) if size >= 1 << 16 else [(0, size)]
        self._pieces = None

    @classmethod
    def check(cls, p, problems, at):
        """Add a problem for each solver field this rule cannot use (at(field): its location)."""

    def scalars(self, rate, it):
        """(the rate as float32, the tuple of float32 `args` the formula takes) for iteration `it`."""
        raise NotImplementedError

    def arguments(self, w, g, history, lr, decay, rate, it, scale):
        """The driver's arguments, on any device's arrays."""
        rate, args = self.scalars(rate, it)
        h1 = history[1] if len(history) > 1 else history[0][:0]     # (never read; not an alias)
        return (w, g, history[0], h1, lr, decay, rate, args, np.float32(scale), self.l1)

    @classmethod
    def compiled(cls, device):
        """The rule's driver for `device` ("cpu": the fused loop; "cuda": the kernel)."""
        driver = cls._compiled.get(device)
        if driver is None:
            f, grad = cls.formula, cls.gradient
            if device == "cpu":
                code = marshal.dumps((f.__code__, grad.__code__, element.__code__))
                driver = _cpu_loop(cls.n_history, f, grad, hashlib.sha256(code).hexdigest())
            else:
                from .cuda import kernel
                driver = kernel(cls.n_history, f, grad)
            cls._compiled[device] = driver
        return driver

    def pieces(self):
        """(starts, stops, lr, decay): [0, size) cut at every run boundary of the lr and decay
        multipliers, with each piece's two float32 values: the CPU loop's runs, made once. One
        call per thread walks them (a call per piece, from Python, took 63 us for LeNet's 8
        pieces on 2 threads, the loop itself 25 us per half; 2-core AMD EPYC)."""
        if self._pieces is None:
            cuts = _pieces(0, self.lr.size, self.lr, self.decay)
            self._pieces = (np.array([a for a, _ in cuts], np.int64), np.array([b for _, b in cuts], np.int64),
                            np.array([self.lr.value(a, b) for a, b in cuts], np.float32),
                            np.array([self.decay.value(a, b) for a, b in cuts], np.float32))
        return self._pieces

    def cpu_step(self, w, g, rate, it, scale=1.0):
        """block(lo, hi): one update of params lo..hi on the CPU (each element once per step)."""
        loop = self.compiled("cpu")
        w, g, h0, h1, lr, decay, *rest = self.arguments(w, g, self.history, self.lr, self.decay, rate, it, scale)
        pieces = self.pieces()
        return lambda lo, hi: loop(w, g, h0, h1, lo, hi, *pieces, *rest)

    def step(self, w, g, rate, it, scale=1.0):
        """One update of every param on the CPU, over per-thread slices."""
        block = self.cpu_step(w, g, rate, it, scale)
        threads.run(lambda i, lo, hi: block(lo, hi), self.ranges)


class Step:
    """One update a training pass may apply itself (CpuExecutor.forward_backward): each thread
    updates the params whose shares' gradients it has just summed, while they are in its cache,
    and the update needs no hand-over of its own to the threads. The pass applies it only when
    the loss it computed is finite (`applied`); else the Solver goes on as without it."""

    def __init__(self, rule, w, g, rate, it, scale=1.0):
        self.block = rule.cpu_step(w, g, rate, it, scale)
        self.applied = False


def solver_fields():
    """The fields the rules declare, each once (in the order first declared), its doc naming the
    rules that read it."""
    fields, readers = {}, {}
    for cls in RULES.values():
        for f in cls.fields:
            fields.setdefault(f.name, f)
            readers.setdefault(f.name, []).append(cls.name)
    return [dataclasses.replace(f, doc=f"{', '.join(readers[f.name])}: {f.doc}") for f in fields.values()]
