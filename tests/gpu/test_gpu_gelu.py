"""GELU's own CUDA op (netcli/layers/gelu.py) under the executor: the device forward and gradients
equal the CPU's, in place and not, for both forms; the GPU executor runs it on the device (not on
the host) because the layer has a device op, and it costs one launch each way."""
import numpy as np
import pytest

import netcli

G = {"type": "gaussian", "std": 0.5}


def _net(approximate, in_place):
    return {"name": "g", "layers": [
        {"name": "in", "type": "Input", "top": ["data", "label"],
         "input_param": {"shape": [{"dim": [3, 5]}, {"dim": [3]}]}},
        {"name": "ip", "type": "InnerProduct", "bottom": "data", "top": "ip",
         "inner_product_param": {"num_output": 6, "weight_filler": G, "bias_filler": G}},
        {"name": "gelu", "type": "GELU", "bottom": "ip", "top": "ip" if in_place else "g",
         "gelu_param": {"approximate": approximate}},
        {"name": "ip2", "type": "InnerProduct", "bottom": "ip" if in_place else "g", "top": "s",
         "inner_product_param": {"num_output": 4, "weight_filler": G}},
        {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["s", "label"], "top": "loss"},
    ]}


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("in_place", [False, True])
def test_gelu_on_the_device_matches_the_cpu(approximate, in_place):
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((3, 5)).astype(np.float32) * 2, np.array([0, 3, 1], np.float32)
    cpu = netcli.Net(_net(approximate, in_place), phase="TRAIN", seed=1)
    gpu = netcli.Net(_net(approximate, in_place), phase="TRAIN", seed=1, device="cuda:0")
    assert not gpu.executor.on_host[2] and "every layer on the device" in gpu.executor.plan()[0]
    for n in (cpu, gpu):
        n.blobs["data"].data[...], n.blobs["label"].data[...] = x, y
        n.clear_param_diffs()
        n.forward_backward(cleared=True)
        n.executor.pull_grads()
    assert gpu.loss == pytest.approx(cpu.loss, rel=1e-5)
    np.testing.assert_allclose(gpu.param_diff, cpu.param_diff, rtol=1e-4, atol=1e-6)
    assert np.abs(cpu.param_diff).sum() > 0
    ex = gpu.executor
    assert ex.time_layer(2, True)[1] == 1 and ex.time_layer(2, False)[1] == 1     # launches
