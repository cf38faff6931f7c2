"""Weights holding a layer the net lacks (MTCNN's det2 in a det1 caffemodel) load everywhere with
one "Ignoring source layer X" line, as Caffe's CopyTrainedLayersFrom: Net(weights=), netcli test,
predict, export, convert and train; a param of a layer the net has stays an error."""
import os

import numpy as np
import pytest
from click.testing import CliRunner

import netcli
from netcli.caffe import wire
from netcli.caffe.caffemodel import LAYER, NET_LAYER, blob_bytes, caffemodel_bytes
from netcli.cli import cli
from netcli.errors import NetcliError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "configs/lenet_deploy.yaml")
TRAIN_TEST = os.path.join(ROOT, "configs/lenet_train_test.yaml")


def _extra_layer():
    body = (wire.put_string(LAYER["name"], "det2") + wire.put_string(LAYER["type"], "Convolution") +
            wire.put_bytes(LAYER["blobs"], blob_bytes(np.ones((2, 1, 3, 3), np.float32))))
    return wire.put_bytes(NET_LAYER, body)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("extra")
    net = netcli.Net(DEPLOY, seed=4)
    (d / "w.caffemodel").write_bytes(caffemodel_bytes(net) + _extra_layer())
    arrays = {k: b.data for k, b in zip(net.param_owner_keys, net.learnable_params)}
    np.savez(d / "w.npz", **arrays, **{"det2/0": np.ones(3, np.float32)})
    return d, net


def _ignoring(err):
    lines = [l for l in err.splitlines() if "Ignoring source layer" in l]
    assert len(lines) == 1 and "Ignoring source layer det2" in lines[0], err
    return lines


@pytest.mark.parametrize("name", ["w.caffemodel", "w.npz"])
def test_net_weights_with_an_extra_layer(files, name, capsys):
    d, ref = files
    net = netcli.Net(DEPLOY, weights=str(d / name))
    assert np.array_equal(net.param_data, ref.param_data)
    _ignoring(capsys.readouterr().err)


def test_a_param_of_a_layer_the_net_has_stays_an_error(files, tmp_path):
    d, ref = files
    arrays = {k: b.data for k, b in zip(ref.param_owner_keys, ref.learnable_params)}
    np.savez(tmp_path / "w.npz", **arrays, **{"ip2/2": np.ones(3, np.float32)})
    with pytest.raises(NetcliError, match="ip2/2: in the file but not in the net"):
        netcli.Net(DEPLOY, weights=str(tmp_path / "w.npz"))


def test_cli_commands_ignore_the_extra_layer(files, tmp_path, monkeypatch):
    d, ref = files
    monkeypatch.chdir(tmp_path)
    w = str(d / "w.caffemodel")
    np.savez(tmp_path / "x.npz", data=np.zeros((2, 1, 28, 28), np.uint8))
    runs = {
        "test": ["test", "--model", TRAIN_TEST, "--weights", w, "--iterations", "1"],
        "predict": ["predict", "--model", DEPLOY, "--weights", w, str(tmp_path / "x.npz"), "--scale", "0.00390625"],
        "convert": ["convert", w, "-o", str(tmp_path / "out.weights.npz"), "--model", DEPLOY],
    }
    for what, args in runs.items():
        r = CliRunner().invoke(cli, args, obj={})
        assert r.exit_code == 0, (what, r.output)
        _ignoring(r.stderr)
        assert "Ignoring" not in r.stdout
    out = dict(np.load(tmp_path / "out.weights.npz"))
    assert "det2/0" not in out and np.array_equal(out["conv1/0"], ref.params["conv1"][0].data)


def test_export_ignores_the_extra_layer(files, tmp_path):
    pytest.importorskip("onnx")
    d, _ = files
    r = CliRunner().invoke(cli, ["export", "--onnx", str(tmp_path / "m.onnx"), "--model", DEPLOY,
                                 "--weights", str(d / "w.caffemodel")], obj={})
    assert r.exit_code == 0, r.output
    _ignoring(r.stderr)


def test_train_ignores_the_extra_layer_with_the_same_line(files, tmp_path, monkeypatch):
    d, _ = files
    monkeypatch.chdir(tmp_path)
    (tmp_path / "solver.yaml").write_text(f"net: {TRAIN_TEST}\nbase_lr: 0.01\nmax_iter: 1\n"
                                          f"snapshot_after_train: false\nrandom_seed: 1\n")
    r = CliRunner().invoke(cli, ["train", "--solver", "solver.yaml", "--weights", str(d / "w.caffemodel")], obj={})
    assert r.exit_code == 0, r.output
    _ignoring(r.stderr)
    assert "Ignoring source param det2" not in r.output
