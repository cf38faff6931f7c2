"""pycaffe's solvers over netcli.Solver: SGDSolver(path), NesterovSolver, AdaGradSolver,
RMSPropSolver, AdaDeltaSolver, AdamSolver, and get_solver(path).

As in Caffe 1.0, the class decides the update rule (SGDSolver(param_file) is an SGDSolver
whatever the file's `type` says: _caffe.cpp constructs the class, whose type() is fixed);
get_solver picks the class from the file's `type` (Caffe's SolverRegistry). Python layers run
(the script is the user's own code; caffe.Net says the same). `.net` and `.test_nets` are
caffe.Net views of the solver's nets; `.iter` reads and writes the iteration.
"""
from __future__ import annotations

import os

import numpy as np

from ..solver import Solver as _NetcliSolver
from ..update_rules import RULES
from .pynet import Net


class _Callback:
    """pycaffe's add_callback(on_start, on_gradients) as netcli solver hooks: on_start before
    each iteration's passes, on_gradients once its gradients are complete (after the last of
    iter_size passes), before the update, as Caffe's Solver::Step calls them."""

    def __init__(self, on_start, on_gradients):
        self.start, self.gradients, self.passes = on_start, on_gradients, 0

    def __getattr__(self, name):          # the events pycaffe has no hook for
        if name.startswith("on_"):
            return lambda *args: None
        raise AttributeError(name)

    def on_iteration_start(self, solver):
        self.passes = 0
        self.start()

    def on_gradients(self, solver):
        self.passes += 1
        if self.passes == solver.p.iter_size:
            self.gradients()


class _UpdateInDiff:
    """Caffe's SGDSolver computes each update into the params' diffs and subtracts it, so after
    solver.step(n) pycaffe shows the last update there; netcli keeps the gradient: on the CPU
    this hook writes the update (the params before minus after) into the diffs after each one."""

    def __getattr__(self, name):
        if name.startswith("on_"):
            return lambda *args: None
        raise AttributeError(name)

    def on_iteration_start(self, solver):
        net = solver.net
        self.before = net.param_data.copy() if net.device == "cpu" else None

    def on_after_update(self, solver):
        if self.before is not None:
            np.subtract(self.before, solver.net.param_data, out=solver.net.param_diff)
            self.before = None


class Solver:
    """A netcli.Solver with pycaffe's names; `native` is the netcli.Solver."""
    type = None                           # the update rule the class stands for (None: the file's)

    def __init__(self, path):
        from . import device
        gpu = int(device()[5:]) if device() != "cpu" else -1
        self.native = s = _NetcliSolver(os.fspath(path), allow_python=True, gpu=gpu, release_rows=False,
                                        test_backward=True)
        if self.type is not None and s.p.type != self.type.upper():
            s.p.type = self.type.upper()              # the class decides, as in Caffe
            s.rule = RULES[s.p.type](s.p, s.rule.lr, s.rule.decay)
        self._views = {}
        s.callbacks.items.append(_UpdateInDiff())

    def _view(self, net):
        if id(net) not in self._views or self._views[id(net)].native is not net:
            self._views[id(net)] = Net.wrap(net)
        return self._views[id(net)]

    @property
    def net(self):
        return self._view(self.native.net)

    @property
    def test_nets(self):
        return [self._view(n) for n in self.native.test_nets]

    @property
    def iter(self):
        return self.native.iter

    @iter.setter
    def iter(self, value):
        self.native.iter = int(value)

    @property
    def param(self):
        """The solver's parsed fields (base_lr, max_iter, ...; not a caffe_pb2 message)."""
        return self.native.p

    def _passed(self):
        for view in self._views.values():
            view.passed("data", "diff")

    def step(self, iters):
        try:
            self.native.step(int(iters))
        finally:
            self._passed()

    def solve(self, resume=None):
        try:
            self.native.solve(os.fspath(resume) if resume else None)
        finally:
            self._passed()

    def restore(self, path):
        self.native.restore(os.fspath(path))

    def snapshot(self):
        self.native.snapshot()

    def add_callback(self, on_start, on_gradients):
        self.native.callbacks.items.append(_Callback(on_start, on_gradients))

    def apply_update(self):
        """One update of the params from the gradients they hold, at the current iteration's
        learning rate (Caffe's ApplyUpdate; the iteration does not advance)."""
        self.native.net.executor.push()
        self.native._apply_update(display=False)
        self.native.net.executor.pull()

    def share_weights(self, net):
        """Make `net` use the training net's params (pycaffe's share_weights)."""
        (net.native if isinstance(net, Net) else net).share_weights(self.native.net)


class SGDSolver(Solver):
    type = "SGD"


class NesterovSolver(Solver):
    type = "Nesterov"


class AdaGradSolver(Solver):
    type = "AdaGrad"


class RMSPropSolver(Solver):
    type = "RMSProp"


class AdaDeltaSolver(Solver):
    type = "AdaDelta"


class AdamSolver(Solver):
    type = "Adam"


_CLASSES = {c.type.upper(): c for c in (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver,
                                        AdamSolver)}


def get_solver(path):
    """The solver class its file's `type` names (Caffe's SolverRegistry::CreateSolver)."""
    s = Solver(path)
    cls = _CLASSES.get(s.native.p.type)
    if cls is None:          # a rule of netcli's own (AdamW): a plain Solver of that rule
        return s
    s.__class__ = cls
    return s
