"""The parts the Solver's loop calls besides the update: a test-output monitor (for early stopping
and lr_policy plateau), early stopping, signal handling, and the log lines of Caffe's display."""
from __future__ import annotations

import signal
import weakref

import numpy as np

from .. import log
from ..errors import ConfigError
from .callbacks import Callback

SIGNAL_EFFECTS = ("snapshot", "stop", "none")
SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
# Signals that take another's effect. Open MPI's mpiexec ends a job itself on SIGTERM, SIGINT and
# SIGHUP (the ranks get SIGTERM, then SIGKILL a quarter second later; their output is no longer
# relayed; exit status 1), but it forwards SIGUSR1 to every rank: `kill -USR1 <mpiexec>` is the
# way to snapshot and stop such a job from outside.
SAME_AS = {"SIGUSR1": "SIGTERM"}


class Monitor:
    """Tracks one test output: the best value, where it was reached, tests since (`bad`)."""

    def __init__(self, spec, outputs, where, name, has_tests):
        if spec.monitor not in outputs:
            raise ConfigError(f"{where(spec, 'monitor')}: field '{name}.monitor': '{spec.monitor}' is not an "
                              f"output of the test net (outputs: {', '.join(outputs) or 'none'})")
        if not has_tests:
            raise ConfigError(f"{where(spec, 'monitor')}: field '{name}': needs tests (test_interval)")
        self.name, self.monitor = name, spec.monitor
        self.patience, self.min_delta = getattr(spec, "patience", None), spec.min_delta
        self.mode = spec.mode if spec.mode != "AUTO" else (
            "MAX" if any(k in spec.monitor.lower() for k in ("acc", "precision", "recall", "f1")) else "MIN")
        self.best, self.best_iter, self.bad = None, None, 0

    def observe(self, results, it):
        """Record a test; True when it improved on the best."""
        value = results[self.monitor]
        better = self.best is None or (value > self.best + self.min_delta if self.mode == "MAX"
                                       else value < self.best - self.min_delta)
        if better:
            self.best, self.best_iter, self.bad = float(value), it, 0
        else:
            self.bad += 1
        return better

    def state(self):
        return {"best": self.best, "best_iter": self.best_iter, "bad": self.bad}

    def set_state(self, saved):
        for f in ("best", "best_iter", "bad"):
            if f in saved:
                setattr(self, f, saved[f])


def monitor_hooks(p, outputs, where, has_tests):
    """The monitors of early_stopping, plateau and snapshot_best that the solver file asks for,
    with the early stopping and best-weights hooks: (monitors by name, EarlyStopping or None,
    BestWeights or None)."""
    monitors = {name: Monitor(getattr(p, name), outputs, where, name, has_tests)
                for name in ("early_stopping", "plateau", "snapshot_best")
                if p.has(name) and (name != "plateau" or p.lr_policy == "plateau")}
    if "early_stopping" in monitors and "snapshot_best" not in monitors:
        # early stopping keeps <prefix>_best.weights.npz too, by its own monitor
        monitors["snapshot_best"] = Monitor(p.early_stopping, outputs, where, "early_stopping", has_tests)
    stopping, best = monitors.get("early_stopping"), monitors.get("snapshot_best")
    return monitors, EarlyStopping(stopping) if stopping else None, BestWeights(best) if best else None


class BestWeights(Callback):
    """snapshot_best: after each test that improves on the best, write <prefix>_best.weights.npz."""

    def __init__(self, monitor):
        self.m = monitor

    def on_test(self, solver, results):
        m = self.m
        if m.observe(results, solver.iter):
            path = f"{solver.prefix}_best.weights.npz"
            log.info(f"    Best {m.monitor} so far ({m.best:.6g}, iteration {solver.iter}): saving {path}")
            solver.processes.on_root(lambda: self._write(solver, path))

    def _write(self, solver, path):
        import json
        from ..io.weights import atomic_savez, weight_arrays
        from .snapshots import preprocessing
        m = self.m
        arrays = weight_arrays(solver.net, preprocessing(solver))
        arrays[BEST_KEY] = np.array(json.dumps({"iteration": solver.iter, "monitor": m.monitor,
                                                "mode": m.mode, "value": m.best}))
        atomic_savez(path, arrays)


BEST_KEY = "netcli:best"      # in <prefix>_best.weights.npz: {iteration, monitor, mode, value}


