"""netcli time --gpu and predict on the GPU path (the CUDA simulator here): launches per layer,
the fused bias+ReLU, and the same classes and probabilities as the CPU."""
import json

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

import netcli
from netcli.cli import cli

G = {"type": "gaussian", "std": 0.3}
LAYERS = [
    {"name": "conv", "type": "Convolution", "bottom": "data", "top": "conv",
     "convolution_param": {"num_output": 3, "kernel_size": 3, "weight_filler": G, "bias_filler": G}},
    {"name": "relu1", "type": "ReLU", "bottom": "conv", "top": "conv"},
    {"name": "pool", "type": "Pooling", "bottom": "conv", "top": "pool",
     "pooling_param": {"pool": "MAX", "kernel_size": 2, "stride": 2}},
    {"name": "ip", "type": "InnerProduct", "bottom": "pool", "top": "ip",
     "inner_product_param": {"num_output": 3, "weight_filler": G, "bias_filler": G}},
]


def _write(tmp_path, name, layers):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"name": "small", "layers": layers}))
    return str(path)


def test_time_on_the_gpu_counts_launches_per_layer(tmp_path):
    net = _write(tmp_path, "train.yaml", [
        {"name": "in", "type": "Input", "top": ["data", "label"],
         "input_param": {"shape": [{"dim": [2, 1, 6, 6]}, {"dim": [2]}]}}] + LAYERS + [
        {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["ip", "label"], "top": "loss"}])
    r = CliRunner().invoke(cli, ["time", "--model", net, "--iterations", "2", "--gpu", "0", "--json"], obj={})
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    layers = {l["name"]: l for l in out["layers"]}
    assert layers["conv"]["forward_launches"] == 3            # im2col, GEMM, layout + bias + ReLU
    assert layers["relu1"]["forward_launches"] == 0           # fused into conv
    assert layers["conv"]["backward_launches"] == 3           # no gradient for the data: layout, bias, dW
    assert layers["ip"]["forward_launches"] == 2              # GEMM, bias
    assert layers["in"]["forward_copies"] == 2                # the inputs: one copy per top
    assert out["launches_per_iteration"] == sum(l["forward_launches"] + l["backward_launches"]
                                                for l in out["layers"]) + 2   # + clearing, + the update
    from netcli.gpu.device import simulated
    assert ("simulator" if simulated() else "CUDA events") in out["timing"] and out["copies_per_iteration"] >= 3
    r = CliRunner().invoke(cli, ["time", "--model", net, "--iterations", "1", "--gpu", "0"], obj={})
    assert "Kernel launches per training iteration: 1" in r.output and "fused: relu1 into conv" in r.output


@pytest.mark.parametrize("data_layer", [False, True])
def test_classifier_on_the_gpu_gives_the_cpus_probabilities(tmp_path, data_layer):
    """A deploy net (Input) and a train/test net (forward from after its data layer)."""
    if data_layer:
        np.savez(tmp_path / "d.npz", data=np.zeros((4, 1, 6, 6), np.uint8), label=np.zeros(4, np.int64))
        first = {"name": "data", "type": "Data", "top": ["data", "label"], "transform_param": {"scale": 0.01},
                 "data_param": {"source": str(tmp_path / "d.npz"), "batch_size": 2}}
    else:
        first = {"name": "in", "type": "Input", "top": "data", "input_param": {"shape": {"dim": [2, 1, 6, 6]}}}
    net = _write(tmp_path, "net.yaml", [first] + LAYERS + [{"name": "prob", "type": "Softmax", "bottom": "ip",
                                                               "top": "prob"}])
    netcli.Net(net, phase="TEST", seed=3).save(tmp_path / "w.weights.npz")
    raw = np.random.default_rng(0).integers(0, 255, (3, 1, 6, 6)).astype(np.float32)
    cpu = netcli.Classifier(net, str(tmp_path / "w.weights.npz"), scale=0.01).predict(raw=raw)
    gpu = netcli.Classifier(net, str(tmp_path / "w.weights.npz"), scale=0.01, gpu=0)
    assert type(gpu.net.executor).__name__ == "CudaExecutor"
    np.testing.assert_allclose(gpu.predict(raw=raw), cpu, rtol=1e-5, atol=1e-7)
    assert cpu.std() > 0
