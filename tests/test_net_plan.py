"""The backward plan (netcli/net_plan.py) by Caffe's Net::Init rules."""
import numpy as np

import netcli

DEPLOY = """name: "saliency"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


def test_force_backward_runs_every_layer_of_a_net_without_loss(tmp_path):
    """Caffe: force_backward makes every layer need backward and every bottom take a gradient,
    loss or not (a deploy net's saliency map: set the output's diff, backward, read data's diff)."""
    path = tmp_path / "deploy.prototxt"
    path.write_text(DEPLOY)
    net = netcli.Net(str(path), phase="TEST")
    assert net.need_backward == [False, True, True] and net.propagate_down[1] == [True]
    x = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    net.forward(data=x)
    p = net.blobs["prob"].data.astype(np.float64)
    g = np.array([[1.0, 0.0], [0.0, 1.0]])
    net.blobs["prob"].diff[...] = g
    net.backward()
    dz = p * (g - (g * p).sum(axis=1, keepdims=True))            # softmax's Jacobian applied to g
    w = net.params["ip"][0].data
    np.testing.assert_allclose(net.blobs["data"].diff, dz @ w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.params["ip"][0].diff, dz.T @ x, rtol=1e-5, atol=1e-6)