def best_note(path):
    """'the best <monitor> (<value>) of iteration N' kept in a _best.weights.npz, else None."""
    import json
    import zipfile
    from ..io.weights import is_caffemodel, read_npz
    try:
        if is_caffemodel(path):
            return None
        with zipfile.ZipFile(path) as z:
            if BEST_KEY + ".npy" not in z.namelist():
                return None
    except (OSError, zipfile.BadZipFile):
        return None
    entry = read_npz(path, names=[BEST_KEY])[BEST_KEY]
    try:
        best = json.loads(str(entry)) if entry is not None and entry.ndim == 0 and entry.size < 4096 else None
        return (f"the best {best['monitor']} ({float(best['value']):.6g}, {best['mode']}) of iteration "
                f"{int(best['iteration'])}") if isinstance(best, dict) else None
    except (ValueError, TypeError, KeyError):
        return None


class EarlyStopping(Callback):
    """After `patience` tests without improvement, restore the best weights (kept in memory) and
    stop; the final snapshot is of the best model, named for the iteration it holds."""

    def __init__(self, monitor):
        self.m = monitor
        self.stopped = False
        self.best = None

    def on_test(self, solver, results):
        m = self.m
        if m.observe(results, solver.iter):
            self.best = solver.net.param_data.copy()
        elif m.bad >= m.patience:
            log.info(f"Early stopping at iteration {solver.iter}: {m.monitor} has not improved for "
                     f"{m.patience} tests (best {m.best:.6g} at iteration {m.best_iter}); "
                     f"restoring the weights of iteration {m.best_iter}")
            if self.best is not None:      # every process kept the same copy (tests agree)
                solver.net.param_data[...] = self.best
            else:                          # resumed after the best test: its weights are in the file
                solver.processes.on_root(lambda: self._load_best(solver))
                solver.processes.share_params(solver.net.param_data)
            self.stopped = True

    def _load_best(self, solver):
        m, bw = self.m, solver.best_weights
        path = f"{solver.prefix}_best.weights.npz"
        if bw is not None and (bw.m.monitor, bw.m.mode) == (m.monitor, m.mode):
            solver.net.load(path)
        else:
            log.warn(f"the weights of iteration {m.best_iter} are not kept (this run resumed after it, and "
                     f"{path} follows another monitor): training stops with the current weights")


class Plateau(Callback):
    """lr_policy plateau: the policy sees every test."""

    def on_test(self, solver, results):
        solver.policy.after_test(results, solver.iter)


EFFECT_WORDS = {"snapshot": "snapshotting and stopping", "stop": "stopping"}


class Signals(Callback):
    """While training: each of SIGNALS (and SAME_AS) sets solver.request to its effect ("snapshot":
    snapshot and stop, "stop", or "none": ignored), which the loop checks once per batch, and
    solver.caught to the signal's name (for the line rank 0 prints when another rank caught it)."""

    def __init__(self, solver):
        self._solver, self.old = weakref.ref(solver), {}     # the solver owns its callbacks: no cycle

    @property
    def solver(self):
        return self._solver()

    def on_start(self, solver):
        self.__enter__()

    def on_end(self, solver, finished, error):
        self.__exit__()

    def __enter__(self):
        for name in SIGNALS + tuple(SAME_AS):
            sig = getattr(signal, name, None)
            if sig is None:          # not on this platform (SIGHUP, SIGUSR1 on Windows)
                continue
            try:
                self.old[sig] = signal.signal(sig, self.handle)
            except ValueError:       # not the main thread: leave signals alone
                break
        return self

    def handle(self, signum, frame):
        name = signal.Signals(signum).name
        effect = self.solver.signal_effects.get(SAME_AS.get(name, name), "snapshot")
        if effect == "none":
            log.info(f"Caught {name}: ignored (signal effect none)")
            return
        log.info(f"Caught {name}: {EFFECT_WORDS[effect]}")
        self.solver.caught = self.solver.caught or name
        if self.solver.request != "stop":
            self.solver.request = effect

    def __exit__(self, *exc):
        for sig, old in self.old.items():
            signal.signal(sig, old)
        self.old = {}


def log_outputs(net, which, values):
    """Caffe's '    Train net output #0: loss = 0.1 (* 1 = 0.1 loss)' lines."""
    weights = {t.name: w for t, w in net.loss_tops}
    i = 0
    for name in net.outputs:
        w = weights.get(name, 0.0)
        for x in np.asarray(values[name]).reshape(-1):
            extra = f" (* {w:g} = {w * x:.6g} loss)" if w else ""
            log.info(f"    {which} net output #{i}: {name} = {x:.6g}{extra}")
            i += 1
