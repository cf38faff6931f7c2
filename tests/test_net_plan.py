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


SPLIT_NET = """
name: branches
layers:
  - {name: in, type: Input, top: [data, label], input_param: {shape: [{dim: [40, 3, 10, 10]}, {dim: [40]}]}}
  - {name: c1, type: Convolution, bottom: data, top: c1, convolution_param: {num_output: 6, kernel_size: 3, weight_filler: {type: xavier}}}
  - {name: sp, type: Split, bottom: c1, top: [s0, s1, s2]}
  - {name: a, type: Convolution, bottom: s0, top: a, convolution_param: {num_output: 4, kernel_size: 1, weight_filler: {type: xavier}}}
  - {name: b, type: Pooling, bottom: s1, top: b, pooling_param: {pool: MAX, kernel_size: 1}}
  - {name: r, type: ReLU, bottom: s2, top: s2}
  - {name: ip_a, type: InnerProduct, bottom: a, top: ip_a, inner_product_param: {num_output: 5, weight_filler: {type: xavier}}}
  - {name: ip_b, type: InnerProduct, bottom: b, top: ip_b, inner_product_param: {num_output: 5, weight_filler: {type: xavier}}}
  - {name: ip_c, type: InnerProduct, bottom: s2, top: ip_c, inner_product_param: {num_output: 5, weight_filler: {type: xavier}}}
  - {name: sum, type: Eltwise, bottom: [ip_a, ip_b, ip_c], top: sum}
  - {name: loss, type: SoftmaxWithLoss, bottom: [sum, label], top: loss}
"""


def _run_split_net(tmp_path):
    import numpy as np
    (tmp_path / "net.yaml").write_text(SPLIT_NET)
    net = netcli.Net(str(tmp_path / "net.yaml"), phase="TRAIN", seed=3)
    rng = np.random.default_rng(4)
    net.blobs["data"].data[...] = rng.standard_normal((40, 3, 10, 10))
    net.blobs["label"].data[...] = rng.integers(0, 5, 40)
    net.clear_param_diffs()
    loss = net.forward_backward(cleared=True)
    return net, (loss, net.param_diff.copy(), net.blobs["data"].diff.copy(), net.blobs["ip_c"].data.copy())


def test_split_tops_read_their_bottom_unless_written_in_place(tmp_path, monkeypatch):
    import numpy as np
    net, got = _run_split_net(tmp_path)
    split = next(i for i, layer in enumerate(net.layers) if layer.type == "Split")
    c1, tops = net.bottom_vecs[split][0], net.top_vecs[split]
    relu_top = net.top_vecs[net.layer_names.index("r")][0]
    shared = [t for t in tops if t.data is c1.data]
    assert len(tops) == 3 and len(shared) == 2 and relu_top in tops and relu_top not in shared
    assert all(not np.shares_memory(t.diff, c1.diff) for t in tops)
    monkeypatch.setattr(netcli.net, "alias_split_tops", lambda net: None)      # every top a copy, as before
    _, copies = _run_split_net(tmp_path)
    assert got[0] == copies[0] and all(np.array_equal(a, b) for a, b in zip(got[1:], copies[1:]))
    assert (relu_top.data >= 0).all() and (c1.data < 0).any()      # the in-place ReLU left the others' input alone
