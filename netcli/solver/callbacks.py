"""What hooks into the Solver's loop (Caffe's Solver::Callback): display, tests' monitors (best
weights, early stopping, plateau), signals, the run log and the distribution over processes all
implement `Callback`, and the loop calls each event at one place, for every callback in order.

The loop's events, in the order they come:
    on_start(solver)                 solve() begins (after a restore), before the first iteration
    on_iteration_start(solver)       an update begins (the param diffs are cleared)
    on_gradients(solver)             after each forward/backward pass (iter_size per update)
    on_after_update(solver)          the update is applied and solver.iter counts it
    on_test(solver, results)         a periodic test finished (not an interrupted one): {output: mean}
    on_iteration_end(solver)         after the test that falls at this iteration, before the snapshot
    on_snapshot(solver, written)     a snapshot was taken: (weights, state) paths, None if not written
    on_end(solver, finished, error)  solve() ends, however it ends

`Processes` is the callback that says how the training is spread over processes: `Processes`
itself is one process (netcli.distributed.DataParallel is several processes); the loop asks it
the few questions that depend on it, and never on which kind it has.
"""
from __future__ import annotations


class Callback:
    """Every event is a no-op: a callback overrides the events it needs."""

    def on_start(self, solver):
        pass

    def on_iteration_start(self, solver):
        pass

    def on_gradients(self, solver):
        pass

    def on_after_update(self, solver):
        pass

    def on_test(self, solver, results):
        pass

    def on_iteration_end(self, solver):
        pass

    def on_snapshot(self, solver, written):
        pass

    def on_end(self, solver, finished, error):
        pass


class Callbacks(Callback):
    """Callbacks called in order, as one."""

    def __init__(self, items=()):
        self.items = [c for c in items if c is not None]

    def __iter__(self):
        return iter(self.items)

    def on_start(self, solver):
        for c in self.items:
            c.on_start(solver)

    def on_iteration_start(self, solver):
        for c in self.items:
            c.on_iteration_start(solver)

    def on_gradients(self, solver):
        for c in self.items:
            c.on_gradients(solver)

    def on_after_update(self, solver):
        for c in self.items:
            c.on_after_update(solver)

    def on_test(self, solver, results):
        for c in self.items:
            c.on_test(solver, results)

    def on_iteration_end(self, solver):
        for c in self.items:
            c.on_iteration_end(solver)

    def on_snapshot(self, solver, written):
        for c in self.items:
            c.on_snapshot(solver, written)

    def on_end(self, solver, finished, error):
        for c in self.items:
            c.on_end(solver, finished, error)


class Processes(Callback):
    """One process: it logs, tests and writes files (it is the `root`), and its gradients are the
    batch's. netcli.distributed.DataParallel answers the same questions for several processes."""

    root = True           # this process logs, tests and writes the files
    group = None          # the netcli.distributed.Group, where there is one

    def on_init(self, solver):
        """The Solver is being made (its nets are not built yet): solver.seed is the seed to use."""

    def on_setup(self, solver, weights):
        """The Solver is made (nets built and placed, `weights` loaded if given)."""

    def cleared(self, solver, k):
        """Before pass k of an update: True when the param diffs are zero (the pass may write its
        gradients instead of adding them); clears them where this process starts from zero."""
        return k == 0

    def agreed_request(self, solver):
        """The signal's request that every process acts on at this iteration (None, "none",
        "snapshot" or "stop"): one process acts on its own. Reads solver.request once and never
        writes it, so a signal caught meanwhile is not lost: it counts at the next iteration."""
        return solver.request

    def from_root(self, compute):
        """compute() on the root process; every process gets its result."""
        return compute()

    def on_root(self, write):
        """write() on the root process alone (files); None elsewhere."""
        return write()

    def share_params(self, params):
        """The root's params (an array) in every process."""


def processes(group):
    """The Processes for a netcli.distributed.Group (None: one process): the group's own callback."""
    return Processes() if group is None else group.callback()
