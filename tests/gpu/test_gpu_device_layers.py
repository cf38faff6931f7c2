"""Layer configurations that ran on the host before their ops had device versions with the CPU's
signatures, now on the device (the CUDA simulator here): the plan names no host layer, and the
loss, gradients and masks are the CPU's."""
import numpy as np
import pytest

import netcli

G = {"type": "gaussian", "std": 0.3}


def _net(layers, data=(2, 4, 7, 6), label=(2,), **kw):
    return dict({"name": "dev", "force_backward": True, "layers": [
        {"name": "in", "type": "Input", "top": ["data", "label"],
         "input_param": {"shape": [{"dim": list(data)}, {"dim": list(label)}]}}] + layers}, **kw)


def _run(net, label, passes=1, on_host=()):
    """The net on the CPU and on the device after `passes` forward-backwards on the same inputs;
    on_host: the layers that may run on the host (those without a device op)."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(net["layers"][0]["input_param"]["shape"][0]["dim"]).astype(np.float32)
    cpu = netcli.Net(net, phase="TRAIN", seed=1)
    gpu = netcli.Net(net, phase="TRAIN", seed=1, device="cuda:0")
    for n in (cpu, gpu):
        for _ in range(passes):
            n.blobs["data"].data[...], n.blobs["label"].data[...] = x, label
            n.clear_param_diffs()
            n.forward_backward(cleared=True)
        n.executor.pull_grads()
    gpu.executor.blobs["data"][1].copy_to_host(gpu.blobs["data"].diff)
    host = [name for name, h in zip(gpu.layer_names, gpu.executor.on_host) if h]
    assert set(host) <= set(on_host), gpu.executor.plan()
    assert gpu.loss == pytest.approx(cpu.loss, rel=1e-5)
    np.testing.assert_allclose(gpu.param_diff, cpu.param_diff, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gpu.blobs["data"].diff, cpu.blobs["data"].diff, rtol=1e-4, atol=1e-5)
    assert np.abs(cpu.param_diff).sum() > 0
    return cpu, gpu


def test_convolution_with_groups_dilation_and_two_bottoms():
    layers = [{"name": "split", "type": "Split", "bottom": "data", "top": ["a", "b"]},
              {"name": "conv", "type": "Convolution", "bottom": ["a", "b"], "top": ["c1", "c2"],
               "convolution_param": {"num_output": 6, "kernel_size": [3, 2], "stride": [1, 2], "pad": 1,
                                     "dilation": 2, "group": 2, "weight_filler": G, "bias_filler": G}},
              {"name": "sum", "type": "Eltwise", "bottom": ["c1", "c2"], "top": "s"},
              {"name": "ip", "type": "InnerProduct", "bottom": "s", "top": "ip",
               "inner_product_param": {"num_output": 3, "weight_filler": G, "bias_filler": G}},
              {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["ip", "label"], "top": "loss"}]
    _run(_net(layers), np.array([0, 2], np.float32), on_host=("split", "sum"))


def test_inner_product_with_transpose_and_axis_2():
    layers = [{"name": "ip", "type": "InnerProduct", "bottom": "data", "top": "ip",
               "inner_product_param": {"num_output": 5, "axis": 2, "transpose": True, "weight_filler": G,
                                       "bias_filler": G}},
              {"name": "relu", "type": "ReLU", "bottom": "ip", "top": "ip"},
              {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["ip", "label"], "top": "loss",
               "softmax_param": {"axis": 2}}]
    _run(_net(layers, data=(2, 3, 4), label=(2, 3)), np.array([[0, 4, 1], [3, 3, 2]], np.float32))


@pytest.mark.parametrize("mode", ["VALID", "FULL", "BATCH_SIZE"])
def test_softmax_loss_with_ignore_label_and_positions(mode):
    """Scores (N, C, H, W) against labels (N, H, W), some of them the ignored 255."""
    layers = [{"name": "conv", "type": "Convolution", "bottom": "data", "top": "conv",
               "convolution_param": {"num_output": 3, "kernel_size": 3, "pad": 1, "weight_filler": G,
                                     "bias_filler": G}},
              {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["conv", "label"], "top": "loss",
               "loss_param": {"ignore_label": 255, "normalization": mode}}]
    label = np.random.default_rng(2).integers(0, 3, (2, 7, 6)).astype(np.float32)
    label[0, :3] = label[1, 5] = 255
    cpu, gpu = _run(_net(layers, label=(2, 7, 6)), label)
    assert gpu.layers[-1].n == cpu.layers[-1].n


def test_a_label_that_is_not_a_class_is_one_line_on_the_device():
    from netcli.errors import NetcliError
    layers = [{"name": "ip", "type": "InnerProduct", "bottom": "data", "top": "ip",
               "inner_product_param": {"num_output": 3, "weight_filler": G}},
              {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["ip", "label"], "top": "loss"}]
    gpu = netcli.Net(_net(layers), phase="TRAIN", seed=1, device="cuda:0")
    gpu.blobs["data"].data[...], gpu.blobs["label"].data[...] = 1.0, np.array([1, 3], np.float32)
    with pytest.raises(NetcliError, match=r"label 3 in row 1 .* is outside \[0, 3\)"):
        gpu.forward_backward()


def test_dropout_in_train_on_the_device_draws_the_cpus_masks():
    layers = [{"name": "ip", "type": "InnerProduct", "bottom": "data", "top": "ip",
               "inner_product_param": {"num_output": 9, "weight_filler": G, "bias_filler": G}},
              {"name": "drop", "type": "Dropout", "bottom": "ip", "top": "ip", "dropout_param": {"dropout_ratio": 0.4}},
              {"name": "ip2", "type": "InnerProduct", "bottom": "ip", "top": "ip2",
               "inner_product_param": {"num_output": 3, "weight_filler": G}},
              {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["ip2", "label"], "top": "loss"}]
    cpu, gpu = _run(_net(layers), np.array([0, 2], np.float32), passes=2)
    i = gpu.layer_names.index("drop")
    keep = gpu.executor.workspaces[i]["keep"].copy_to_host()
    np.testing.assert_array_equal(keep, cpu.layers[i].keep)
    assert 0 < keep.sum() < keep.size
    assert gpu.layers[i].passes == cpu.layers[i].passes == 2
