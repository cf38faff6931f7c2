"""kill -9 at a random moment of `netcli train`, then resume: used by tests/test_faults.py (a few
trials) and bench/killtest.py (many). A trial checks that (1) every snapshot file the killed run
left under its final name is readable, (2) resuming from the newest complete pair finishes the run
with weights bit-identical to an uninterrupted run, and (3) afterwards no temporary file and no
half pair (weights without solver state) is left in the snapshot folder."""
from __future__ import annotations

import os
import random
import re
import subprocess
import sys
import time

import numpy as np

from tinynet import make_tiny

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_ITER = 60


def train(folder, *flags, kill_after=None):
    """Run `netcli train` on the tiny solver in `folder`; with kill_after, SIGKILL it after that
    many seconds. Returns (exit code, output)."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               NETCLI_THREADS=os.environ.get("NETCLI_THREADS", "2"))
    p = subprocess.Popen([sys.executable, "-m", "netcli.cli", "train", "--solver", str(folder / "solver.yaml"),
                          "--quiet", *flags], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=str(folder))
    try:
        out, _ = p.communicate(timeout=kill_after if kill_after is not None else 300)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return p.returncode, out.decode(errors="replace")


def setup(folder):
    # a snapshot every 2 iterations: a kill often lands inside one
    make_tiny(folder, max_iter=MAX_ITER, snapshot=2, test_interval=20, display=0)


def reference(folder):
    """Final weights of an uninterrupted run, and how long the run took."""
    folder.mkdir(parents=True, exist_ok=True)
    setup(folder)
    t0 = time.perf_counter()
    code, out = train(folder)
    assert code == 0, out
    return dict(np.load(folder / "snaps" / f"tiny_iter_{MAX_ITER}.weights.npz")), time.perf_counter() - t0


def state(snaps):
    names = sorted(os.listdir(snaps)) if os.path.isdir(snaps) else []
    temps = [n for n in names if n.endswith(".tmp")]
    weights = {int(m.group(1)) for n in names if (m := re.fullmatch(r"tiny_iter_(\d+)\.weights\.npz", n))}
    states = {int(m.group(1)) for n in names if (m := re.fullmatch(r"tiny_iter_(\d+)\.solverstate\.npz", n))}
    return names, temps, weights, states


def trial(folder, seed, ref, duration, seen=None):
    """One kill-and-resume trial; returns a list of problems (empty: passed). `seen`, a dict,
    counts what the kill left: pairs already written, and temporary files (a kill mid-write)."""
    setup(folder)
    rnd = random.Random(seed)
    code, out = train(folder, kill_after=rnd.uniform(0.2, duration * 1.1))
    problems = []
    snaps = folder / "snaps"
    names, temps, weights, states = state(snaps)
    if seen is not None:
        seen["after a snapshot"] = seen.get("after a snapshot", 0) + bool(states)
        seen["mid-write (temporary files left)"] = seen.get("mid-write (temporary files left)", 0) + bool(temps)
        seen["half pair left"] = seen.get("half pair left", 0) + bool(weights - states)
    for n in names:                                   # (1) nothing under a final name is corrupt
        if n.endswith(".npz"):
            try:
                with np.load(snaps / n) as z:
                    [z[k] for k in z.files]
            except Exception as e:   # noqa: BLE001 - any failure is a corrupt file
                problems.append(f"corrupt {n}: {type(e).__name__}: {e}")
    done = [it for it in states if it in weights]
    flags = ["--snapshot", str(snaps / f"tiny_iter_{max(done)}.solverstate.npz")] if done else []
    if code == 0 and f"tiny_iter_{MAX_ITER}.weights.npz" in names:
        flags = []                                    # it finished before the kill: run it again
    code2, out2 = train(folder, *flags)
    if code2 != 0:
        problems.append(f"resume failed ({code2}): {out2[-500:]}")
        return problems
    final = dict(np.load(snaps / f"tiny_iter_{MAX_ITER}.weights.npz"))
    if set(final) != set(ref) or any(not np.array_equal(final[k], ref[k]) for k in ref):
        problems.append(f"resume from {flags[-1] if flags else 'scratch'} is not bit-exact")
    names, temps, weights, states = state(snaps)     # (3) leftovers
    if temps:
        problems.append(f"temporary files left: {temps}")
    if weights - states:
        problems.append(f"weights without solver state: {sorted(weights - states)}")
    return problems
