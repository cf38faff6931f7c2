"""pycaffe's solvers and Python data layers against `import netcli.caffe as caffe` (issue 27, items
1 and 4); expected values from Caffe's formulas (SGD with momentum and coupled weight decay,
softmax loss gradients), in NumPy."""

import numpy as np
import pytest

import netcli.caffe as caffe
from netcli.caffe import layers as L

NET = """name: "s"
layer { name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param { shape { dim: 4 dim: 3 dim: 2 dim: 2 } shape { dim: 4 }
    data_filler { type: "gaussian" std: 1 } data_filler { type: "constant" value: 1 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
  convolution_param { num_output: 2 kernel_size: 2 weight_filler { type: "gaussian" std: 0.5 }
                      bias_filler { type: "constant" value: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "conv1" bottom: "label" top: "loss" }
"""
SOLVER = """net: "net.prototxt"
base_lr: 0.1
momentum: 0.9
weight_decay: 0.01
lr_policy: "fixed"
max_iter: 10
test_iter: 1
test_interval: 1000
test_initialization: false
display: 0
snapshot_prefix: "snap"
random_seed: 3
type: "Adam"
"""


def _grads(x, w, b):
    """SoftmaxWithLoss over conv1 (a 2x2 kernel on 2x2 inputs: an inner product), label 1:
    dL/dz = (softmax(z) - onehot) / N; returns (dW, db)."""
    x = x.reshape(len(x), -1)
    z = x @ w.reshape(2, -1).T + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[:, 1] -= 1
    p /= len(x)
    return (p.T @ x).reshape(w.shape), p.sum(axis=0)


@pytest.fixture
def solver_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.prototxt").write_text(NET)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    return str(tmp_path / "solver.prototxt")


