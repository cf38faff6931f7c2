"""The one line that ends `netcli train`: where the run got to, how long it took, the last test's
scores, and where the weights and the run log are."""
from __future__ import annotations

import numpy as np

from .snapshots import snap_name
from ..text import printable


def _scores(results):
    parts = []
    for name, value in results.items():
        if np.ndim(value) == 0:
            parts.append(f"{printable(name)} = {float(value):.4g}")
    return ", ".join(parts)


def summary_line(solver, seconds, finished):
    """E.g. `Done: iteration 2000 of 2000 (2000 trained in 38.1 s, 52.5 iter/s); test at iteration
    2000: accuracy = 0.972, loss = 0.0871; weights: snapshots/lenet_iter_2000.weights.npz
    (+ .solverstate.npz); run log: snapshots/lenet.log.jsonl`."""
    s = solver
    trained = getattr(s, "trained", 0)            # this run's iterations (Solver.step sets it)
    rate = f", {trained / seconds:.3g} iter/s" if trained and seconds > 0 else ""
    head = "Done" if finished else "Stopped"
    if s.early_stopped:
        head = "Stopped early (no improvement)"
    parts = [f"{head}: iteration {s.iter} of {s.max_iter} ({trained} trained in {seconds:.1f} s{rate})"]
    final = getattr(s, "final_test", None)
    last = getattr(s, "last_test", None)
    if final:
        parts.append(f"final test on the TEST set: {_scores(final)}")
    elif last:
        parts.append(f"test at iteration {getattr(s, 'last_test_iter', s.iter)}: {_scores(last)}")
    else:
        parts.append("no test ran")
    if s.early_stopped:
        best = s.early_stopping.m.best_iter
        parts.append(f"best weights: {snap_name(s.prefix, best, 'weights')}")
    elif s.last_snapshot_iter is not None:
        parts.append(f"weights: {snap_name(s.prefix, s.last_snapshot_iter, 'weights')} (+ .solverstate.npz)")
    else:
        parts.append("no snapshot written")
    if s.log_path:
        parts.append(f"run log: {s.log_path}")
    return "; ".join(parts)
