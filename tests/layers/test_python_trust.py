"""Python layers run code from a net file: only with an explicit opt-in, and never a planted caffe.py."""

import numpy as np
import pytest
from click.testing import CliRunner

import netcli
from netcli.cli import cli

# A deploy-like net: an Input, then a Python layer from module `planted` (beside the net).
NET = """\
name: trusting
layers:
  - {name: data, type: Input, top: data, input_param: {shape: {dim: [1, 1, 4, 4]}}}
  - {name: pylayer, type: Python, bottom: data, top: out, python_param: {module: planted, layer: Copy}}
  - {name: ip, type: InnerProduct, bottom: out, top: prob, inner_product_param: {num_output: 2}}
"""

# The module writes a marker file when imported: the sign that its code ran.
MODULE = """\
import os
import caffe
open(os.path.join({folder!r}, "RAN"), "w").close()


class Copy(caffe.Layer):
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data
"""

# A caffe.py planted beside the net and in the working directory: never imported.
PLANTED_CAFFE = """\
import os
open(os.path.join({folder!r}, "CAFFE_RAN"), "w").close()
Layer = object
"""

SOLVER = "net: net.yaml\nbase_lr: 0.01\nmax_iter: 1\nsnapshot_prefix: snaps/x\n"


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """The model folder (net, solver, module, caffe.py) is also the working directory."""
    monkeypatch.delenv("NETCLI_ALLOW_PYTHON", raising=False)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.yaml").write_text(NET)
    (tmp_path / "solver.yaml").write_text(SOLVER)
    (tmp_path / "planted.py").write_text(MODULE.format(folder=str(tmp_path)))
    (tmp_path / "caffe.py").write_text(PLANTED_CAFFE.format(folder=str(tmp_path)))
    np.savez(tmp_path / "w.npz", x=np.zeros(1))
    yield tmp_path
    import sys
    for name in ("planted", "caffe"):           # a test that opted in imported them
        mod = sys.modules.get(name)
        if mod is not None and str(tmp_path) in (getattr(mod, "__file__", "") or ""):
            del sys.modules[name]


COMMANDS = {
    "check": ["check", "--model", "net.yaml"],
    "check --solver": ["check", "--solver", "solver.yaml"],
    "draw": ["draw", "net.yaml", "-o", "n.svg"],
    "time": ["time", "--model", "net.yaml", "--iterations", "1"],
    "export": ["export", "--model", "net.yaml", "--onnx", "n.onnx"],
    "test": ["test", "--model", "net.yaml", "--weights", "w.npz", "--iterations", "1"],
    "predict": ["predict", "--model", "net.yaml", "--weights", "w.npz", "w.npz"],
    "train": ["train", "--solver", "solver.yaml", "--quiet"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_refuses_python_layers_without_opt_in(planted, command):
    r = CliRunner().invoke(cli, COMMANDS[command], obj={})
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1, r.output
    assert "layer 'pylayer' (Python)" in lines[0] and "module 'planted'" in lines[0]
    assert "--allow-python-layers" in lines[0] and "NETCLI_ALLOW_PYTHON=1" in lines[0]
    assert lines[0].startswith("netcli: error: net.yaml:4: ")
    assert not (planted / "RAN").exists() and not (planted / "CAFFE_RAN").exists()


def test_the_api_refuses_without_allow_python(planted):
    with pytest.raises(netcli.NetcliError, match="module 'planted'.*allow_python=True"):
        netcli.Net("net.yaml")
    with pytest.raises(netcli.NetcliError, match="module 'planted'"):
        netcli.Net("net.yaml", allow_python=False)
    assert not (planted / "RAN").exists()


@pytest.mark.parametrize("how", ["flag", "env", "api"])
def test_opt_in_runs_the_layer_and_never_a_planted_caffe(planted, monkeypatch, how):
    if how == "api":
        net = netcli.Net("net.yaml", allow_python=True)
        net.blobs["data"].data[...] = 3.0
        net.forward()
        assert (net.blobs["out"].data == 3.0).all()
    else:
        args = ["check", "--model", "net.yaml"]
        if how == "env":
            monkeypatch.setenv("NETCLI_ALLOW_PYTHON", "1")
        else:
            args = ["--allow-python-layers"] + args
        r = CliRunner().invoke(cli, args, obj={})
        assert r.exit_code == 0, r.output
    assert (planted / "RAN").exists()
    assert not (planted / "CAFFE_RAN").exists()


def test_the_flag_holds_for_one_invocation_only(planted):
    assert CliRunner().invoke(cli, ["--allow-python-layers", "check", "--model", "net.yaml"], obj={}).exit_code == 0
    (planted / "RAN").unlink()
    import sys
    del sys.modules["planted"]
    r = CliRunner().invoke(cli, ["check", "--model", "net.yaml"], obj={})
    assert r.exit_code == 1 and "module 'planted'" in r.output
    assert not (planted / "RAN").exists()


def test_opt_in_imports_from_the_net_folder_not_the_working_directory(tmp_path, monkeypatch):
    model, work = tmp_path / "model", tmp_path / "work"
    model.mkdir(), work.mkdir()
    (model / "net.yaml").write_text(NET)
    (work / "planted.py").write_text(MODULE.format(folder=str(work)))
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend("")                 # as `python -c`: '' is the working directory
    with pytest.raises(netcli.NetcliError, match="cannot import module 'planted'"):
        netcli.Net(str(model / "net.yaml"), allow_python=True)
    assert not (work / "RAN").exists()


def test_a_solver_passes_allow_python_to_its_nets(planted):
    with pytest.raises(netcli.NetcliError, match="module 'planted'"):
        netcli.Solver("solver.yaml")
    s = netcli.Solver("solver.yaml", allow_python=True)
    assert s.net.allow_python and (planted / "RAN").exists()
