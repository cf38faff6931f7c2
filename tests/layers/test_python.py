"""The Python layer: pycaffe-style user layers, imported by module and class name."""
import textwrap

import numpy as np
import pytest

import netcli
from helpers import PY_EUCLIDEAN_LOSS, check_gradient, make_layer

# Our own layers in pycaffe's interface (written for these tests), besides DistanceLoss (helpers.py).
USER_MODULE = PY_EUCLIDEAN_LOSS.format(name="DistanceLoss") + '''
import json


class LearnedScale(caffe.Layer):
    """y = s * x with one learned scalar s, initialised from param_str."""

    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[0] = json.loads(self.param_str)["init"]

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data[0] * bottom[0].data

    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] += np.sum(top[0].diff * bottom[0].data)
        if propagate_down[0]:
            bottom[0].diff[...] = self.blobs[0].data[0] * top[0].diff


class NoTop(caffe.Layer):
    pass


class Broken(caffe.Layer):
    def forward(self, bottom, top):
        raise ValueError("no luck")

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "userlayers.py").write_text(USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("NETCLI_ALLOW_PYTHON", "1")      # make_layer's nets: the opt-in (test_python_trust.py)
    return tmp_path


def test_python_loss_equals_euclidean_loss_and_gradient(user_module):
    py, pb, pt = make_layer("Python", {"python_param": {"module": "userlayers", "layer": "DistanceLoss"}},
                            [(4, 3), (4, 3)])
    py.forward(pb, pt)
    ref = 0.5 / 4 * np.sum((pb[0].data - pb[1].data) ** 2)
    assert pt[0].data[0] == pytest.approx(ref, rel=1e-12)
    assert check_gradient(py, pb, pt) > 0


def test_python_layer_params_initial_values_and_gradient(user_module, tmp_path):
    net_file = tmp_path / "net.yaml"
    net_file.write_text(textwrap.dedent("""\
        layers:
          - {name: in, type: Input, top: [x, y], input_param: {shape: [{dim: [4, 3]}, {dim: [4, 3]}]}}
          - {name: s, type: Python, bottom: x, top: sx,
             python_param: {module: userlayers, layer: LearnedScale, param_str: '{"init": 2.5}'}}
          - {name: loss, type: Python, bottom: [sx, y], top: loss, loss_weight: 1,
             python_param: {module: userlayers, layer: DistanceLoss}}
        """))
    net = netcli.Net(str(net_file), allow_python=True)
    assert net.params["s"][0].data.tolist() == [2.5]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    net.forward(x=x, y=y)
    assert net.loss == pytest.approx(0.5 / 4 * np.sum((2.5 * x - y) ** 2), rel=1e-5)
    net.clear_param_diffs()
    net.backward()
    assert net.params["s"][0].diff[0] == pytest.approx(np.sum((2.5 * x - y) * x) / 4, rel=1e-4)


def test_python_layer_errors_are_one_line(user_module, tmp_path):
    def build(module, cls):
        f = tmp_path / "n.yaml"
        f.write_text(textwrap.dedent(f"""\
            layers:
              - {{name: in, type: Input, top: x, input_param: {{shape: {{dim: [2, 3]}}}}}}
              - {{name: p, type: Python, bottom: x, top: y, python_param: {{module: {module}, layer: {cls}}}}}
            """))
        return netcli.Net(str(f))

    with pytest.raises(netcli.NetcliError, match="n.yaml:3: layer 'p' .*cannot import module 'nosuch'"):
        build("nosuch", "X")
    with pytest.raises(netcli.NetcliError, match="has no class 'Nope'"):
        build("userlayers", "Nope")
    with pytest.raises(netcli.NetcliError, match="DistanceLoss.setup raised Exception: Need two inputs"):
        build("userlayers", "DistanceLoss")
    with pytest.raises(netcli.NetcliError, match="NoTop.reshape did not reshape top 'y'"):
        build("userlayers", "NoTop")
    net = build("userlayers", "Broken")
    with pytest.raises(netcli.NetcliError, match=r"layer 'p' \(Python\): userlayers.Broken.forward raised "
                                                  "ValueError: no luck"):
        net.forward()
