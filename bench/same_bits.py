"""Training gives the same bits on any thread count: each net of bench/nets_vs_torch.py trains for
N iterations on its random data, once per thread count, each in a fresh process, and the
weights, their gradients and the update rule's history are hashed (sha256, first 16 digits).

    python bench/same_bits.py [--nets resnet20,mobilenet] [--threads 1,2,3,4] [--batch 32] [--iters 100]

Prints one line per net and thread count, and exits 1 where a net's hashes differ. Thread counts
past the machine's cores still run their shares and team tiles in threads (slower, the same
work), so a 2-core machine checks 1-4 threads too. A few minutes for the defaults."""
from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_workers import NETS  # noqa: E402
from nets_vs_torch import cpu_model  # noqa: E402


def train_and_hash(name, threads, batch, iters):
    """The hash of the weights, gradients and history after `iters` iterations (this process)."""
    from bench_workers import NetcliWorker
    with tempfile.TemporaryDirectory() as tmp:
        worker = NetcliWorker(name, threads, tmp, [batch])
        worker.train(iters, batch)
        solver = worker.solvers[batch]
        digest = hashlib.sha256()
        for array in (solver.net.param_data, solver.net.param_diff, *solver.rule.history):
            digest.update(array.tobytes())
        return digest.hexdigest()[:16]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nets", default="resnet20,mobilenet")
    ap.add_argument("--threads", default="1,2,3,4")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--iters", type=int, default=100)
    ap.add_argument("--worker", nargs=4, metavar=("NET", "THREADS", "BATCH", "ITERS"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        name, threads, batch, iters = a.worker
        print(train_and_hash(name, int(threads), int(batch), int(iters)))
        return 0
    nets, counts = a.nets.split(","), [int(t) for t in a.threads.split(",")]
    unknown = [n for n in nets if n not in NETS or NETS[n][1] is None]
    if unknown:
        ap.error(f"not a training net of bench/bench_workers.py: {', '.join(unknown)}")
    print(f"CPU: {cpu_model()}, {os.cpu_count()} logical cores; batch {a.batch}, {a.iters} iterations")
    differ = []
    for name in nets:
        hashes = []
        for n in counts:
            t = time.perf_counter()
            env = {**os.environ, "NETCLI_THREADS": str(n)}
            run = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", name, str(n),
                                  str(a.batch), str(a.iters)], env=env, capture_output=True, text=True)
            if run.returncode:
                print(run.stdout + run.stderr, file=sys.stderr)
                return 1
            hashes.append(run.stdout.split()[-1])
            print(f"{name:12s} {n} thread(s): {hashes[-1]}  ({time.perf_counter() - t:.0f} s)", flush=True)
        if len(set(hashes)) > 1:
            differ.append(name)
    print("the same bits for every thread count" if not differ else f"DIFFERENT bits: {', '.join(differ)}")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
