"""What training shows: the header of a run, Caffe's display lines every `display` iterations,
the progress bar, and the first run's kernel-compilation note."""
from __future__ import annotations

import sys
import time

from .. import log
from .callbacks import Callback
from .hooks import log_outputs
from ..update_rules import NAMES


class Header(Callback):
    """The lines that open solve(): the net, the policy, the device, the rule and the length."""

    def on_start(self, s):
        log.info(f"Solving {s.net.name}")
        log.info(f"Learning Rate Policy: {s.p.lr_policy}")
        if s.device != "CPU":
            log.info(f"Training on {s.device}")
            for line in s.net.executor.plan():
                log.info(line)
        elif s.gpu_fallback:
            log.info(f"solver_mode: GPU, but {s.gpu_fallback}: training on the CPU (to ask for the CPU, "
                     f"set solver_mode: CPU in {s.path})")
        log.info(f"Solver: {NAMES[s.p.type]}, {s.max_iter} iterations"
                 + (f" ({s.max_iter / s.iters_per_epoch:.3g} epochs)" if s.iters_per_epoch else ""))


class CompileNote(Callback):
    """Says when Numba compiles netcli's kernels (a cache miss, netcli/ops/compiles.py), which,
    and how long the compiling took: after the first update, and at the end."""

    def __init__(self):
        self.compiles = None

    def on_start(self, s):
        from ..ops.compiles import KernelCompiles
        self.compiles = KernelCompiles(log.info).__enter__()

    def on_after_update(self, s):
        if self.compiles is not None and self.compiles.names:
            self.compiles.report()

    def on_end(self, s, finished, error):
        if self.compiles is not None:
            self.compiles.__exit__(None, None, None)
            self.compiles = None


def train_lines(s, last):
    """Caffe's display of iteration s.iter: the smoothed loss, the rate since `last` ((iter, time)
    of the previous display), the time the loop waited on data since then, and the train net's
    outputs; returns this display's (iter, time, seconds waited on data so far)."""
    from ..data.prefetch import waited
    net, now, wait = s.net, time.perf_counter(), waited(s.net)
    n, lapse = s.iter - last[0], now - last[1]
    rate = f" ({n / lapse:.6g} iter/s, {lapse:.4g}s/{s.p.display} iters)" if n and lapse > 0 else ""
    log.info(f"Iteration {s.iter}{rate}, loss = {s.smoothed_loss():.6g}")
    if n and lapse > 0 and net.data_layers():
        spent = wait - (last[2] if len(last) > 2 else 0.0)
        log.info(f"Data wait: {spent / n * 1000:.4g} ms/iter ({100 * spent / lapse:.3g}% of the time)")
    log_outputs(net, "Train", {k: net.blobs[k].data for k in net.outputs})
    s.record("train", loss=s.smoothed_loss(), outputs={k: net.blobs[k].data for k in net.outputs})
    return s.iter, now, wait


def progress_bar(progress, quiet, iters):
    """A tqdm bar on stderr for `iters` iterations (progress None: when stderr is a terminal and
    not quiet), or None."""
    show = progress if progress is not None else (sys.stderr.isatty() and not quiet)
    if not show or iters <= 0:
        return None
    from tqdm import tqdm
    bar = tqdm(total=iters, file=sys.stderr, unit="it", dynamic_ncols=True, leave=False)
    log.set_bar(bar)
    return bar
