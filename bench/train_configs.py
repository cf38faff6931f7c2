"""Train every ready config in configs/ to completion on the embedded MNIST subset (and
cifar10_quick on synthetic 32x32x3 data, since no CIFAR-10 ships with netcli), printing the final
TEST accuracy and the iterations each took.

    NETCLI_OFFLINE=1 python bench/train_configs.py [--output FOLDER] [config_solver.yaml ...]

Snapshots and run logs go under --output (default: a new temporary folder), never into snapshots/.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MNIST = ["lenet_solver.yaml", "lenet_solver_adam.yaml", "lenet_solver_rmsprop.yaml", "lenet_dropout_solver.yaml",
         "lenet_bn_solver.yaml", "mnist_mlp_solver.yaml", "mnist_mlp_relu_solver.yaml", "mnist_logreg_solver.yaml"]


def synthetic_cifar(folder, n_train=2000, n_test=500):
    """Ten classes of 32x32x3 images, each class a colour tint plus noise: learnable, but not CIFAR."""
    import numpy as np
    rng = np.random.default_rng(0)
    tints = rng.integers(40, 215, (10, 3))
    for name, n in (("cifar10_train.npz", n_train), ("cifar10_test.npz", n_test)):
        y = rng.integers(0, 10, n)
        x = np.clip(tints[y][:, :, None, None] + rng.normal(0, 40, (n, 3, 32, 32)), 0, 255).astype(np.uint8)
        np.savez(os.path.join(folder, name), data=x, label=y)


def run(solver_file, output, quiet=True, **overrides):
    import netcli
    from netcli import log
    log.set_quiet(quiet)
    t = time.perf_counter()
    name = os.path.splitext(os.path.basename(solver_file))[0]
    s = netcli.Solver(solver_file, progress=False, log_path=os.path.join(output, f"{name}.log.jsonl"), **overrides)
    s.prefix = os.path.join(output, name)
    s.solve()
    acc = (getattr(s, "final_test", None) or s.test(len(s.test_nets) - 1))["accuracy"]
    log.set_quiet(False)
    stopped = " (early stopping)" if s.early_stopped else ""
    return acc, s.iter, time.perf_counter() - t, stopped


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output", help="folder for the snapshots and run logs (default: a new temporary folder)")
    ap.add_argument("names", nargs="*", help="solver files of configs/ (default: all ready ones)")
    a = ap.parse_args(argv)
    os.environ.setdefault("NETCLI_OFFLINE", "1")
    output = os.path.abspath(a.output or tempfile.mkdtemp(prefix="netcli-train-configs-"))
    os.makedirs(output, exist_ok=True)
    print(f"snapshots and run logs in {output}", flush=True)
    names = a.names or MNIST + ["cifar10_quick_solver.yaml"]
    for name in names:
        path = os.path.join(ROOT, "configs", name)
        if name.startswith("cifar10"):
            here = os.getcwd()
            with tempfile.TemporaryDirectory() as tmp:
                os.makedirs(os.path.join(tmp, "data"))
                synthetic_cifar(os.path.join(tmp, "data"))
                os.chdir(tmp)
                try:
                    acc, iters, secs, note = run(path, output)
                finally:
                    os.chdir(here)
            note += " (synthetic 32x32x3 data)"
        else:
            acc, iters, secs, note = run(path, output)
        print(f"{name:<30} TEST accuracy {acc:.4f} after {iters} iterations, {secs:.0f} s{note}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
