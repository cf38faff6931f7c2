"""`netcli check` on a net whose data is not here (Caffe's nets name LMDBs in Caffe's folder):
everything but the shapes fed by that data is checked, and the check says which shapes it skipped."""
import os
import shutil

from click.testing import CliRunner

from netcli.cli import cli

CAFFE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "caffe", "examples", "mnist")


def check(*args):
    return CliRunner().invoke(cli, ["check", "--model", *args], obj={})


def test_check_without_the_lmdb_names_the_unchecked_shapes(tmp_path, monkeypatch):
    shutil.copy(os.path.join(CAFFE, "mnist_autoencoder.prototxt"), tmp_path)
    monkeypatch.chdir(tmp_path)
    r = check("mnist_autoencoder.prototxt", "--phase", "TEST", "--stage", "test-on-test")
    assert r.exit_code == 0, r.output
    assert "TEST: layer 'data' (Data): examples/mnist/mnist_test_lmdb is not here" in r.output
    assert "shapes not checked for 19 of 19 layers: data, flatdata, encode1," in r.output
    assert "_split" not in r.output                       # netcli's own Splits are not named
    assert r.output.strip().endswith("OK, but for the shapes named above (their data is not here)")


def test_check_without_data_still_finds_field_mistakes(tmp_path, monkeypatch):
    text = open(os.path.join(CAFFE, "lenet_train_test.prototxt")).read()
    (tmp_path / "net.prototxt").write_text(text.replace("num_output: 500", "num_output: -5"))
    monkeypatch.chdir(tmp_path)
    r = check("net.prototxt")
    assert r.exit_code == 1 and "num_output" in r.output, r.output


def test_a_broken_source_that_is_here_still_fails(tmp_path, monkeypatch):
    text = open(os.path.join(CAFFE, "lenet_train_test.prototxt")).read()
    (tmp_path / "net.prototxt").write_text(text.replace("examples/mnist/mnist_train_lmdb", "train.npz"))
    (tmp_path / "train.npz").write_bytes(b"not an npz")
    monkeypatch.chdir(tmp_path)
    r = check("net.prototxt", "--phase", "TRAIN")
    assert r.exit_code == 1 and "train.npz" in r.output and "not here" not in r.output, r.output
