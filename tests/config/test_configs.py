"""Every ready config validates and trains on the embedded MNIST subset (short runs here; the
full runs are bench/train_configs.py)."""
import glob
import os

import numpy as np
import pytest
import yaml

import netcli
from netcli import log

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def short_run(path, iters, tmp_path, base_lr=None):
    """The final test's outputs after `iters` iterations (at base_lr where given: the solver file
    copied with that rate)."""
    if base_lr is not None:
        solver = yaml.safe_load(open(path))
        solver.update(base_lr=base_lr, net=os.path.join(os.path.dirname(path), solver["net"]))
        path = tmp_path / os.path.basename(path)
        path.write_text(yaml.safe_dump(solver))
    log.set_quiet(True)
    try:
        s = netcli.Solver(path, max_iter=iters, progress=False)
        s.prefix = str(tmp_path / "snap")
        s.test_interval = iters
        s.test_whole = [True] * len(s.test_nets)     # the TEST set once (Caffe's test_iter 100 reads it 10x)
        s.solve()
        return getattr(s, "final_test", None) or s.last_test
    finally:
        log.set_quiet(False)


# Short runs of every MNIST config. What is asserted holds on any CPU, BLAS and thread count: after
# a few hundred iterations each net has clearly learned (test loss well under the 2.30 of a uniform
# guess over 10 classes, accuracy three times chance), with a wide margin below what any machine
# reaches. Not at RMSProp's rate in Caffe's example (0.01): 200 iterations of it diverge on some
# seeds (random_seed 1-6: seed 5, loss 47; after a change of the Winograd weight transform's
# rounding, seeds 1 and 5), so its run here takes 0.001 (seeds 1-8: accuracy 0.95-0.97, loss
# 0.11-0.16): the update rule is what it tests. Exact numbers are asserted elsewhere against
# independent references, never on trajectories.
@pytest.mark.parametrize("name,iters,base_lr", [
    ("mnist_logreg_solver.yaml", 150, None),
    ("mnist_mlp_solver.yaml", 300, None),
    ("mnist_mlp_relu_solver.yaml", 300, None),
    ("lenet_dropout_solver.yaml", 200, None),
    ("lenet_bn_solver.yaml", 200, None),
    ("lenet_solver_adam.yaml", 200, None),
    ("lenet_solver_rmsprop.yaml", 200, 0.001),
])
def test_config_trains(name, iters, base_lr, tmp_path):
    result = short_run(os.path.join(ROOT, "configs", name), iters, tmp_path, base_lr)
    chance_loss = np.log(10)
    assert np.isfinite(result["loss"]) and result["loss"] < 0.75 * chance_loss, result
    assert result["accuracy"] > 0.3, result


def test_cifar10_quick_runs_on_cifar_shaped_data(tmp_path, monkeypatch):
    from fake_cifar import put_cifar10
    put_cifar10(str(tmp_path / "data"), 300, 200)          # cifar10:train, cifar10:test and cifar10:mean
    monkeypatch.setenv("NETCLI_DATA", str(tmp_path / "data"))
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
    elif "cifar" not in path:              # nets (CIFAR-10 is the user's: test_bench_nets.py brings its own)
        netcli.Net(path, phase="TRAIN")
        netcli.Net(path, phase="TEST")


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "configs", "*.yaml"))))
def test_print_config_round_trips(path, tmp_path):
    """`netcli check --print-config`: load, write, load gives the same net (every phase) or solver."""
    from click.testing import CliRunner
    from netcli.cli import cli
    from netcli.config import load_yaml
    from netcli.config.compile import compile_net, spec_summary
    kind = "--solver" if "net" in load_yaml(path) else "--model"
    r = CliRunner().invoke(cli, ["check", kind, path, "--print-config"], obj={})
    assert r.exit_code == 0, r.output
    again = tmp_path / os.path.basename(path)
    again.write_text(r.output)
    if kind == "--solver":
        from netcli.config import Problems
        from netcli.solver.spec import SOLVER
        parsed = [SOLVER.parse(load_yaml(p), Problems(), None, "").to_dict() for p in (path, str(again))]
        assert parsed[0] == parsed[1]
    else:
        for phase in ("TRAIN", "TEST"):
            assert spec_summary(compile_net(path, phase)) == spec_summary(compile_net(str(again), phase))
        r2 = CliRunner().invoke(cli, ["check", "--model", str(again), "--print-config"], obj={})
        assert r2.output == r.output
