"""User-visible latency of the CLI: `netcli --help`, `import netcli`, and the first `netcli time`
on LeNet with a cold and with a warm Numba cache (compile time reported), next to PyTorch's own
import-and-first-batch time when PyTorch is installed.

    python bench/startup.py
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TORCH_FIRST_BATCH = """
import torch, torch.nn as nn
m = nn.Sequential(nn.Conv2d(1, 20, 5), nn.MaxPool2d(2, 2), nn.Conv2d(20, 50, 5), nn.MaxPool2d(2, 2),
                  nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10))
x = torch.rand(64, 1, 28, 28); y = torch.randint(0, 10, (64,))
torch.nn.functional.cross_entropy(m(x), y).backward()
"""


def timed(cmd, env=None, repeat=1):
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        out.append(time.perf_counter() - t)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return statistics.median(out), r.stdout


def main():
    env = dict(os.environ, PYTHONPATH=ROOT, NETCLI_OFFLINE="1")
    py = sys.executable
    help_s, _ = timed([py, "-m", "netcli.cli", "--help"], env, 5)
    imp_s, _ = timed([py, "-c", "import netcli"], env, 5)
    imp_net_s, _ = timed([py, "-c", "import netcli.net, netcli.ops.cpu.im2col, netcli.ops.cpu.pool"], env, 3)
    print(f"netcli --help:                         {help_s:6.2f} s")
    print(f"import netcli:                         {imp_s:6.2f} s")
    print(f"import netcli.net + kernels (Numba):   {imp_net_s:6.2f} s")
    with tempfile.TemporaryDirectory() as cache:
        e = dict(env, NUMBA_CACHE_DIR=cache)
        cmd = [py, "-m", "netcli.cli", "time", "--model", "configs/lenet_train_test.yaml", "--iterations", "1"]
        cold, out_cold = timed(cmd, e)
        warm, out_warm = timed(cmd, e, 3)

    def first_pass(out):
        for line in out.splitlines():
            if line.startswith("First forward-backward"):
                return float(line.split(": ")[1].split()[0]) / 1000
        return float("nan")
    print(f"first netcli time, cold Numba cache:   {cold:6.2f} s (first pass incl. compilation {first_pass(out_cold):.2f} s)")
    print(f"first netcli time, warm Numba cache:   {warm:6.2f} s (first pass {first_pass(out_warm):.2f} s)")
    try:
        import torch  # noqa: F401
    except ImportError:
        print("PyTorch not installed: no comparison (pip install torch==2.13.0)")
        return 0
    t, _ = timed([py, "-c", TORCH_FIRST_BATCH], env, 3)
    print(f"PyTorch import + first LeNet batch:    {t:6.2f} s")
    print(f"warm netcli time - PyTorch:            {warm - t:+6.2f} s (target: within 2 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
