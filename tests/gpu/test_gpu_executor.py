"""A net on the GPU path (the CUDA simulator here) computes what the CPU computes: loss,
gradients, and the weights after training steps."""
import numpy as np
import pytest

import netcli
from netcli.exec.cuda import CudaExecutor

G = {"type": "gaussian", "std": 0.3}
NET = {"name": "small", "layers": [
    {"name": "in", "type": "Input", "top": ["data", "label"],
     "input_param": {"shape": [{"dim": [2, 2, 8, 8]}, {"dim": [2]}]}},
    {"name": "conv", "type": "Convolution", "bottom": "data", "top": "conv",
     "convolution_param": {"num_output": 3, "kernel_size": 3, "pad": 1, "weight_filler": G, "bias_filler": G}},
    {"name": "pool", "type": "Pooling", "bottom": "conv", "top": "pool",
     "pooling_param": {"pool": "MAX", "kernel_size": 2, "stride": 2}},
    {"name": "relu", "type": "ReLU", "bottom": "pool", "top": "pool"},
    {"name": "ip", "type": "InnerProduct", "bottom": "pool", "top": "ip",
     "inner_product_param": {"num_output": 4, "weight_filler": G, "bias_filler": G}},
    {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["ip", "label"], "top": "loss"},
]}


def _inputs():
    rng = np.random.default_rng(5)
    return rng.standard_normal((2, 2, 8, 8)).astype(np.float32), np.array([1, 3], np.float32)


def _cpu_and_gpu(net):
    """The net built twice, the second on the GPU path, after one forward-backward on the same inputs."""
    x, y = _inputs()
    cpu = netcli.Net(net, phase="TRAIN", seed=1)
    gpu = netcli.Net(net, phase="TRAIN", seed=1, device="cuda:0")
    for n in (cpu, gpu):
        n.blobs["data"].data[...], n.blobs["label"].data[...] = x, y
        n.clear_param_diffs()
        n.forward_backward(cleared=True)
        n.executor.pull_grads()          # the GPU's gradients stay on the device until asked for
    return cpu, gpu


@pytest.mark.parametrize("chunked", [False, True])
def test_forward_and_gradients_match_the_cpu(chunked, monkeypatch):
    """chunked: the convolution's column buffer holds one image, so it runs image by image."""
    if chunked:
        from netcli.ops.cuda import conv2d
        monkeypatch.setattr(conv2d, "COLS_LIMIT", 2 * 9 * 64)
    cpu, gpu = _cpu_and_gpu(NET)
    assert gpu.executor.workspaces[1]["cols"].shape[1] == (64 if chunked else 128)
    assert gpu.loss == pytest.approx(cpu.loss, rel=1e-5)
    np.testing.assert_allclose(gpu.param_diff, cpu.param_diff, rtol=1e-4, atol=1e-6)
    assert np.abs(cpu.param_diff).sum() > 0


def test_layers_without_a_device_version_run_on_the_host():
    """LRN (not on the device yet) between the input and the convolution: forward and backward
    still equal the CPU's, and the plan names it."""
    layers = [dict(l) for l in NET["layers"]]
    layers.insert(1, {"name": "lrn", "type": "LRN", "bottom": "data", "top": "n",
                      "lrn_param": {"local_size": 3, "alpha": 0.5}})
    layers[2]["bottom"] = "n"
    cpu, gpu = _cpu_and_gpu(dict(NET, layers=layers, force_backward=True))
    assert "on the host (no device version yet): lrn (LRN)" in gpu.executor.plan()[0]
    assert gpu.loss == pytest.approx(cpu.loss, rel=1e-5)
    np.testing.assert_allclose(gpu.param_diff, cpu.param_diff, rtol=1e-4, atol=1e-6)
    gpu.executor.blobs["data"][1].copy_to_host(gpu.blobs["data"].diff)
    np.testing.assert_allclose(gpu.blobs["data"].diff, cpu.blobs["data"].diff, rtol=1e-4, atol=1e-6)


def test_a_tiny_net_trains_the_same_on_the_gpu_path(tmp_path):
    """Dropout in TRAIN runs on the device with the CPU's random masks: the same weights."""
    from tinynet import make_tiny
    solver = make_tiny(tmp_path, batch=4, max_iter=3, test_interval=0, display=1)
    cpu = netcli.Solver(solver, progress=False, log_path=False)
    gpu = netcli.Solver(solver, progress=False, log_path=False, gpu=0)
    assert isinstance(gpu.net.executor, CudaExecutor)
    cpu.step(3)
    gpu.step(3)
    np.testing.assert_allclose(gpu.net.param_data, cpu.net.param_data, rtol=1e-4, atol=1e-6)
    assert gpu.smoothed_loss() == pytest.approx(cpu.smoothed_loss(), rel=1e-4)


