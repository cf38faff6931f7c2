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
  (ignored). A request takes effect within one batch, inside a test pass too (the pass is then
  dropped, and early stopping and plateau do not see it).
- Snapshots are never written of non-finite weights; on divergence the message names the last
  snapshot taken before the loss went bad.
- Resuming with a changed TRAIN data layer (batch size, source, shuffle, or a renamed layer) is
  allowed, with one WARNING line that the run is no longer an exact continuation.
"""
from __future__ import annotations

import json
import math
import os
import signal
import sys
import time

import numpy as np

from .. import log
from ..config.schema import Problems
from ..config.yamlload import load_yaml
from ..errors import ConfigError, NetcliError
from ..net import Net
from ..snapshot import read_npz, recover, save_files
from . import lr_policy
from .spec import SOLVER
from .updates import NAMES, RULES

SIGNAL_EFFECTS = ("snapshot", "stop", "none")
SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


class TrainingDiverged(NetcliError):
    pass


class Solver:
    """pycaffe-style: `Solver(path)`, `.step(n)`, `.solve()`, `.snapshot()`, `.restore(state)`,
    `.net`, `.test_nets`."""

    def __init__(self, path, weights=None, max_iter=None, quiet=False, progress=None):
        self.path = os.fspath(path)
        tree = load_yaml(self.path)
        problems = Problems()
        p = self.p = SOLVER.parse(tree, problems, None, "")
        problems.raise_if_any()
        self._where = lambda params, f: f"{self.path}:{(params.loc(f) or tree.loc).line}"
        if not p.net:
            raise ConfigError(f"{self.path}:{tree.loc.line}: field 'net': the solver needs a net file")
        from ..paths import resolve
        try:
            net_path = resolve(p.net, os.path.dirname(self.path), "net file", os.path.isfile)
        except NetcliError as e:
            raise ConfigError(f"{self._where(p, 'net')}: field 'net': {e}") from None
        lr_policy.check(p, self._where)
        if p.type in ("ADAGRAD", "RMSPROP") and p.momentum != 0:
            raise ConfigError(f"{self._where(p, 'momentum')}: field 'momentum': momentum cannot be used "
                              f"with {NAMES[p.type]}")
        if p.type == "RMSPROP" and not 0 <= p.rms_decay < 1:
            raise ConfigError(f"{self._where(p, 'rms_decay')}: field 'rms_decay': must be in [0, 1)")
        if len(p.test_iter) > 1:
            raise ConfigError(f"{self._where(p, 'test_iter')}: field 'test_iter': one test net is supported, "
                              f"got {len(p.test_iter)} values")
        for a, b in (("max_iter", "max_epochs"), ("test_interval", "test_interval_epochs"),
                     ("snapshot", "snapshot_epochs")):
            if p.has(a) and p.has(b):
                raise ConfigError(f"{self._where(p, b)}: field '{b}': give {a} or {b}, not both")
        self.quiet = quiet
        self.progress = progress
        seed = p.random_seed if p.random_seed >= 0 else None
        if seed is None:
            seed = int(np.random.SeedSequence().entropy % (2 ** 62))
        self.seed = seed
        self.net = Net(net_path, phase="TRAIN", seed=seed)
        test = Net(net_path, phase="TEST", seed=seed + 1)
        test.share_weights(self.net)
        self.test_nets = [test]
        if any(l.p.data_param.validation_fraction for l in self.net.data_layers()):
            # periodic tests use the held-out part of the TRAIN data; the TEST set waits for the end
            val = Net(net_path, phase="VALIDATION", seed=seed + 2)
            val.share_weights(self.net)
            self.test_nets = [val, test]
        self.net_path = net_path

        # lengths and intervals, in iterations
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
        self.test_iters = [p.test_iter[0] if p.test_iter else whole[0]] + whole[1:]
        # without test_iter a test covers its whole data set once, each sample exactly once
        self.test_whole = [not p.test_iter and whole[0] > 0] + [True] * (len(whole) - 1)
        if self.test_interval and not self.test_iter:
            raise ConfigError(f"{self._where(p, 'test_interval')}: field 'test_iter': the TEST net has no Data "
                              "layer, so test_iter must be given")
        self.monitors = {}
        for name in ("early_stopping", "plateau"):
            m = getattr(p, name)
            if not p.has(name) or (name == "plateau" and p.lr_policy != "plateau"):
                continue
            outs = self.test_nets[0].outputs
            if m.monitor not in outs:
                raise ConfigError(f"{self._where(m, 'monitor')}: field '{name}.monitor': '{m.monitor}' is not an "
                                  f"output of the test net (outputs: {', '.join(outs) or 'none'})")
            if not self.test_interval:
                raise ConfigError(f"{self._where(p, name)}: field '{name}': needs tests (test_interval)")
            mode = m.mode if m.mode != "AUTO" else (
                "MAX" if any(k in m.monitor.lower() for k in ("acc", "precision", "recall", "f1")) else "MIN")
            self.monitors[name] = {"monitor": m.monitor, "mode": mode, "patience": m.patience,
                                   "min_delta": m.min_delta, "best": None, "best_iter": None, "bad": 0}
        self.early_stopped = False
        prefix = p.snapshot_prefix or os.path.join("snapshots", os.path.splitext(os.path.basename(self.path))[0])
        if os.path.isdir(prefix):
            prefix = os.path.join(prefix, os.path.splitext(os.path.basename(self.path))[0])
        self.prefix = prefix

        sizes = np.diff(self.net.param_offsets)
        lr_vec = np.repeat(self.net.lr_mults, sizes).astype(np.float32)
        decay_vec = (np.repeat(self.net.decay_mults, sizes) * p.weight_decay).astype(np.float32)
        self.rule = RULES[p.type](p, lr_vec, decay_vec)
        self.iter = 0
        self.lr_step = 0
        self.losses: list[float] = []
        self.last_snapshot_iter = None
        self.request = None
        self.signal_effects = {name: "snapshot" for name in SIGNALS}
        self.snapshots_written = []       # iterations, in order
        w = weights or (",".join(p.weights) if p.weights else None)
        if w:
            self.finetune(w)

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
        for w in str(weights).split(","):
            loaded, unused = self.net.load(w, strict=False)
            log.info(f"Finetuning from {w}")
            missing = [k for k in self.net.param_owner_keys if k not in loaded]
            for k in unused:
                log.info(f"Ignoring source param {k}")
            for k in missing:
                log.info(f"Param {k} not in {w}: keeps its filler initialisation")

    # -- the loop ------------------------------------------------------------------------------
    def learning_rate(self):
        rate, _ = lr_policy.learning_rate(self.p, self.iter, self.lr_step, max(self.max_iter, 1))
        return rate

    def _apply_update(self, display):
        p, net = self.p, self.net
        rate, self.lr_step = lr_policy.learning_rate(p, self.iter, self.lr_step, max(self.max_iter, 1))
        if p.lr_policy == "multistep" and display is not None and self.lr_step and \
                self.iter == p.stepvalue[self.lr_step - 1]:
            log.info(f"MultiStep Status: Iteration {self.iter}, step = {self.lr_step}")
        if display:
            log.info(f"Iteration {self.iter}, lr = {rate:.6g}")
        g, w = net.param_diff, net.param_data
        scale = 1.0 / p.iter_size
        if p.clip_gradients >= 0:
            l2 = float(np.sqrt(np.dot(g, g))) * scale
            if l2 > p.clip_gradients:
                s = p.clip_gradients / l2
                log.info(f"Gradient clipping: scaling down gradients (L2 norm {l2:.6g} > {p.clip_gradients:.6g}) "
                         f"by scale factor {s:.6g}")
                scale *= s
        self.rule.step(w, g, rate, self.iter, scale)

    def step(self, iters):
        """Train `iters` iterations (tests and snapshots fall where their intervals say)."""
        p, net = self.p, self.net
        stop_iter = self.iter + iters
        start_iter, t0 = self.iter, time.perf_counter()
        last_display = (self.iter, t0)
        bar = self._progress_bar(iters)
        errstate = np.errstate(over="ignore", invalid="ignore")   # a diverging loss is reported below
        errstate.__enter__()
        try:
            if self.iter == 0 and self.test_interval and p.test_initialization:
                if self.test() is not None:
                    self._after_test()
            while self.iter < stop_iter:
                net.clear_param_diffs()
                display = p.display and self.iter % p.display == 0
                loss = 0.0
                for k in range(p.iter_size):
                    loss += net.forward_backward(cleared=k == 0)
                loss /= p.iter_size
                if not math.isfinite(loss):
                    raise TrainingDiverged(self._diverged(loss))
                self.losses.append(loss)
                if len(self.losses) > p.average_loss:
                    del self.losses[0]
                if display:
                    now = time.perf_counter()
                    n, lapse = self.iter - last_display[0], now - last_display[1]
                    ips = n / lapse if n and lapse > 0 else 0.0
                    log.info(f"Iteration {self.iter} ({ips:.6g} iter/s, {lapse:.4g}s/{p.display} iters), "
                             f"loss = {self.smoothed_loss():.6g}")
                    self._log_outputs(net, "Train", {k: net.blobs[k].data for k in net.outputs})
                    last_display = (self.iter, now)
                self._apply_update(display)
                self.iter += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{self.smoothed_loss():.4g}", refresh=False)
                if self.test_interval and self.iter % self.test_interval == 0:
                    if self.test() is not None:
                        self._after_test()
                req = self.request
                if self.early_stopped:
                    if self.snapshot_interval and self.iter % self.snapshot_interval == 0:
                        self.snapshot()
                    return True
                if (self.snapshot_interval and self.iter % self.snapshot_interval == 0) or req == "snapshot":
                    self.snapshot()
                if req in ("snapshot", "stop"):
                    return False
            return True
        finally:
            errstate.__exit__(None, None, None)
            if bar is not None:
                bar.close()
                log.set_bar(None)
            self.elapsed = time.perf_counter() - t0
            self.trained = self.iter - start_iter

    def solve(self, resume_file=None):
        """Caffe's Solve: optionally restore, train to max_iter, final snapshot."""
        self.request = None
        self._check_snapshot_folder()
        if resume_file:
            self.restore(resume_file)
        log.info(f"Solving {self.net.name}")
        log.info(f"Learning Rate Policy: {self.p.lr_policy}")
        log.info(f"Solver: {NAMES[self.p.type]}, {self.max_iter} iterations"
                 + (f" ({self.max_iter / self.iters_per_epoch:.3g} epochs)" if self.iters_per_epoch else ""))
        with self._signals():
            finished = self.step(max(self.max_iter - self.iter, 0))
            if self.p.snapshot_after_train and self.last_snapshot_iter != self.iter and self.request != "stop":
                self.snapshot()
            if not finished:
                log.info("Optimization stopped early.")
                return False
            if self.p.display and self.iter % self.p.display == 0 and self.losses:
                log.info(f"Iteration {self.iter}, loss = {self.smoothed_loss():.6g}")
            if len(self.test_nets) > 1:
                log.info("Final test on the TEST set (periodic tests used the VALIDATION split):")
                self.final_test = self.test(1)
        log.info("Optimization Done.")
        return True

    def _diverged(self, loss):
        """The divergence message: which snapshot still holds weights that gave a finite loss."""
        good = [it for it in self.snapshots_written if it < self.iter]
        if self.last_snapshot_iter is not None and not self.snapshots_written:
            good = [self.last_snapshot_iter] if self.last_snapshot_iter < self.iter else []
        last = (f"the last snapshot before it went bad is {self._snap_name(good[-1], 'solverstate')}" if good
                else "no snapshot was written before it went bad")
        return f"Iteration {self.iter}: loss is {loss}; training stopped ({last}). Try a lower base_lr."

    def _check_snapshot_folder(self):
        """Fail now, not after hours of training, if snapshots cannot be written (as Caffe)."""
        folder = os.path.dirname(os.path.abspath(self.prefix))
        probe = f"{self.prefix}_probe.npz.tmp"     # a name recover() removes if we die right here
        try:
            os.makedirs(folder, exist_ok=True)
            os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666))
            os.unlink(probe)
        except OSError as e:
            raise NetcliError(f"cannot write snapshots to '{folder}' (snapshot_prefix {self.prefix}): "
                              f"{e.strerror}") from None
        recover(self.prefix)

    def _after_test(self):
        """Early stopping and the plateau policy, from the test just run."""
        for name, m in self.monitors.items():
            value = self.last_test[m["monitor"]]
            better = (m["best"] is None or
                      (value > m["best"] + m["min_delta"] if m["mode"] == "MAX" else value < m["best"] - m["min_delta"]))
            if better:
                m.update(best=float(value), best_iter=self.iter, bad=0)
                if name == "early_stopping":
                    path = f"{self.prefix}_best.weights.npz"
                    log.info(f"    Best {m['monitor']} so far ({value:.6g}): saving {path}")
                    self.net.save(path)
                continue
            m["bad"] += 1
            if m["bad"] < m["patience"]:
                continue
            if name == "plateau":
                self.lr_step += 1
                m["bad"] = 0
                log.info(f"Plateau: {m['monitor']} has not improved for {m['patience']} tests (best {m['best']:.6g}); "
                         f"lr = {self.learning_rate():.6g} from iteration {self.iter}")
            else:
                best = f"{self.prefix}_best.weights.npz"
                log.info(f"Early stopping at iteration {self.iter}: {m['monitor']} has not improved for "
                         f"{m['patience']} tests (best {m['best']:.6g} at iteration {m['best_iter']}); "
                         f"restoring the best weights from {best}")
                self.net.load(best)    # the final snapshot and TEST pass are of the best model
                self.early_stopped = True

    def smoothed_loss(self):
        return sum(self.losses) / len(self.losses) if self.losses else float("nan")

    def test(self, k=0):
        """Run test net k (0: the periodic one, TEST or VALIDATION) over its batches; log and return
        {output: mean}."""
        from ..evaluate import evaluate
        net = self.test_nets[k]
        log.info(f"Iteration {self.iter}, Testing net (#{k})")
        result = evaluate(net, None if self.test_whole[k] else self.test_iters[k],
                          stop=lambda: self.request in ("snapshot", "stop"))
        if result is None:
            log.info("Test interrupted.")
            return None
        means = result["outputs"]
        self._log_outputs(net, "Test", means)
        result = {name: float(v) if v.ndim == 0 else v for name, v in means.items()}
        if k == 0:
            self.last_test = result
        return result

    @staticmethod
    def _log_outputs(net, which, values):
        weights = {t.name: w for t, w in net.loss_tops}
        i = 0
        for name in net.outputs:
            v = np.asarray(values[name]).reshape(-1)
            w = weights.get(name, 0.0)
            for x in v:
                extra = f" (* {w:g} = {w * x:.6g} loss)" if w else ""
                log.info(f"    {which} net output #{i}: {name} = {x:.6g}{extra}")
                i += 1

    def _progress_bar(self, iters):
        show = self.progress if self.progress is not None else (sys.stderr.isatty() and not self.quiet)
        if not show or iters <= 0:
            return None
        from tqdm import tqdm
        bar = tqdm(total=iters, file=sys.stderr, unit="it", dynamic_ncols=True, leave=False)
        log.set_bar(bar)
        return bar

    # -- signals ---------------------------------------------------------------------------------
    def _signals(self):
        """While training: each of SIGNALS sets a request (its effect), checked once per batch."""
        solver = self

        class Handler:
            def __enter__(self):
                self.old = {}
                for name in SIGNALS:
                    sig = getattr(signal, name, None)
                    if sig is None:          # not on this platform (SIGHUP on Windows)
                        continue
                    try:
                        self.old[sig] = signal.signal(sig, self.handle)
                    except ValueError:       # not the main thread: leave signals alone
                        break
                return self

            def handle(self, signum, frame):
                name = signal.Signals(signum).name
                effect = solver.signal_effects.get(name, "snapshot")
                if effect == "none":
                    log.info(f"Caught {name}: ignored (signal effect none)")
                    return
                log.info(f"Caught {name}: " + ("snapshotting and stopping" if effect == "snapshot" else "stopping"))
                if solver.request != "stop":
                    solver.request = effect

            def __exit__(self, *exc):
                for sig, old in self.old.items():
                    signal.signal(sig, old)
        return Handler()

    # -- snapshots -------------------------------------------------------------------------------
    def _snap_name(self, it, kind):
        return f"{self.prefix}_iter_{it}.{kind}.npz"

    def _data_fingerprint(self):
        """What the TRAIN data layers must keep for a resume to continue the same batches."""
        return {name: {"batch_size": l.B, "source": l.p.data_param.source, "shuffle": l.p.data_param.shuffle,
                       "samples": len(l)}
                for name, l in zip(self.net.layer_names, self.net.layers) if l.type == "Data"}

    def snapshot(self):
        """Write the pair <prefix>_iter_N.weights.npz and <prefix>_iter_N.solverstate.npz (naming
        the weights) crash-safely; non-finite weights are not written (returns None)."""
        if not np.isfinite(self.net.param_data).all():
            log.warn(f"Iteration {self.iter}: the weights are not finite; no snapshot written")
            return None
        wpath = self._snap_name(self.iter, "weights")
        spath = self._snap_name(self.iter, "solverstate")
        log.info(f"Snapshotting to {wpath}")
        log.info(f"Snapshotting solver state to {spath}")
        state = {
            "iter": np.int64(self.iter),
            "lr_step": np.int64(self.lr_step),
            "type": np.array(self.p.type),
            "learned_net": np.array(os.path.relpath(os.path.abspath(wpath), os.path.dirname(os.path.abspath(spath)))),
            "losses": np.asarray(self.losses, np.float64),
            "net_state": np.array(json.dumps(self.net.get_state())),
            "monitors": np.array(json.dumps({k: {f: m[f] for f in ("best", "best_iter", "bad")}
                                             for k, m in self.monitors.items()})),
            "data": np.array(json.dumps(self._data_fingerprint())),
        }
        for i, h in enumerate(self.rule.history):
            state[f"history/{i}"] = h
        weights = {k: np.asarray(b.data, np.float32)
                   for k, b in zip(self.net.param_owner_keys, self.net.learnable_params)}
        save_files({wpath: weights, spath: state})
        self.last_snapshot_iter = self.iter
        self.snapshots_written.append(self.iter)
        return wpath, spath

    def restore(self, path):
        """Resume from a .solverstate.npz: weights, history, iteration, lr position, data and RNG.
        Every damaged or mismatched entry is one NetcliError naming the file."""
        path = os.fspath(path)
        if path.endswith(".weights.npz"):
            raise NetcliError(f"{path} is a weights file: --snapshot takes a .solverstate.npz "
                              "(use --weights to fine-tune from weights)")
        st = read_npz(path, "solver state")
        need = ["iter", "lr_step", "type", "learned_net", "net_state"]
        missing = [k for k in need if k not in st]
        if missing:
            raise NetcliError(f"{path}: not a netcli solver state (missing {', '.join(missing)})")
        it, lr_step = _count(st, "iter", path), _count(st, "lr_step", path)
        kind, learned = _text(st, "type", path), _text(st, "learned_net", path)
        if kind != self.p.type:
            raise NetcliError(f"{path}: state of a {NAMES.get(kind, kind)} solver, but this "
                              f"solver is {NAMES[self.p.type]}")
        hist = [st[f"history/{i}"] for i in range(len(self.rule.history)) if f"history/{i}" in st]
        if len(hist) != len(self.rule.history) or any(h.shape != r.shape or h.dtype.kind != "f"
                                                      for h, r in zip(hist, self.rule.history)):
            raise NetcliError(f"{path}: the saved history does not fit this net ({len(hist)} blobs of "
                              f"{hist[0].shape if hist else '?'}; expected {len(self.rule.history)} of "
                              f"{self.rule.history[0].shape})")
        losses = st.get("losses", np.zeros(0))
        if losses.dtype.kind not in "fiu" or losses.ndim != 1:
            raise NetcliError(f"{path}: entry 'losses' is damaged (expected a list of numbers)")
        net_state, monitors = _json(st, "net_state", path), _json(st, "monitors", path, {})
        if not isinstance(net_state, dict) or not isinstance(monitors, dict):
            raise NetcliError(f"{path}: entries 'net_state' and 'monitors' must be JSON objects")
        self._warn_if_inexact(path, _json(st, "data", path, None), net_state)
        wpath = os.path.join(os.path.dirname(path), learned)
        log.info(f"Resuming from {path}")
        self.net.load(wpath)
        try:
            self.net.set_state(net_state)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise NetcliError(f"{path}: entry 'net_state' (RNG and data positions) is damaged: "
                              f"{type(e).__name__} {e}") from None
        for h, saved in zip(self.rule.history, hist):
            h[...] = saved
        self.iter, self.lr_step = it, lr_step
        self.losses = [float(x) for x in losses]
        for k, saved in monitors.items():
            if k in self.monitors and isinstance(saved, dict):
                self.monitors[k].update({f: saved[f] for f in ("best", "best_iter", "bad") if f in saved})
        self.last_snapshot_iter = self.iter

    def _warn_if_inexact(self, path, saved, net_state):
        """One WARNING line when the TRAIN data layers changed since the snapshot."""
        now = self._data_fingerprint()
        diffs = []
        for name, cur in now.items():
            old = (saved or {}).get(name)
            if old is None:
                if saved is not None or name not in net_state:
                    diffs.append(f"data layer '{name}' is not in the snapshot (renamed?)")
                continue
            diffs += [f"data layer '{name}' {k} {old.get(k)!r} in the snapshot, {v!r} now"
                      for k, v in cur.items() if k in old and old.get(k) != v]
        if diffs:
            log.warn(f"resuming from {path} is not an exact continuation: {'; '.join(diffs)}")


def _count(st, key, path):
    a = st[key]
    if a.shape != () or a.dtype.kind not in "iu" or int(a) < 0:
        raise NetcliError(f"{path}: entry '{key}' is damaged (expected a count, got {a.dtype} of shape {a.shape})")
    return int(a)


def _text(st, key, path):
    a = st[key]
    if a.shape != () or a.dtype.kind != "U":
        raise NetcliError(f"{path}: entry '{key}' is damaged (expected text)")
    return str(a)


def _json(st, key, path, default=...):
    if key not in st:
        if default is ...:
            raise NetcliError(f"{path}: entry '{key}' is missing")
        return default
    try:
        return json.loads(_text(st, key, path))
    except (json.JSONDecodeError, RecursionError):
        raise NetcliError(f"{path}: entry '{key}' is damaged (not JSON)") from None
