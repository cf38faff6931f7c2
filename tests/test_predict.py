"""netcli predict and netcli.Classifier: a LeNet trained here classifies PNG digits written
from the embedded MNIST test split; the PNG path equals the data layer's path exactly."""
import json
import os

import numpy as np
import pytest
from click.testing import CliRunner

import netcli
from netcli.cli import cli
import netcli.commands.convert
from netcli.data.datasets import load_named

Image = pytest.importorskip("PIL.Image")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 20


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """LeNet after 300 iterations (about 95% on the embedded test split) and 20 test digits as PNGs."""
    d = tmp_path_factory.mktemp("predict")
    (d / "solver.yaml").write_text(f"""\
net: {ROOT}/configs/lenet_train_test.yaml
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: inv
gamma: 0.0001
power: 0.75
max_iter: 300
snapshot_prefix: {d}/lenet
random_seed: 2
""")
    netcli.Solver(str(d / "solver.yaml"), progress=False).solve()
    ds = load_named("mnist:test")
    digits = d / "digits"
    digits.mkdir()
    for i in range(N):
        Image.fromarray(ds.images[i, 0].astype(np.uint8)).save(digits / f"{i:02d}.png")
    return d / "lenet_iter_300.weights.npz", digits, ds.images[:N], ds.labels[:N].astype(int)


def _reference_top1(weights, images):
    """The train/test net's own TEST path: its data layer's scaling, then forward."""
    net = netcli.Net(os.path.join(ROOT, "configs/lenet_train_test.yaml"), phase="TEST", weights=str(weights))
    x = images.astype(np.float32) * np.float32(0.00390625)
    out = []
    for lo in range(0, len(x), net.blobs["data"].shape[0]):
        chunk = x[lo:lo + net.blobs["data"].shape[0]]
        feed = np.zeros(net.blobs["data"].shape, np.float32)
        feed[:len(chunk)] = chunk
        net.forward(start="conv1", data=feed)
        out += net.blobs["ip2"].data[:len(chunk)].argmax(axis=1).tolist()
    return out


def test_predict_folder_of_png_digits(trained, monkeypatch):
    weights, digits, images, labels = trained
    monkeypatch.chdir(ROOT)
    r = CliRunner().invoke(cli, ["predict", "--model", "configs/lenet_deploy.yaml", "--weights", str(weights),
                                 str(digits), "--json", "--top-k", "3"], obj={})
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert [os.path.basename(x["input"]) for x in rows] == [f"{i:02d}.png" for i in range(N)]
    assert all(len(x["top_k"]) == 3 and x["top_k"][0]["prob"] >= x["top_k"][1]["prob"] for x in rows)
    assert all(abs(sum(t["prob"] for t in x["top_k"]) - 1) < 0.5 for x in rows)
    top1 = [x["top_k"][0]["class"] for x in rows]
    assert top1 == _reference_top1(weights, images)             # the same path as training's data
    assert sum(t == y for t, y in zip(top1, labels)) >= 16        # a ~95% model: a wide margin


def test_deploy_net_takes_the_preprocessing_kept_in_the_weights(trained, monkeypatch):
    weights, digits, images, _ = trained
    monkeypatch.chdir(ROOT)
    deploy = netcli.Classifier("configs/lenet_deploy.yaml", str(weights))
    assert deploy.known and deploy.preprocessing.scale == pytest.approx(0.00390625)
    train_test = netcli.Classifier("configs/lenet_train_test.yaml", str(weights))
    pics = [np.asarray(Image.open(digits / f"{i:02d}.png")) for i in range(5)]
    np.testing.assert_allclose(deploy.predict(pics), train_test.predict(pics), rtol=1e-5, atol=1e-7)
    # the same digits given as an RGB image and as raw samples
    rgb = [np.repeat(p[:, :, None], 3, axis=2) for p in pics]
    np.testing.assert_allclose(deploy.predict(rgb), deploy.predict(pics), atol=1e-7)
    np.testing.assert_allclose(deploy.predict(raw=images[:5]), deploy.predict(pics), atol=1e-7)