def test_cli_gpu_flag(tmp_path):
    from click.testing import CliRunner
    from netcli.cli import cli
    from tinynet import make_tiny
    solver = make_tiny(tmp_path, batch=4, max_iter=1, test_interval=0, display=1)
    r = CliRunner().invoke(cli, ["train", "--solver", solver, "--gpu", "0", "--quiet"], obj={})
    assert r.exit_code == 0, r.output
    assert "Training on GPU 0" in r.output
    r = CliRunner().invoke(cli, ["train", "--solver", solver, "--gpu", "5", "--quiet"], obj={})
    assert r.exit_code == 1 and "GPU 5: this machine has 1 CUDA device" in r.output


def test_netcli_test_on_the_gpu_path_scores_as_the_cpu(tmp_path):
    import json
    from click.testing import CliRunner
    from netcli.cli import cli
    from tinynet import make_tiny
    solver = make_tiny(tmp_path, batch=4, max_iter=2, test_interval=0)
    net = (tmp_path / "net.yaml").read_text().replace("batch_size: 32", "batch_size: 4")    # the simulator is slow
    (tmp_path / "net.yaml").write_text(net)
    assert CliRunner().invoke(cli, ["train", "--solver", solver, "--quiet"], obj={}).exit_code == 0
    args = ["test", "--model", str(tmp_path / "net.yaml"), "--weights", str(tmp_path / "snaps" / "tiny_iter_2.weights.npz"),
            "--iterations", "2", "--json"]
    cpu = json.loads(CliRunner().invoke(cli, args, obj={}).stdout)
    r = CliRunner().invoke(cli, args + ["--gpu", "0"], obj={})
    assert r.exit_code == 0, r.output
    gpu = json.loads(r.stdout)
    assert gpu["outputs"]["accuracy"] == cpu["outputs"]["accuracy"]
    assert gpu["outputs"]["loss"] == pytest.approx(cpu["outputs"]["loss"], rel=1e-5)


def _small(tmp_path, **kw):
    """The tiny net and solver at batch 2 (the simulator runs every CUDA thread in Python)."""
    from tinynet import make_tiny
    solver = make_tiny(tmp_path, batch=2, drop=0.0, **kw)
    net = (tmp_path / "net.yaml").read_text().replace("batch_size: 32", "batch_size: 4")
    (tmp_path / "net.yaml").write_text(net)
    return solver


def test_update_rule_clipping_and_iter_size_run_on_the_device(tmp_path):
    """Adam with iter_size 2 and gradient clipping: the params and the rule's history after two
    updates on the device equal the CPU's (the update kernels are tested one by one too)."""
    solver = _small(tmp_path, type="Adam", lr=0.01, momentum=0.9, iter_size=2, max_iter=2, test_interval=0,
                    extra="clip_gradients: 0.05\nmomentum2: 0.999\n")
    cpu = netcli.Solver(solver, progress=False, log_path=False)
    gpu = netcli.Solver(solver, progress=False, log_path=False, gpu=0)
    cpu.step(2)
    gpu.step(2)
    assert gpu.net.executor.owner == "host"          # step() pulled the params back
    np.testing.assert_allclose(gpu.net.param_data, cpu.net.param_data, rtol=1e-4, atol=1e-6)
    for h, hc in zip(gpu.rule.history, cpu.rule.history):
        np.testing.assert_allclose(h, hc, rtol=1e-4, atol=1e-8)
    assert np.abs(gpu.rule.history[1]).sum() > 0


def test_snapshots_resume_across_gpu_and_cpu(tmp_path):
    """A GPU run's snapshot resumes on the CPU and a CPU run's on the GPU, equal to float
    rounding (not bit-exact: the device sums in another order) to a CPU run straight through;
    the periodic test runs on the device with the train net's device params."""
    solver = _small(tmp_path, max_iter=3, snapshot=2, test_interval=2, display=0,
                    extra="test_iter: [1]\n")
    straight = netcli.Solver(solver, progress=False, log_path=False)
    straight.step(3)
    snap = str(tmp_path / "snaps" / "tiny_iter_2.solverstate.npz")
    for first, then in ((0, None), (None, 0)):
        a = netcli.Solver(solver, progress=False, log_path=False, gpu=first)
        a.step(2)
        if first == 0:
            assert a.last_test["accuracy"] == straight_test(solver)
        b = netcli.Solver(solver, progress=False, log_path=False, gpu=then)
        b.restore(snap)
        b.step(1)
        np.testing.assert_allclose(b.net.param_data, straight.net.param_data, rtol=1e-4, atol=1e-6)


def straight_test(solver):
    cpu = netcli.Solver(solver, progress=False, log_path=False)
    cpu.step(2)
    return cpu.last_test["accuracy"]


