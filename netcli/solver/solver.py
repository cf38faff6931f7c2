"""The Solver: owns the train net and the test net, the update rule, the learning-rate policy,
tests, snapshots and exact resume (Caffe's Solver + SGDSolver).

Deliberate choices where Caffe has quirks (shared/reference caffe-semantics (h)):
- Gradient clipping applies to the gradient *after* the iter_size average (Caffe clips the sum),
  so clip_gradients means the same whatever iter_size is.
- The first displayed iter/s is measured from the start of training (Caffe's is uninitialised).
- At an iteration where both fall, the test runs before the snapshot, so the log shows the scores
  of the weights just saved, and a resumed run does not test that iteration again.
- "Optimization Done." is logged once.
- A snapshot holds the data position, the RNG states and the loss-smoothing window, and names its
  weights file relative to itself, so resume is exact and snapshot folders can be moved.
- Test passes start from the first TEST batch each time, so every test sees the same data.
- Weight decay is coupled (added to the gradient) for every rule, including Adam, as in Caffe.
- Signals (SIGINT, SIGTERM, SIGHUP) each take an effect: "snapshot" (the default for all three:
  snapshot and stop; Caffe's SIGHUP snapshot goes on training), "stop" (no snapshot) or "none"
  (ignored); SIGUSR1 takes SIGTERM's. A request takes effect within one batch, inside a test pass
  too (the pass is then dropped, and early stopping and plateau do not see it).
- Snapshots are never written of non-finite weights; on divergence the message names the last
  snapshot taken before the loss went bad.
- Resuming with a changed TRAIN data layer (batch size, source, shuffle, or a renamed layer) is
  allowed, with one WARNING line that the run is no longer an exact continuation.
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

from .. import log
from ..errors import NetcliError
from . import finetune, lr_policy, setup, snapshots, testing
from .callbacks import Callback, Callbacks, processes
from .display import CompileNote, Header, progress_bar, train_lines
from .hooks import SIGNALS, Plateau, Signals, monitor_hooks
from .runlog import RunRecord
from ..update_rules import RULES
from ..update_rules.base import PerParam, Step
from ..exec.memory_plan import plan_solver


def _per_element(values, offsets):
    """A float32 value per param over the flat buffer, as runs (update_rules.base.PerParam: not one
    float per element, which at 61M params took 2 x 244 MB)."""
    return PerParam(values, offsets)


class TrainingDiverged(NetcliError):
    pass


class Solver:
    """pycaffe-style: `Solver(path)`, `.step(n)`, `.solve()`, `.snapshot()`, `.restore(state)`, `.net`, `.test_nets`."""

    def __init__(self, path, weights=None, max_iter=None, quiet=False, progress=None, group=None, shares=None,
                 log_path=None, gpu=None, allow_python=None, release_rows="auto", test_backward=False):
        """log_path: the JSONL run log solve() appends to (default <snapshot_prefix>.log.jsonl;
        False: none). gpu: a CUDA device number to train on (netcli/exec/cuda.py), -1 for
        the CPU, None: as solver_mode and device_id say (GPU mode falls back to the CPU, with a
        line saying why, when there is no usable GPU). group: a netcli.distributed.Group, this
        process being one of several (netcli.distributed.DataParallel). allow_python: run the
        nets' Python layers (netcli.Net's argument). release_rows: the nets' (netcli.Net's); False
        keeps each iteration's and each test's values in their blobs (pycaffe's solvers).
        test_backward: the test nets may run a backward (pycaffe's); False: they are made for
        inference (netcli.Net's)."""
        self.path = os.fspath(path)
        p, self._where, self.net_path, tests, train_state = setup.read_solver(self.path)
        self.p, self.quiet, self.progress = p, quiet, progress
        self.processes = processes(group)     # who logs, tests and writes; how gradients are summed
        self.seed = p.random_seed if p.random_seed >= 0 else int(np.random.SeedSequence().entropy % (2 ** 62))
        self.processes.on_init(self)
        device, self.gpu_fallback = setup.choose_device(p, gpu, self.processes.group)
        self.net, self.test_nets, self.validation = setup.build_nets(self.net_path, tests, self.seed, train_state,
                                                                     allow_python, device, release_rows, test_backward)
        if shares is not None:
            self.net.executor.reshare(shares)
        self.device = "CPU" if device == "cpu" else f"GPU {device[5:]} ({self.net.executor.device})"
        vars(self).update(setup.lengths(p, self.net, self.test_nets, self.validation, max_iter, self._where))
        self.monitors, self.early_stopping, self.best_weights = monitor_hooks(
            p, self.test_nets[0].outputs if self.test_nets else [], self._where, bool(self.test_interval))
        self.policy = lr_policy.LrPolicy(p, self.max_iter, self.monitors.get("plateau"))
        self.prefix = setup.prefix(p, self.path)
        lr_vec = _per_element(self.net.lr_mults, self.net.param_offsets)
        decay_vec = _per_element(np.asarray(self.net.decay_mults, np.float64) * p.weight_decay, self.net.param_offsets)
        self.rule = RULES[p.type](p, lr_vec, decay_vec)
        plan_solver(self.net, self.rule)
        self.iter, self.losses = 0, []
        self.last_snapshot_iter, self.snapshots_written = None, []
        self.request = None                # a signal's request on this process (its handler sets it)
        self.stopped_by = None             # the request every process acted on
        self.caught = None                # the name of the first signal that set a request
        self.signal_effects = {name: "snapshot" for name in SIGNALS}
        self._log_path = log_path
        self.runlog = None
        # every hook of the loop, called in this order at each event (netcli/solver/callbacks.py)
        self.callbacks = Callbacks([RunRecord(), Header(), self.processes, CompileNote(), Signals(self),
                                    self.best_weights, self.early_stopping,
                                    Plateau() if "plateau" in self.monitors else None])
        w = weights or (",".join(p.weights) if p.weights else None)
        if w:
            self.finetune(w)
        self.processes.on_setup(self, w)

    @property
    def root(self):
        """True in the process that logs, tests and writes files (the only one, or rank 0)."""
        return self.processes.root

    @property
    def log_path(self):
        """The run log's path: the one given, else next to the snapshot prefix as it is now (a
        prefix changed after construction takes its run log along)."""
        return f"{self.prefix}.log.jsonl" if self._log_path is None else self._log_path

    @log_path.setter
    def log_path(self, path):
        self._log_path = path

    @property
    def test_iter(self):
        """Batches per periodic test (the first test net's)."""
        return self.test_iters[0]

    @test_iter.setter
    def test_iter(self, n):
        self.test_iters[0] = n
        self.test_whole[0] = False

    # -- setup helpers -------------------------------------------------------------------------
    def finetune(self, weights):
        """Copy weights by layer name; report what was not used."""
        self.net.executor.pull()
        for w in str(weights).split(","):
            loaded, unused = self.net.load(w, strict=False)
            log.info(f"Finetuning from {w}")
            finetune.report(w, self.net, loaded, unused)

    def set_max_iter(self, n):
        """Train to iteration n (the lr policy's horizon moves with it)."""
        self.max_iter = self.policy.max_iter = int(n)

    # -- the loop ------------------------------------------------------------------------------
    def learning_rate(self):
        return self.policy.peek(self.iter)

    def _apply_update(self, display, step=None):
        """The update rule's step at this iteration's rate (`step`: the pass applied it already)."""
        p, net = self.p, self.net
        before = self.policy.step
        rate = self.policy.rate(self.iter)
        if p.lr_policy == "multistep" and self.policy.step != before:
            log.info(f"MultiStep Status: Iteration {self.iter}, step = {self.policy.step}")
        if display:
            log.info(f"Iteration {self.iter}, lr = {rate:.6g}")
        scale = clipped(self, 1.0 / p.iter_size)
        if step is None or not step.applied:
            net.executor.update(self.rule, rate, self.iter, scale)

    def step(self, iters):
        """Train `iters` iterations (tests and snapshots fall where their intervals say). Returns
        True when done, False when a signal stopped it."""
        p = self.p
        stop_iter, start_iter, t0 = self.iter + iters, self.iter, time.perf_counter()
        self._last_display = (self.iter, t0)
        bar = self._bar = progress_bar(self.progress, self.quiet, iters)
        try:
            with np.errstate(over="ignore", invalid="ignore"):   # a diverging loss is reported below
                if self.iter == 0 and self.test_interval and p.test_initialization:
                    self._test_and_react()
                while self.iter < stop_iter:
                    self._iteration(p, self.net)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{self.smoothed_loss():.4g}", refresh=False)
                    if self.test_interval and self.iter % self.test_interval == 0:
                        self._test_and_react()
                    self.callbacks.on_iteration_end(self)
                    request = self.processes.agreed_request(self)    # the same on every process
                    if self.early_stopped:        # solve() writes the best model, named for its iteration
                        return True
                    due = self.snapshot_interval and self.iter % self.snapshot_interval == 0
                    if due or request == "snapshot":
                        self.snapshot()
                    if request in ("snapshot", "stop"):
                        self.stopped_by = request
                        return False
            return True
        finally:
            self.net.executor.pull()         # the host's params are current between steps (GPU)
            self._bar = None
            if bar is not None:
                bar.close()
                log.set_bar(None)
            self.elapsed, self.trained = time.perf_counter() - t0, self.iter - start_iter

    def _iteration(self, p, net):
        """One update: iter_size forward/backward passes, the loss checked, display, update."""
        net.clear_param_diffs()
        self.callbacks.on_iteration_start(self)
        display = p.display and self.iter % p.display == 0
        step = step_in_pass(self)
        loss = sum(self._pass(net, k, step) for k in range(p.iter_size)) / p.iter_size
        if not math.isfinite(loss):
            raise TrainingDiverged(snapshots.diverged_message(self, loss))
        self.losses = (self.losses + [loss])[-p.average_loss:]
        if display:
            self._last_display = train_lines(self, self._last_display)
        self._apply_update(display, step)
        self.iter += 1
        self.callbacks.on_after_update(self)

    def _pass(self, net, k, step=None):
        """Forward and backward once (`step`: an update it may apply), the gradients then summed over the processes."""
        loss = net.forward_backward(cleared=self.processes.cleared(self, k), step=step)
        self.callbacks.on_gradients(self)
        return loss

    def record(self, event, **fields):
        """A run-log record (netcli/solver/runlog.py) with the iteration, epoch and lr."""
        if self.runlog is not None:
            epoch = self.iter / self.iters_per_epoch if self.iters_per_epoch else None
            self.runlog.record(event, iter=self.iter, epoch=epoch, lr=self.learning_rate(), **fields)

    def _test_and_react(self):
        """The periodic test (by the root process, its results shared), then the hooks that
        watch tests: best weights, early stopping, plateau (not after an interrupted test)."""
        results = self.processes.from_root(lambda: testing.periodic(self))
        if results is None:
            return
        self.last_test = results
        self.net.executor.pull()            # the hooks read (and may set) the host's params
        self.callbacks.on_test(self, results)

    @property
    def early_stopped(self):
        return self.early_stopping is not None and self.early_stopping.stopped

    def solve(self, resume_file=None):
        """Caffe's Solve: optionally restore, train to max_iter, final snapshot."""
        self.request = self.caught = self.stopped_by = None
        self.processes.on_root(lambda: snapshots.check_snapshot_folder(self))
        if resume_file:
            self.restore(resume_file)
            if self.iter >= self.max_iter:
                log.info(f"The snapshot is at iteration {self.iter}, max_iter is {self.max_iter}: nothing to "
                         "train (--iterations N trains N more, or raise max_iter)")
        self.resumed_from = os.path.abspath(resume_file) if resume_file else None
        done, error = False, None
        try:
            self.callbacks.on_start(self)
            done = self._solve()
            return done
        except BaseException as e:
            error = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise
        finally:
            self.callbacks.on_end(self, done, error)

    def _solve(self):
        finished = self.step(max(self.max_iter - self.iter, 0))
        if self.early_stopped:
            self.processes.on_root(lambda: snapshots.write_best_weights(self, self.early_stopping.m.best_iter))
        elif self.p.snapshot_after_train and self.last_snapshot_iter != self.iter and self.stopped_by != "stop":
            self.snapshot()
        if not finished:
            log.info("Optimization stopped early.")
            return False
        if self.p.display and self.iter % self.p.display == 0 and self.losses:
            log.info(f"Iteration {self.iter}, loss = {self.smoothed_loss():.6g}")
        if self.validation:
            def final_test():
                log.info("Final test on the TEST set (periodic tests used the VALIDATION split):")
                self.final_test = self.test(1)
            self.processes.on_root(final_test)
        log.info("Optimization Done.")
        return True

    def smoothed_loss(self):
        return sum(self.losses) / len(self.losses) if self.losses else float("nan")

    def test(self, k=0):
        """Run test net k (0: the periodic one, TEST or VALIDATION) over its batches; log and return
        {output: mean} (None when a signal interrupted it)."""
        return testing.test(self, k)

    # -- snapshots (netcli/solver/snapshots.py) ------------------------------------------------------
    def snapshot(self):
        """Write <prefix>_iter_N.weights.npz and .solverstate.npz (None if the weights are not
        finite); with several processes, rank 0 writes."""
        self.net.executor.pull()
        written = self.processes.on_root(lambda: snapshots.write_snapshot(self))
        self.callbacks.on_snapshot(self, written)
        return written

    def restore(self, path):
        """Resume from a .solverstate.npz: weights, history, iteration, lr position, data and RNG."""
        self.net.executor.pull()
        snapshots.restore(self, path)


def step_in_pass(solver):
    """The update for the pass to apply itself (update_rules.base.Step), where nothing comes
    between the gradients and the update: one pass per update, no clipping (it needs every
    gradient first), no hook that reads or changes the gradients (several processes' sum among
    them). The same update, with the rate the solver then uses, in the same float32 bits. (Not on
    a GPU: the device's kernel runs the update there.)"""
    p = solver.p
    if solver.net.executor.device != "CPU" or p.iter_size != 1 or p.clip_gradients >= 0 or any(
            getattr(type(c), "on_gradients", Callback.on_gradients) is not Callback.on_gradients
            for c in solver.callbacks):
        return None
    return Step(solver.rule, solver.net.param_data, solver.net.param_diff, solver.policy.peek(solver.iter), solver.iter)


def clipped(solver, scale):
    """Caffe's clip_gradients: `scale` times the factor that brings the gradients' L2 norm down to
    clip_gradients where it is above (logged as Caffe does)."""
    p = solver.p
    if p.clip_gradients >= 0:
        l2 = math.sqrt(solver.net.executor.grad_sumsq()) * scale
        if l2 > p.clip_gradients:
            s = p.clip_gradients / l2
            log.info(f"Gradient clipping: scaling down gradients (L2 norm {l2:.6g} > {p.clip_gradients:.6g}) "
                     f"by scale factor {s:.6g}")
            scale *= s
    return scale
