"""The nets of bench/nets_vs_torch.py (issue 26): every shipped config passes `netcli check` (with
CIFAR-shaped data present, so every shape is checked), the benchmark nets build with the shapes and
sizes of their papers, and the committed YAML is what bench/make_configs.py writes."""
import glob
import os
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import netcli
from netcli.cli import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(ROOT, "configs")
sys.path.insert(0, os.path.join(ROOT, "bench"))


@pytest.fixture
def cifar_here(tmp_path, monkeypatch):
    """A working folder with data/cifar10_{train,test}.npz (synthetic, CIFAR-shaped), and a
    synthetic cifar10 named dataset in $NETCLI_DATA (configs/cifar10_quick_*)."""
    from train_configs import synthetic_cifar
    from fake_cifar import put_cifar10
    (tmp_path / "data").mkdir()
    synthetic_cifar(str(tmp_path / "data"), 120, 110)
    put_cifar10(str(tmp_path / "named"), 120, 110)
    monkeypatch.setenv("NETCLI_DATA", str(tmp_path / "named"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def weighted(net):
    """(number of Convolution and InnerProduct layers that are not shortcut projections, the
    number of params that learn: lr_mult > 0, so not BatchNorm's statistics)."""
    layers = sum(1 for n, l in zip(net.layer_names, net.layers)
                 if l.type in ("Convolution", "InnerProduct") and not n.endswith(("_proj", "_branch1")))
    params = sum(b.data.size for b, m in zip(net.learnable_params, net.lr_mults) if m > 0)
    return layers, params


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(CONFIGS, "*.yaml"))), ids=os.path.basename)
def test_every_shipped_config_passes_check(path, cifar_here):
    from netcli.config import load_yaml
    kind = "--solver" if "net" in load_yaml(path) else "--model"
    r = CliRunner().invoke(cli, ["check", kind, path], obj={})
    assert r.exit_code == 0, r.output
    assert "not here" not in r.output and "shapes not checked" not in r.output, r.output


@pytest.mark.parametrize("name,layers,params,pool", [
    ("resnet20_cifar", 20, 272_474, (64, 1, 1)),      # He et al.: 0.27M
    ("resnet56_cifar", 56, 855_770, (64, 1, 1)),      # 0.85M
    ("mobilenet_cifar", 28, 3_217_226, (1024, 1, 1)),
    ("inception_cifar", 22, 346_046, (256, 1, 1)),
])
def test_cifar_nets_build(name, layers, params, pool, cifar_here):
    path = os.path.join(CONFIGS, f"{name}.yaml")
    net = netcli.Net(path, phase="TRAIN")
    assert weighted(net) == (layers, params)
    assert net.blobs["data"].shape == (64, 3, 32, 32)
    assert net.blobs["fc10"].shape == (64, 10)
    pooled = [b for b in net.layer_names if net.layer_dict[b].type == "Pooling"][-1]
    assert net.blobs[pooled].shape == (64, *pool)
    test = netcli.Net(path, phase="TEST")
    assert test.blobs["data"].shape == (100, 3, 32, 32) and test.blobs["accuracy"].shape == ()


def test_resnet20_trains_with_netcli_train(cifar_here):
    """`netcli train` on the config, as a user runs it with the data in data/."""
    (cifar_here / "solver.yaml").write_text(
        f"net: {os.path.join(CONFIGS, 'resnet20_cifar.yaml')}\nbase_lr: 0.01\nmomentum: 0.9\n"
        "lr_policy: fixed\nmax_iter: 2\ntest_iter: 1\ntest_interval: 2\nsnapshot_prefix: snap\n")
    r = CliRunner().invoke(cli, ["train", "--solver", "solver.yaml"], obj={})
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("name,layers,params", [
    ("squeezenet11", 26, 1_235_496),                  # SqueezeNet 1.1: 1.24M
    ("resnet50", 50, 25_557_032),                     # ResNet-50: 25.6M
])
def test_deploy_nets_build(name, layers, params):
    net = netcli.Net(os.path.join(CONFIGS, f"{name}.yaml"), phase="TEST")
    assert weighted(net) == (layers, params)
    assert net.blobs["data"].shape == (1, 3, 224, 224)
    assert net.blobs["prob"].shape[:2] == (1, 1000)


def test_squeezenet_runs_and_sums_to_one():
    net = netcli.Net(os.path.join(CONFIGS, "squeezenet11.yaml"), phase="TEST")
    net.blobs["data"].data[...] = np.random.default_rng(0).normal(0, 1, net.blobs["data"].shape)
    net.forward()
    prob = net.blobs["prob"].data.reshape(1, 1000)
    assert np.all(np.isfinite(prob)) and abs(float(prob.sum()) - 1) < 1e-4


def test_committed_yaml_is_what_the_generator_writes():
    from make_configs import NETS, to_yaml
    for name, (make, title) in NETS.items():
        with open(os.path.join(CONFIGS, f"{name}.yaml")) as f:
            assert f.read() == to_yaml(name, title, make()), f"configs/{name}.yaml: run bench/make_configs.py"


def test_bench_builds_every_net_it_names(tmp_path):
    """bench/nets_vs_torch.py's own form of each net (Data layers out, an Input layer in) builds
    in netcli at a small batch (PyTorch is not needed here: its translation is the bench's)."""
    from bench_workers import NETS, bench_layers, netcli_yaml
    for name, (config, sample) in NETS.items():
        layers, sample, train_batch, test_batch = bench_layers(config, sample)
        assert test_batch and (train_batch or name in ("squeezenet11", "resnet50")), name
        path = tmp_path / f"{name}.yaml"
        path.write_text(netcli_yaml(layers, 2, sample, train_batch is not None))
        net = netcli.Net(str(path), phase="TRAIN" if train_batch else "TEST")
        assert net.blobs["data"].shape == (2, *sample), name


def test_same_bits_hashes_the_training_state_and_runs_each_thread_count_in_its_own_process(capsys, monkeypatch):
    """bench/same_bits.py (issue 26's check that training gives the same weights on 1-4 threads):
    each thread count trains in a fresh process, the hashes cover the weights, their gradients and
    the history, so they change with the iterations; a net it cannot train is one clear error."""
    import same_bits
    from netcli.exec import threads
    monkeypatch.setenv("NETCLI_THREADS", os.environ.get("NETCLI_THREADS", ""))   # (the worker sets both)
    old = threads.count()
    try:
        a, b = (same_bits.train_and_hash("lenet", 1, 8, n) for n in (1, 2))
    finally:
        threads.set_threads(old)
    assert len(a) == 16 and a != b
    assert same_bits.main(["--nets", "lenet", "--threads", "1,2", "--batch", "8", "--iters", "2"]) == 0
    out = capsys.readouterr().out
    assert f"lenet        1 thread(s): {b}" in out and f"lenet        2 thread(s): {b}" in out, out
    assert "the same bits for every thread count" in out
    with pytest.raises(SystemExit):
        same_bits.main(["--nets", "resnet50"])
    assert "not a training net" in capsys.readouterr().err
