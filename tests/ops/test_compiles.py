"""The compile notice (netcli/ops/compiles.py): said when Numba compiles one of netcli's
kernels, naming them and timing only the compiling; never when every kernel comes from the cache."""
import os
import subprocess
import sys

import numpy as np

from helpers import fresh_kernel
from netcli.ops.compiles import KernelCompiles

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_a_compile_is_announced_named_and_timed_once():
    said = []
    kernel = fresh_kernel("netcli.ops.cpu.probe")
    with KernelCompiles(said.append) as compiles:
        kernel(np.float32(1))
        assert said == ["Compiling kernels (first use; Numba caches them on disk for later runs) ..."]
        compiles.report()
        assert said[1].startswith("Kernels compiled in ") and "(1: probe.add_one)" in said[1]
        kernel(np.float32(2))                      # compiled already: nothing more
        compiles.report()
    assert len(said) == 2


def test_other_functions_compiling_are_not_netcli_kernels():
    said = []
    with KernelCompiles(said.append):
        fresh_kernel("someone_else")(np.float32(1))
    assert said == []


NET = """\
layers:
  - {name: data, type: Data, top: [data, label], data_param: {source: d.npz, batch_size: 4}}
  - {name: ip, type: InnerProduct, bottom: data, top: ip, inner_product_param: {num_output: 2}}
  - {name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}
"""
SOLVER = "net: net.yaml\nbase_lr: 0.1\nmax_iter: 2\ndisplay: 1\nsnapshot_prefix: snaps/s\nrandom_seed: 1\n"


def test_a_second_run_with_a_warm_cache_says_nothing_about_compiling(tmp_path):
    np.savez(tmp_path / "d.npz", data=np.zeros((8, 1, 2, 2), np.uint8), label=np.arange(8) % 2)
    (tmp_path / "net.yaml").write_text(NET)
    (tmp_path / "solver.yaml").write_text(SOLVER)
    env = dict(os.environ, PYTHONPATH=ROOT, NUMBA_CACHE_DIR=str(tmp_path / "cache"), NETCLI_OFFLINE="1")
    cmd = [sys.executable, "-m", "netcli.cli", "train", "--solver", "solver.yaml", "--quiet"]
    first, second = (subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True) for _ in range(2))
    assert first.returncode == 0 and second.returncode == 0, first.stdout + first.stderr + second.stderr
    lines = first.stdout.splitlines()
    notice = lines.index("Compiling kernels (first use; Numba caches them on disk for later runs) ...")
    done = next(i for i, line in enumerate(lines) if line.startswith("Kernels compiled in "))
    assert notice < done and "softmax." in lines[done]
    assert "ompil" not in second.stdout