def test_sgd_solver_step_is_caffes_update(solver_path):
    solver = caffe.SGDSolver(solver_path)       # the class decides the rule, not the file's Adam
    assert type(solver.native.rule).__name__ == "SGD"
    w0 = solver.net.params["conv1"][0].data.copy()
    b0 = solver.net.params["conv1"][1].data.copy()
    solver.step(1)
    assert solver.iter == 1
    x = solver.net.blobs["data"].data.copy()
    gw, gb = _grads(x, w0, b0)
    # Caffe's SGD, first step (history 0): v = lr * lr_mult * (g + decay * decay_mult * w); w -= v
    vw, vb = 0.1 * (gw + 0.01 * w0), 0.2 * gb
    np.testing.assert_allclose(solver.net.params["conv1"][0].data, w0 - vw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(solver.net.params["conv1"][1].data, b0 - vb, rtol=1e-5, atol=1e-6)
    # after a step the diffs hold the update Caffe subtracted
    np.testing.assert_allclose(solver.net.params["conv1"][0].diff, vw, rtol=1e-4, atol=1e-6)
    # the tutorial's next lines: forward the train and test nets (sharing the weights)
    loss = solver.net.forward()["loss"]
    test = solver.test_nets[0].forward()
    assert np.isfinite(loss) and set(test) == {"loss"}
    assert not solver.native.test_nets[0].inference       # pycaffe's test nets may still run a backward
    np.testing.assert_array_equal(solver.test_nets[0].params["conv1"][0].data, solver.net.params["conv1"][0].data)
    solver.net.clear_param_diffs()
    solver.net.backward()
    gw, _ = _grads(solver.net.blobs["data"].data, solver.net.params["conv1"][0].data,
                   solver.net.params["conv1"][1].data)
    np.testing.assert_allclose(solver.net.params["conv1"][0].diff, gw, rtol=1e-4, atol=1e-6)
    solver.iter = 7
    assert solver.native.iter == 7


def test_get_solver_takes_the_type_and_callbacks_fire_once_per_iteration(solver_path):
    solver = caffe.get_solver(solver_path)
    assert isinstance(solver, caffe.AdamSolver) and type(solver.native.rule).__name__ == "Adam"
    assert type(caffe.NesterovSolver(solver_path).native.rule).__name__ == "Nesterov"
    events = []
    solver.add_callback(lambda: events.append("start"), lambda: events.append("gradients"))
    solver.step(2)
    assert events == ["start", "gradients"] * 2


def test_apply_update_is_one_update_without_advancing(solver_path):
    solver = caffe.SGDSolver(solver_path)
    net = solver.net
    net.forward()
    net.clear_param_diffs()
    net.backward()
    w0, g = net.params["conv1"][0].data.copy(), net.params["conv1"][0].diff.copy()
    solver.apply_update()
    np.testing.assert_allclose(net.params["conv1"][0].data, w0 - 0.1 * (g + 0.01 * w0), rtol=1e-5, atol=1e-6)
    assert solver.iter == 0


LAYER = '''
import ast
import caffe
import numpy as np


class MultilabelDataLayer(caffe.Layer):
    """As Caffe's pascal_multilabel_datalayers.py: param_str parsed by the layer, tops shaped in reshape."""

    def setup(self, bottom, top):
        params = ast.literal_eval(self.param_str)
        self.batch_size, self.n = params["batch_size"], 0
        assert self.phase in (caffe.TRAIN, caffe.TEST)

    def reshape(self, bottom, top):
        top[0].reshape(self.batch_size, 3)
        top[1].reshape(self.batch_size, 2)

    def forward(self, bottom, top):
        for i in range(self.batch_size):
            k = self.n + i
            top[0].data[i, ...] = [k, -k / 2.0, 1.0]
            top[1].data[i, ...] = [k % 2, (k + 1) % 2]
        self.n += self.batch_size

    def backward(self, top, propagate_down, bottom):
        pass
'''


def test_python_data_layer_written_with_netspec(tmp_path, monkeypatch):
    """The multilabel tutorial's flow: a Python data layer beside the net, the net written with
    NetSpec, trained by caffe.SGDSolver; no opt-in beyond the script importing netcli.caffe."""
    monkeypatch.delenv("NETCLI_ALLOW_PYTHON", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "multilabel_layer.py").write_text(LAYER)
    n = caffe.NetSpec()
    n.data, n.label = L.Python(module="multilabel_layer", layer="MultilabelDataLayer", ntop=2,
                               param_str=str(dict(batch_size=4)))
    n.score = L.InnerProduct(n.data, num_output=2, weight_filler=dict(type="gaussian", std=0.1))
    n.loss = L.SigmoidCrossEntropyLoss(n.score, n.label)
    (tmp_path / "trainnet.prototxt").write_text(str(n.to_proto()))
    (tmp_path / "solver.prototxt").write_text(
        'train_net: "trainnet.prototxt"\nbase_lr: 0.01\nlr_policy: "fixed"\nmax_iter: 5\ndisplay: 0\n'
        'snapshot_prefix: "snap"\n')
    solver = caffe.SGDSolver(str(tmp_path / "solver.prototxt"))
    w = solver.net.params["score"][0].data.copy()
    b = solver.net.params["score"][1].data.copy()
    solver.step(1)
    k = np.arange(4)
    x = np.stack([k, -k / 2.0, np.ones(4)], axis=1)
    y = np.stack([k % 2, (k + 1) % 2], axis=1)
    np.testing.assert_array_equal(solver.net.blobs["data"].data, x)
    np.testing.assert_array_equal(solver.net.blobs["label"].data, y)
    z = x @ w.T + b
    loss = np.sum(np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))) / 4      # Caffe's: / batch
    solver.net.forward()                   # the next batch: k = 4..7
    k = np.arange(4, 8)
    np.testing.assert_array_equal(solver.net.blobs["data"].data[:, 0], k)
    assert np.isclose(float(solver.native.losses[0]), loss, rtol=1e-5)
