"""Every ready config validates and trains on the embedded MNIST subset (short runs here; the
full runs are bench/train_configs.py)."""
import glob
import os

import numpy as np
import pytest

import netcli
from netcli import log

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def short_run(path, iters, tmp_path):
    log.set_quiet(True)
    try:
        s = netcli.Solver(path, max_iter=iters, progress=False)
        s.prefix = str(tmp_path / "snap")
        s.test_interval = iters
        s.solve()
        return (getattr(s, "final_test", None) or s.last_test)["accuracy"]
    finally:
        log.set_quiet(False)


@pytest.mark.parametrize("name,iters,least", [
    ("mnist_logreg_solver.yaml", 150, 0.8),
    ("mnist_mlp_solver.yaml", 300, 0.85),
    ("mnist_mlp_relu_solver.yaml", 300, 0.85),
    ("lenet_dropout_solver.yaml", 200, 0.85),
    ("lenet_bn_solver.yaml", 200, 0.85),
    ("lenet_solver_adam.yaml", 200, 0.85),
    ("lenet_solver_rmsprop.yaml", 200, 0.7),     # Caffe's rate 0.01 makes RMSProp noisy early on
])
def test_config_trains(name, iters, least, tmp_path):
    assert short_run(os.path.join(ROOT, "configs", name), iters, tmp_path) > least


def test_cifar10_quick_runs_on_cifar_shaped_data(tmp_path, monkeypatch):
    import sys
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from train_configs import synthetic_cifar
    (tmp_path / "data").mkdir()
    synthetic_cifar(str(tmp_path / "data"), 300, 200)
    monkeypatch.chdir(tmp_path)
    s = netcli.Solver(os.path.join(ROOT, "configs", "cifar10_quick_solver.yaml"), max_iter=3, progress=False)
    assert s.net.blobs["pool3"].shape == (100, 64, 4, 4)      # Caffe's ceil-mode pooling: 32 -> 16 -> 8 -> 4
    s.prefix = str(tmp_path / "snap")
    s.test_interval, s.test_iter = 3, 2
    s.solve()
    assert np.isfinite(s.smoothed_loss())


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml"))))
def test_every_config_parses(path):
    from netcli.solver.spec import SOLVER
    from netcli.config import load_yaml, Problems
    tree = load_yaml(path)
    if "net" in tree:                      # a solver
        problems = Problems()
        SOLVER.parse(tree, problems, None, "")
        problems.raise_if_any()
    elif "cifar10" not in path:            # nets (cifar10_quick's data is the user's)
        netcli.Net(path, phase="TRAIN")
        netcli.Net(path, phase="TEST")
