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
import sys
import time

import numpy as np

from .. import log
from ..config.schema import Problems
from ..config.load import load_config
from ..errors import ConfigError, NetcliError
from ..net import Net
from . import finetune, lr_policy, state
from .hooks import SIGNALS, BestWeights, EarlyStopping, Monitor, Signals, agree_request, log_outputs
from .spec import SOLVER
from ..update_rules import NAMES, RULES


class TrainingDiverged(NetcliError):
    pass


class Solver:
    """pycaffe-style: `Solver(path)`, `.step(n)`, `.solve()`, `.snapshot()`, `.restore(state)`,
    `.net`, `.test_nets`."""

    def __init__(self, path, weights=None, max_iter=None, quiet=False, progress=None, group=None, shares=None,
                 log_path=None, gpu=None, allow_python=None):
        """log_path: the JSONL run log solve() appends to (default <snapshot_prefix>.log.jsonl;
        False: none). gpu: a CUDA device number to train on (netcli/exec/cuda.py), -1 for
        the CPU, None: as solver_mode and device_id say (GPU mode falls back to the CPU, with a
        line saying why, when there is no usable GPU). allow_python: run the nets' Python layers
        (netcli.Net's argument)."""
        self.allow_python = allow_python
        self.path = os.fspath(path)
        p, nets = self._read(self.path)
        self.group = group                # netcli.distributed.Group: one of several processes
        self.root = group is None or group.rank == 0      # the process that logs, tests and writes
        if not self.root:
            log.silence()
            progress = False
        self.quiet, self.progress = quiet, progress
        self.seed = p.random_seed if p.random_seed >= 0 else int(np.random.SeedSequence().entropy % (2 ** 62))
        if group is not None:
            self.seed = group.bcast(self.seed)
        device = self._choose_device(p, gpu, group)
        if shares is not None and device != "cpu":
            raise NetcliError("--shares cuts the batch for processes on the CPU; it does not apply on a GPU")
        self._build_nets(*nets, device)
        if shares is not None:
            self.net.executor.reshare(shares)
        self.device = "CPU" if device == "cpu" else f"GPU {device[5:]} ({self.net.executor.device})"
        self._lengths(p, max_iter)
        outputs, has_tests = self.test_nets[0].outputs, bool(self.test_interval)
        self.monitors = {name: Monitor(getattr(p, name), outputs, self._where, name, has_tests)
                         for name in ("early_stopping", "plateau", "snapshot_best")
                         if p.has(name) and (name != "plateau" or p.lr_policy == "plateau")}
        if "early_stopping" in self.monitors and "snapshot_best" not in self.monitors:
            # early stopping keeps <prefix>_best.weights.npz too, by its own monitor
            self.monitors["snapshot_best"] = Monitor(p.early_stopping, outputs, self._where, "early_stopping", has_tests)
        stopping = self.monitors.get("early_stopping")
        self.early_stopping = EarlyStopping(stopping) if stopping else None
        best = self.monitors.get("snapshot_best")
        self.best_weights = BestWeights(best) if best else None
        self.policy = lr_policy.LrPolicy(p, self.max_iter, self.monitors.get("plateau"))
        name = os.path.splitext(os.path.basename(self.path))[0]
        prefix = p.snapshot_prefix or os.path.join("snapshots", name)
        self.prefix = os.path.join(prefix, name) if os.path.isdir(prefix) else prefix
        sizes = np.diff(self.net.param_offsets)
        lr_vec = np.repeat(self.net.lr_mults, sizes).astype(np.float32)
        decay_vec = (np.repeat(self.net.decay_mults, sizes) * p.weight_decay).astype(np.float32)
        self.rule = RULES[p.type](p, lr_vec, decay_vec)
        self.iter, self.losses = 0, []
        self.last_snapshot_iter, self.snapshots_written = None, []
        self.request = None
        self.caught = None                # the name of the first signal that set a request
        self.signal_effects = {name: "snapshot" for name in SIGNALS}
        self.log_path = f"{self.prefix}.log.jsonl" if log_path is None else log_path
        self.runlog = None
        self._compiling_since = None     # the first run after install: kernels compile in the first passes
        w = weights or (",".join(p.weights) if p.weights else None)
        if w:
            self.finetune(w)
        if group is not None:
            self._distribute(group, w)

    def _choose_device(self, p, gpu, group):
        """Where the nets run ("cpu" or "cuda:N", netcli/exec/): --gpu, else solver_mode and
        device_id (GPU mode falls back to the CPU, said in solve(), when no GPU is usable)."""
        from ..exec import device_of
        from ..gpu import device
        if gpu is not None:
            return device_of(gpu, group)
        try:
            chosen = device_of(p.device_id if p.solver_mode == "GPU" else -1, group)
            if chosen != "cpu":
                device.select(p.device_id)
            return chosen
        except NetcliError as e:
            self.gpu_fallback = getattr(e, "reason", str(e))
            return "cpu"

    def _distribute(self, group, weights):
        """Split the TRAIN batch across the processes; check they all read the same files."""
        from ..config.compile import config_to_dict
        from ..distributed import digest
        self.net.executor.distribute(group)
        net_text = config_to_dict(self.net_path) if isinstance(self.net_path, str) else self.net_path
        group.agree("solver or net", digest(self.p.to_dict(), net_text, self.net.data_size(),
                                             [t.data_size() for t in self.test_nets]))
        group.agree("initial weights", digest(self.net.param_data.tobytes()) if weights else "")

    def _read(self, path):
        """Parse and check the solver file; returns (params, (train net, test nets))."""
        tree = load_config(path, net=False)
        problems = Problems()
        p = self.p = SOLVER.parse(tree, problems, None, "")
        problems.raise_if_any()
        self._where = lambda params, f: f"{path}:{(params.loc(f) or tree.loc).line}"
        at = lambda f: p.loc(f.split(".")[0]) or tree.loc          # noqa: E731 - the line of a field
        nets = self._net_sources(p, path, at)
        lr_policy.check(p, problems, at)
        RULES[p.type].check(p, problems, at)
        for a, b in (("max_iter", "max_epochs"), ("test_interval", "test_interval_epochs"),
                     ("snapshot", "snapshot_epochs")):
            if p.has(a) and p.has(b):
                problems.add(at(b), f"give {a} or {b}, not both", None, b)
        problems.raise_if_any()
        return p, nets

    def _net_sources(self, p, path, at):
        """Caffe's rules for where the nets come from: the TRAIN net from one of net, net_param,
        train_net, train_net_param; the test nets from test_net_param, then test_net, then as many
        more from net/net_param as test_iter (or test_state) has values left, each with its
        test_state. Returns (train net, [(test net, stages, level)])."""
        from ..paths import resolve

        def file(field, name):
            try:
                return resolve(name, os.path.dirname(path), "net file", os.path.isfile)
            except NetcliError as e:
                raise ConfigError(f"{self._where(p, field)}: field '{field}': {e}") from None

        given = [f for f in ("net", "net_param", "train_net", "train_net_param") if p.has(f)]
        if len(given) != 1:
            what = "the solver needs a net file" if not given else f"give one of {', '.join(given)}, not several"
            raise ConfigError(f"{self._where(p, given[-1] if given else 'net')}: field '{given[-1] if given else 'net'}': "
                              f"{what} (net, net_param, train_net or train_net_param)")
        source = given[0]
        train = file(source, p.net if source == "net" else p.train_net) if source in ("net", "train_net") else \
            getattr(p, source)
        tests = [(t, (), 0) for t in p.test_net_param] + [(file("test_net", t), (), 0) for t in p.test_net]
        if source in ("net", "net_param"):          # the rest of the test nets are built from it
            count = max(len(p.test_iter), len(p.test_state), 1 if not tests else 0) - len(tests)
            tests += [(train, (), 0)] * max(count, 0)
        if p.test_state and len(p.test_state) != len(tests):
            raise ConfigError(f"{self._where(p, 'test_state')}: field 'test_state': {len(p.test_state)} given for "
                              f"{len(tests)} test net(s); give one per test net or none")
        states = p.test_state or [None] * len(tests)
        tests = [(t, tuple(st.stage) if st else (), st.level if st else 0) for (t, _, _), st in zip(tests, states)]
        if p.test_iter and len(p.test_iter) != len(tests):
            raise ConfigError(f"{self._where(p, 'test_iter')}: field 'test_iter': {len(p.test_iter)} value(s) for "
                              f"{len(tests)} test net(s); give one per test net")
        self.train_state = (tuple(p.train_state.stage), p.train_state.level) if p.has("train_state") else ((), 0)
        return train, tests

    def _build_nets(self, train, tests, device):
        """The TRAIN net, and the test nets sharing its weights (a file or a tree each, with stages
        and level). With one test net and a TRAIN data layer holding out a validation_fraction,
        a VALIDATION net goes first: periodic tests use it, the TEST net runs at the end."""
        self.net_path = train
        stages, level = self.train_state
        self.net = Net(train, phase="TRAIN", seed=self.seed, stages=stages, level=level,
                       allow_python=self.allow_python, device=device)
        self.test_nets = [Net(t, phase="TEST", seed=self.seed + 1 + k, stages=s, level=lv,
                              allow_python=self.allow_python, device=device)
                          for k, (t, s, lv) in enumerate(tests)]
        self.validation = len(tests) == 1 and any(getattr(l.dp, "validation_fraction", 0)
                                                  for l in self.net.data_layers())
        if self.validation:
            t, s, lv = tests[0]
            self.test_nets.insert(0, Net(t, phase="VALIDATION", seed=self.seed + 2, stages=s, level=lv,
                                             allow_python=self.allow_python, device=device))
        for t in self.test_nets:
            t.share_weights(self.net)

    def _lengths(self, p, max_iter):
        """max_iter, test and snapshot intervals in iterations (epochs converted), test lengths."""
        n_train, b_train = self.net.data_size(), self.net.batch_size()
        per_epoch = n_train / (b_train * p.iter_size) if n_train else None

        def from_epochs(field, value):
            if per_epoch is None:
                raise ConfigError(f"{self._where(p, field)}: field '{field}': epochs need a Data layer in "
                                  "the TRAIN net to know the data size")
            return max(1, math.ceil(value * per_epoch))

        self.iters_per_epoch = per_epoch
        self.max_iter = (max_iter if max_iter is not None else
                         from_epochs("max_epochs", p.max_epochs) if p.max_epochs else p.max_iter or 0)
        self.test_interval = (from_epochs("test_interval_epochs", p.test_interval_epochs)
                              if p.test_interval_epochs else p.test_interval)
        self.snapshot_interval = from_epochs("snapshot_epochs", p.snapshot_epochs) if p.snapshot_epochs else p.snapshot
        whole = [math.ceil(t.data_size() / t.batch_size()) if t.data_size() else 0 for t in self.test_nets]
        given = list(p.test_iter) + [None] if self.validation else list(p.test_iter)
        given += [None] * (len(whole) - len(given))
        self.test_iters = [g or w for g, w in zip(given, whole)]
        # without test_iter a test covers its whole data set once, each sample exactly once
        self.test_whole = [g is None and w > 0 for g, w in zip(given, whole)]
        if self.test_interval and not self.test_iter:
            raise ConfigError(f"{self._where(p, 'test_interval')}: field 'test_iter': the TEST net has no Data "
                              "layer, so test_iter must be given")

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

    def _apply_update(self, display):
        p, net = self.p, self.net
        before = self.policy.step
        rate = self.policy.rate(self.iter)
        if p.lr_policy == "multistep" and self.policy.step != before:
            log.info(f"MultiStep Status: Iteration {self.iter}, step = {self.policy.step}")
        if display:
            log.info(f"Iteration {self.iter}, lr = {rate:.6g}")
        scale = 1.0 / p.iter_size
        if p.clip_gradients >= 0:
            l2 = math.sqrt(net.executor.grad_sumsq()) * scale
            if l2 > p.clip_gradients:
                s = p.clip_gradients / l2
                log.info(f"Gradient clipping: scaling down gradients (L2 norm {l2:.6g} > {p.clip_gradients:.6g}) "
                         f"by scale factor {s:.6g}")
                scale *= s
        net.executor.update(self.rule, rate, self.iter, scale)

    def step(self, iters):
        """Train `iters` iterations (tests and snapshots fall where their intervals say). Returns
        True when done, False when a signal stopped it."""
        p, net = self.p, self.net
        stop_iter, start_iter, t0 = self.iter + iters, self.iter, time.perf_counter()
        self._last_display = (self.iter, t0)
        bar = self._bar = self._progress_bar(iters)
        try:
            with np.errstate(over="ignore", invalid="ignore"):   # a diverging loss is reported below
                if self.iter == 0 and self.test_interval and p.test_initialization:
                    self._test_and_react()
                while self.iter < stop_iter:
                    self._iteration(p, net)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{self.smoothed_loss():.4g}", refresh=False)
                    if self.test_interval and self.iter % self.test_interval == 0:
                        self._test_and_react()
                    if self.group is not None:      # a signal may have reached some ranks only
                        agree_request(self)
                    if self.early_stopped:        # solve() writes the best model, named for its iteration
                        return True
                    due = self.snapshot_interval and self.iter % self.snapshot_interval == 0
                    if due or self.request == "snapshot":
                        self.snapshot()
                    if self.request in ("snapshot", "stop"):
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
        display = p.display and self.iter % p.display == 0
        loss = sum(self._pass(net, k) for k in range(p.iter_size)) / p.iter_size
        if not math.isfinite(loss):
            raise TrainingDiverged(state.diverged_message(self, loss))
        self.losses = (self.losses + [loss])[-p.average_loss:]
        if display:
            now = time.perf_counter()
            n, lapse = self.iter - self._last_display[0], now - self._last_display[1]
            rate = f" ({n / lapse:.6g} iter/s, {lapse:.4g}s/{p.display} iters)" if n and lapse > 0 else ""
            log.info(f"Iteration {self.iter}{rate}, loss = {self.smoothed_loss():.6g}")
            log_outputs(net, "Train", {k: net.blobs[k].data for k in net.outputs})
            self._record("train", loss=self.smoothed_loss(), outputs={k: net.blobs[k].data for k in net.outputs})
            self._last_display = (self.iter, now)
        self._apply_update(display)
        self.iter += 1
        if self._compiling_since is not None:
            log.info(f"Kernels compiled in {time.perf_counter() - self._compiling_since:.1f} s (cached: the next "
                     "runs start at once)")
            self._compiling_since = None

    def _record(self, event, **fields):
        """A run-log record (netcli/solver/runlog.py) with the iteration, epoch and lr."""
        if self.runlog is not None:
            epoch = self.iter / self.iters_per_epoch if self.iters_per_epoch else None
            self.runlog.record(event, iter=self.iter, epoch=epoch, lr=self.learning_rate(), **fields)

    def _pass(self, net, k):
        """Forward and backward once; with several processes, the gradients of every process's
        part of the batch are summed (rank 0 carries the earlier passes' sum, the others start
        from zero, so the sum is the one a single process gets)."""
        g = self.group
        if g is None:
            return net.forward_backward(cleared=k == 0)
        if k and g.rank:
            net.clear_param_diffs()
        loss = net.forward_backward(cleared=k == 0 or g.rank > 0)
        g.reduce_grads(net.param_diff)
        return loss

    def _test_and_react(self):
        """The periodic test, then early stopping and the plateau policy (not after an
        interrupted test)."""
        results = self.test() if self.root else None
        if self.root and results is not None and not self.validation:
            for k in range(1, len(self.test_nets)):       # Caffe tests every test net, #0 first
                if self.test(k) is None:
                    results = None
                    break
        if self.group is not None:
            results = self.group.bcast(results)
            if results is not None:
                self.last_test = results
        if results is None:
            return
        self.net.executor.pull()            # the hooks read (and may set) the host's params
        if self.best_weights is not None:
            self.best_weights.after_test(self, results)
        if self.early_stopping is not None:
            self.early_stopping.after_test(self, results)
        self.policy.after_test(results, self.iter)

    @property
    def early_stopped(self):
        return self.early_stopping is not None and self.early_stopping.stopped

    def solve(self, resume_file=None):
        """Caffe's Solve: optionally restore, train to max_iter, final snapshot."""
        self.request = self.caught = None
        if self.root:
            state.check_snapshot_folder(self)
        if resume_file:
            self.restore(resume_file)
            if self.iter >= self.max_iter:
                log.info(f"The snapshot is at iteration {self.iter}, max_iter is {self.max_iter}: nothing to "
                         "train (--iterations N trains N more, or raise max_iter)")
        if self.root and self.log_path is not False:
            from .runlog import RunLog
            self.runlog = RunLog(self.log_path)
            self.runlog.record("start", net=self.net.name, solver=os.path.abspath(self.path),
                               resumed_from=os.path.abspath(resume_file) if resume_file else None,
                               iter=self.iter, max_iter=self.max_iter)
        done, error = False, None
        try:
            done = self._solve()
            return done
        except BaseException as e:
            error = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise
        finally:
            if self.runlog is not None:
                extra = {"error": error} if error else {}
                self.runlog.record("end", iter=self.iter, finished=done, **extra)
                self.runlog.close()
                self.runlog = None

    def _solve(self):
        log.info(f"Solving {self.net.name}")
        log.info(f"Learning Rate Policy: {self.p.lr_policy}")
        if self.device != "CPU":
            log.info(f"Training on {self.device}")
            for line in self.net.executor.plan():
                log.info(line)
        elif getattr(self, "gpu_fallback", None):
            log.info(f"solver_mode: GPU, but {self.gpu_fallback}: training on the CPU (to ask for the CPU, "
                     f"set solver_mode: CPU in {self.path})")
        log.info(f"Solver: {NAMES[self.p.type]}, {self.max_iter} iterations"
                 + (f" ({self.max_iter / self.iters_per_epoch:.3g} epochs)" if self.iters_per_epoch else ""))
        if self.group is not None:
            g, B = self.group, self.net.batch_size() or self.net.executor.stretches[-1][0]
            log.info(f"Processes: {g.size}, splitting each batch of {B} (the batch is global: batch_size "
                     f"{B} x iter_size {self.p.iter_size} samples per update); gradients summed with the "
                     f"{g.reduction} reduction" + (" (bit-identical to one process)" if g.reduction == "exact" else ""))
        from ..kernels import cold_cache
        if self.root and self.max_iter > self.iter and cold_cache():
            log.info("Compiling kernels (first run; cached afterwards) ...")
            self._compiling_since = time.perf_counter()
        with Signals(self):
            finished = self.step(max(self.max_iter - self.iter, 0))
            if self.early_stopped:
                if self.root:
                    state.write_best_weights(self, self.early_stopping.m.best_iter)
            elif self.p.snapshot_after_train and self.last_snapshot_iter != self.iter and self.request != "stop":
                self.snapshot()
            if not finished:
                log.info("Optimization stopped early.")
                return False
            if self.p.display and self.iter % self.p.display == 0 and self.losses:
                log.info(f"Iteration {self.iter}, loss = {self.smoothed_loss():.6g}")
            if self.validation and self.root:
                log.info("Final test on the TEST set (periodic tests used the VALIDATION split):")
                self.final_test = self.test(1)
        log.info("Optimization Done.")
        return True

    def smoothed_loss(self):
        return sum(self.losses) / len(self.losses) if self.losses else float("nan")

    def test(self, k=0):
        """Run test net k (0: the periodic one, TEST or VALIDATION) over its batches; log and return
        {output: mean}."""
        from ..evaluate import evaluate
        net = self.test_nets[k]
        log.info(f"Iteration {self.iter}, Testing net (#{k})")
        bar = getattr(self, "_bar", None)
        n = self.test_iters[k] if not self.test_whole[k] else None

        def tested(i, run, rows):          # the training bar shows the test's progress, not a freeze
            if bar is not None:
                bar.set_description_str(f"testing {i + 1}" + (f"/{n}" if n else ""), refresh=True)
        result = evaluate(net, n, on_batch=tested, stop=lambda: self.request in ("snapshot", "stop"))
        if bar is not None:
            bar.set_description_str("", refresh=True)
        if result is None:
            log.info("Test interrupted.")
            return None
        means = result["outputs"]
        log_outputs(net, "Test", means)
        self._record("test", net=k, outputs=means)
        result = {name: float(v) if v.ndim == 0 else v for name, v in means.items()}
        if k == 0:
            self.last_test, self.last_test_iter = result, self.iter
        return result

    def _progress_bar(self, iters):
        show = self.progress if self.progress is not None else (sys.stderr.isatty() and not self.quiet)
        if not show or iters <= 0:
            return None
        from tqdm import tqdm
        bar = tqdm(total=iters, file=sys.stderr, unit="it", dynamic_ncols=True, leave=False)
        log.set_bar(bar)
        return bar

    # -- snapshots (netcli/solver/state.py) ------------------------------------------------------
    def preprocessing(self):
        """How the inputs were prepared (the first test net's data layer, else the train net's;
        None without a data layer with a dataset): kept in the weights for predict."""
        from ..data.transform import Preprocessing
        for net in self.test_nets + [self.net]:
            layers = net.data_layers()
            if layers:
                return Preprocessing.of_data_layer(layers[0])
        return None

    def snapshot(self):
        """Write <prefix>_iter_N.weights.npz and .solverstate.npz (None if the weights are not
        finite); with several processes, rank 0 writes."""
        self.net.executor.pull()
        if not self.root:
            self.last_snapshot_iter = self.iter
            self.snapshots_written.append(self.iter)
            return None
        return state.write_snapshot(self)

    def restore(self, path):
        """Resume from a .solverstate.npz: weights, history, iteration, lr position, data and RNG."""
        self.net.executor.pull()
        state.restore(self, path)
