"""`netcli convert`: every Caffe net and solver round-trips prototxt -> YAML -> prototxt to the same
compiled nets; a netcli YAML net written as prototxt opens in OpenCV with our caffemodel; weights
convert between .npz and .caffemodel bit-exact; Caffe's single-dash flags and --stage work."""
import os

import numpy as np
import pytest
from click.testing import CliRunner

from netcli import Net
from netcli.cli import caffe_flags, cli
from netcli.config.compile import compile_net, solver_to_dict, spec_summary
from netcli.commands.convert import convert

from caffe.test_caffe_nets import CAFFE, NETS, OWN_TEST, _solvers


def _summary(path, phase, stages=()):
    return spec_summary(compile_net(path, phase, stages=stages))


@pytest.mark.parametrize("path", sorted(set(NETS) | OWN_TEST))
def test_net_round_trip(tmp_path, path):
    src = os.path.join(CAFFE, path)
    as_yaml, back = tmp_path / "net.yaml", tmp_path / "net.prototxt"
    convert(src, as_yaml)
    convert(as_yaml, back)
    states = NETS.get(path, (None,))[0] or [("TRAIN", ()), ("TEST", ())]
    for phase, stages in states:
        want = _summary(src, phase, stages)
        assert _summary(as_yaml, phase, stages) == want
        assert _summary(back, phase, stages) == want


@pytest.mark.parametrize("path", _solvers())
def test_solver_round_trip(tmp_path, path):
    src = os.path.join(CAFFE, path)
    as_yaml, back = tmp_path / "solver.yaml", tmp_path / "solver.prototxt"
    convert(src, as_yaml)
    convert(as_yaml, back)
    assert solver_to_dict(back) == solver_to_dict(as_yaml) == solver_to_dict(src)


def test_unknown_layer_types_do_not_convert(tmp_path):
    from netcli.errors import ConfigError
    (tmp_path / "n.prototxt").write_text('layer { name: "a" type: "Fancy" top: "a" }\n')
    with pytest.raises(ConfigError, match="unknown layer type 'Fancy'"):
        convert(tmp_path / "n.prototxt", tmp_path / "net.yaml")
    assert not os.path.exists(tmp_path / "net.yaml")


def test_yaml_net_to_prototxt_opens_in_opencv(tmp_path):
    cv2 = pytest.importorskip("cv2")
    net = Net("configs/lenet_deploy.yaml", seed=4)
    convert("configs/lenet_deploy.yaml", tmp_path / "deploy.prototxt")
    net.save(tmp_path / "w.npz")
    convert(tmp_path / "w.npz", tmp_path / "w.caffemodel", model="configs/lenet_deploy.yaml")
    x = np.random.default_rng(1).random(net.blobs[net.inputs[0]].shape, dtype=np.float32)
    ours = net.forward(**{net.inputs[0]: x})[net.outputs[0]].copy()
    cv = cv2.dnn.readNetFromCaffe(str(tmp_path / "deploy.prototxt"), str(tmp_path / "w.caffemodel"))
    cv.setInput(x)
    np.testing.assert_allclose(cv.forward(), ours, atol=1e-5)
    convert(tmp_path / "w.caffemodel", tmp_path / "again.npz", model=tmp_path / "deploy.prototxt")
    back = Net(tmp_path / "deploy.prototxt", weights=str(tmp_path / "again.npz"))
    assert np.array_equal(back.param_data, net.param_data)


def test_convert_errors_are_one_line(tmp_path):
    r = CliRunner().invoke(cli, ["convert", "configs/lenet_deploy.yaml", "-o", str(tmp_path / "x.txt")], obj={})
    assert r.exit_code == 1 and "the output's extension says what to write" in r.output
    r = CliRunner().invoke(cli, ["convert", str(tmp_path / "w.npz"), "-o", str(tmp_path / "w.caffemodel")], obj={})
    assert r.exit_code == 1 and r.output.count("\n") == 1
    assert not os.path.exists(tmp_path / "w.caffemodel")


def test_caffe_single_dash_flags():
    assert caffe_flags(["train", "-solver", "s.prototxt", "-weights=w", "-h", "-o", "x", "--level", "-1"]) == \
        ["train", "--solver", "s.prototxt", "--weights=w", "-h", "-o", "x", "--level", "-1"]


def test_stage_flag_builds_the_staged_test_net():
    src = os.path.join(CAFFE, "examples/mnist/mnist_autoencoder.prototxt")
    runner = CliRunner()
    r = runner.invoke(cli, ["check", "--model", src, "--phase", "TEST"], obj={})
    assert r.exit_code == 1 and "bottom 'data' is not produced" in r.output
    with pytest.raises(Exception):
        compile_net(src, "TEST")
    names = [l.name for l in compile_net(src, "TEST", stages=("test-on-test",)).layers]
    assert names[0] == "data" and "loss" in names and "loss#2" in names
