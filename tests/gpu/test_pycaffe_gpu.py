"""caffe.set_mode_gpu(): pycaffe reads any blob after a pass and sets output diffs on the host;
the CUDA executor's blobs_to_host / diffs_to_device keep the host's view current (simulator)."""
import numpy as np
import pytest

import netcli.caffe as caffe

CHAIN = """name: "chain"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 }
                              bias_filler { type: "gaussian" std: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "h" }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "out"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }
"""


@pytest.fixture
def gpu_mode(monkeypatch):
    monkeypatch.setattr(caffe, "_mode", dict(caffe._mode))
    caffe.set_mode_gpu()
    caffe.set_device(0)


def test_blobs_and_diffs_on_the_device(tmp_path, gpu_mode):
    (tmp_path / "chain.prototxt").write_text(CHAIN)
    net = caffe.Net(str(tmp_path / "chain.prototxt"), caffe.TEST)
    assert net.native.device == "cuda:0"
    x = np.random.default_rng(0).normal(size=(2, 3)).astype(np.float32)
    out = net.forward(data=x, blobs=["h"])
    w1, b1 = net.params["ip1"][0].data.copy(), net.params["ip1"][1].data.copy()
    w2, b2 = net.params["ip2"][0].data.copy(), net.params["ip2"][1].data.copy()
    z = x @ w1.T + b1
    np.testing.assert_allclose(out["out"], np.maximum(z, 0) @ w2.T + b2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["h"], np.maximum(z, 0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net.blobs["ip1"].data, z, rtol=1e-5, atol=1e-5)     # not an output
    g = np.random.default_rng(1).normal(size=(2, 2)).astype(np.float32)
    dz = (g @ w2) * (z > 0)
    diffs = net.backward(out=g, diffs=["h"])
    np.testing.assert_allclose(diffs["data"], dz @ w1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(diffs["h"], g @ w2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net.params["ip1"][0].diff, dz.T @ x, rtol=1e-5, atol=1e-5)
    net.blobs["out"].diff[...] = 2 * g                   # set on the host, then backward
    net.clear_param_diffs()
    np.testing.assert_allclose(net.backward()["data"], 2 * dz @ w1, rtol=1e-5, atol=1e-5)
    net.params["ip2"][1].data[...] += 1                  # a host write reaches the device
    np.testing.assert_allclose(net.forward(data=x)["out"], np.maximum(z, 0) @ w2.T + b2 + 1, rtol=1e-5, atol=1e-5)