def test_average_pooling_tanh_sigmoid_and_softmax_on_the_device():
    """The other device layers in one net (a Softmax into a Euclidean loss on the host): the
    loss and every gradient as the CPU's, and nothing but the loss on the host."""
    layers = [NET["layers"][0], NET["layers"][1],
              {"name": "pool", "type": "Pooling", "bottom": "conv", "top": "pool",
               "pooling_param": {"pool": "AVE", "kernel_size": 3, "stride": 2, "pad": 1}},
              {"name": "tanh", "type": "TanH", "bottom": "pool", "top": "pool"},
              {"name": "ip", "type": "InnerProduct", "bottom": "pool", "top": "ip",
               "inner_product_param": {"num_output": 4, "weight_filler": G, "bias_filler": G}},
              {"name": "sig", "type": "Sigmoid", "bottom": "ip", "top": "s"},
              {"name": "prob", "type": "Softmax", "bottom": "s", "top": "prob"},
              {"name": "target", "type": "DummyData", "top": "t",
               "dummy_data_param": {"shape": {"dim": [2, 4]}, "data_filler": {"type": "uniform"}}},
              {"name": "loss", "type": "EuclideanLoss", "bottom": ["prob", "t"], "top": "loss"}]
    cpu, gpu = _cpu_and_gpu(dict(NET, layers=layers))
    assert "on the host (no device version yet): loss (EuclideanLoss)" in gpu.executor.plan()[0]
    assert gpu.loss == pytest.approx(cpu.loss, rel=1e-5)
    np.testing.assert_allclose(gpu.param_diff, cpu.param_diff, rtol=1e-4, atol=1e-7)
    assert np.abs(cpu.param_diff).min() > 0


def test_reshape_keeps_the_device_and_the_trained_params():
    """Net.reshape() on a CUDA net: still on the device, with the params the device last wrote."""
    gpu = netcli.Net(NET, phase="TRAIN", seed=1, device="cuda:0")
    x, y = _inputs()
    gpu.blobs["data"].data[...], gpu.blobs["label"].data[...] = x, y
    gpu.forward_backward()
    gpu.executor.params.copy_to_device(np.full(gpu.param_data.size, 0.25, np.float32))   # as an update would
    gpu.executor.owner = "device"
    gpu.blobs["data"].reshape(1, 2, 8, 8)
    gpu.blobs["label"].reshape(1)
    gpu.reshape()
    assert isinstance(gpu.executor, CudaExecutor) and gpu.device == "cuda:0"
    assert np.all(gpu.param_data == 0.25)
    cpu = netcli.Net(NET, phase="TRAIN", seed=1)
    cpu.param_data[...] = 0.25
    for n in (cpu, gpu):
        n.blobs["data"].reshape(1, 2, 8, 8)
        n.blobs["label"].reshape(1)
    cpu.reshape()
    cpu.forward(data=x[:1], label=y[:1])
    gpu.forward(data=x[:1], label=y[:1])
    assert gpu.loss == pytest.approx(cpu.loss, rel=1e-5)


@pytest.mark.parametrize("mode", ["NONE", "BATCH_SIZE", "FULL"])
def test_softmax_loss_normalization_on_the_device(mode):
    """SoftmaxWithLoss's normalization (NONE: the sum, not the mean) on the device as on the CPU."""
    layers = [dict(l) for l in NET["layers"]]
    layers[-1] = dict(layers[-1], loss_param={"normalization": mode})
    cpu, gpu = _cpu_and_gpu(dict(NET, layers=layers))
    assert gpu.loss == pytest.approx(cpu.loss, rel=1e-5)
    np.testing.assert_allclose(gpu.param_diff, cpu.param_diff, rtol=1e-4, atol=1e-6)


def test_shares_with_the_gpu_is_one_line(tmp_path):
    """--shares cuts the CPU executor's batch; with --gpu it is refused in one line (not a crash)."""
    from tinynet import make_tiny
    from netcli.errors import NetcliError
    solver = make_tiny(tmp_path, batch=4, max_iter=1, test_interval=0)
    with pytest.raises(NetcliError, match="--shares"):
        netcli.Solver(solver, progress=False, log_path=False, gpu=0, shares=2)


def test_mpi_on_the_gpu_is_one_line():
    """The CUDA executor refuses to split the batch over processes in one line (it is one process)."""
    from netcli.errors import NetcliError
    net = netcli.Net(NET, phase="TRAIN", device="cuda:0")
    with pytest.raises(NetcliError, match="MPI processes runs on the CPU"):
        net.executor.distribute(None)
    assert net.executor.steps() == 1


def test_a_dropped_gpu_net_goes_at_once():
    """Nothing the CUDA executor keeps (its per-layer passes among them) holds it in a cycle: a
    dropped net's device arrays go at once, not at the cycle collector's next pass."""
    import gc
    import weakref
    gc.collect()
    gc.disable()
    try:
        net = netcli.Net(NET, phase="TRAIN", device="cuda:0")
        net.forward_backward()
        refs = [weakref.ref(net), weakref.ref(net.executor)]
        del net
        assert [r() for r in refs] == [None, None]
    finally:
        gc.enable()