def test_predict_text_npz_labels_and_resize(trained, tmp_path, monkeypatch):
    weights, digits, images, _ = trained
    monkeypatch.chdir(ROOT)
    np.savez(tmp_path / "x.npz", data=images[:3])
    (tmp_path / "names.txt").write_text("\n".join(f"digit-{i}" for i in range(10)) + "\n")
    Image.open(digits / "00.png").resize((56, 56), Image.BILINEAR).save(tmp_path / "big.png")
    r = CliRunner().invoke(cli, ["predict", "--model", "configs/lenet_deploy.yaml", "--weights", str(weights),
                                 str(tmp_path / "x.npz"), str(tmp_path / "big.png"), "--labels",
                                 str(tmp_path / "names.txt"), "--top-k", "2"], obj={})
    assert r.exit_code == 0, r.output
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 4 and lines[0].startswith(str(tmp_path / "big.png") + ": ")
    assert lines[1].startswith(str(tmp_path / "x.npz") + "[0]: ") and " digit-" in lines[1]


def test_predict_errors_are_one_line(trained, tmp_path, monkeypatch):
    weights, digits, _, _ = trained
    monkeypatch.chdir(ROOT)
    run = lambda *args: CliRunner().invoke(cli, ["predict", "--model", "configs/lenet_deploy.yaml", *args], obj={})
    r = run("--weights", str(weights), str(tmp_path / "nope.png"))
    assert r.exit_code == 1 and "nope.png: no such file or folder" in r.output
    (tmp_path / "bad.png").write_text("not an image")
    r = run("--weights", str(weights), str(tmp_path / "bad.png"))
    assert r.exit_code == 1 and "cannot read image" in r.output and "Traceback" not in r.output
    np.savez(tmp_path / "wrong.npz", data=np.zeros((2, 3, 5, 5)))
    r = run("--weights", str(weights), str(tmp_path / "wrong.npz"))
    assert r.exit_code == 1 and "the net's raw inputs are (1, 28, 28)" in r.output
    # a caffemodel keeps no preprocessing: a warning says so
    netcli.commands.convert.convert(weights, tmp_path / "w.caffemodel", model="configs/lenet_deploy.yaml")
    r = run("--weights", str(tmp_path / "w.caffemodel"), str(digits / "00.png"))
    assert r.exit_code == 0 and "nothing says how" in r.stderr


def test_a_caffe_deploy_net_with_preprocessing_flags(trained, tmp_path, monkeypatch):
    """A caffemodel keeps no preprocessing: --scale (as Caffe's LeNet's 1/256) gives the same
    probabilities as the train/test net's data layer; a mean is subtracted before scaling."""
    weights, digits, images, _ = trained
    monkeypatch.chdir(ROOT)
    netcli.commands.convert.convert(weights, tmp_path / "w.caffemodel", model="configs/lenet_deploy.yaml")
    pics = [np.asarray(Image.open(digits / f"{i:02d}.png")) for i in range(4)]
    flags = netcli.Classifier("configs/lenet_deploy.yaml", str(tmp_path / "w.caffemodel"), scale=0.00390625)
    data_layer = netcli.Classifier("configs/lenet_train_test.yaml", str(weights))
    np.testing.assert_allclose(flags.predict(pics), data_layer.predict(pics), rtol=1e-5, atol=1e-7)
    np.save(tmp_path / "mean.npy", np.full((1, 14, 14), 10, np.float32))      # resized to 28x28, as classify.py
    shifted = netcli.Classifier("configs/lenet_deploy.yaml", str(weights), mean=tmp_path / "mean.npy")
    ref_net = netcli.Net("configs/lenet_deploy.yaml", phase="TEST", weights=str(weights))
    feed = np.zeros(ref_net.blobs["data"].shape, np.float32)
    feed[:4] = (images[:4].astype(np.float32) - 10) * np.float32(0.00390625)
    ref = ref_net.forward(data=feed)["prob"][:4]
    np.testing.assert_allclose(shifted.predict(raw=images[:4]), ref, rtol=1e-5, atol=1e-7)
    r = CliRunner().invoke(cli, ["predict", "--model", "configs/lenet_deploy.yaml", "--weights", str(weights),
                                 str(digits / "00.png"), "--mean-value", "1", "--mean-value", "2"], obj={})
    assert r.exit_code == 1 and "--mean-value needs 1 value for 1-channel images, got 2" in r.output
