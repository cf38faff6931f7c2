"""Every net and solver of Caffe's examples/ and models/ (tests/data/caffe, BSD licence) loads, with
the blob shapes Caffe gives them. The data sources they name (LMDB, LevelDB, HDF5 lists, image
lists, mean files) are made here, small, with the sample shapes of the real datasets; the
expected shapes are the ones Caffe's logs and the papers state for these nets."""
import os
import shutil

import numpy as np
import pytest

from netcli import Net
from netcli.caffe import wire
from netcli.caffe.datum import datum_bytes
from netcli.errors import NetcliError
from helpers import PY_EUCLIDEAN_LOSS

CAFFE = os.path.join(os.path.dirname(__file__), "..", "data", "caffe")

LMDB = {"examples/mnist/mnist_train_lmdb": (1, 28, 28), "examples/mnist/mnist_test_lmdb": (1, 28, 28),
        "examples/cifar10/cifar10_train_lmdb": (3, 32, 32), "examples/cifar10/cifar10_test_lmdb": (3, 32, 32),
        "examples/imagenet/ilsvrc12_train_lmdb": (3, 256, 256), "examples/imagenet/ilsvrc12_val_lmdb": (3, 256, 256)}
LEVELDB = {"examples/siamese/mnist_siamese_train_leveldb": (2, 28, 28),
           "examples/siamese/mnist_siamese_test_leveldb": (2, 28, 28)}
MEANS = {"examples/cifar10/mean.binaryproto": (3, 32, 32), "data/ilsvrc12/imagenet_mean.binaryproto": (3, 256, 256)}
IMAGE_LISTS = ["examples/_temp/file_list.txt", "data/flickr_style/train.txt", "data/flickr_style/test.txt"]
HDF5_LISTS = ["examples/hdf5_classification/data/train.txt", "examples/hdf5_classification/data/test.txt"]

ALEXNET = {"conv1": (96, 55, 55), "pool1": (96, 27, 27), "conv2": (256, 27, 27), "pool2": (256, 13, 13),
           "conv3": (384, 13, 13), "conv4": (384, 13, 13), "conv5": (256, 13, 13), "pool5": (256, 6, 6),
           "fc6": (4096,), "fc7": (4096,), "fc8": (1000,)}
GOOGLENET = {"conv1/7x7_s2": (64, 112, 112), "pool1/3x3_s2": (64, 56, 56), "conv2/3x3": (192, 56, 56),
             "pool2/3x3_s2": (192, 28, 28), "inception_3a/output": (256, 28, 28),
             "inception_3b/output": (480, 28, 28), "pool3/3x3_s2": (480, 14, 14),
             "inception_4a/output": (512, 14, 14), "inception_4e/output": (832, 14, 14),
             "pool4/3x3_s2": (832, 7, 7), "inception_5b/output": (1024, 7, 7), "pool5/7x7_s1": (1024, 1, 1),
             "loss3/classifier": (1000,)}
GOOGLENET_AUX = {"loss1/ave_pool": (512, 4, 4), "loss1/fc": (1024,), "loss2/classifier": (1000,)}
LENET = {"conv1": (20, 24, 24), "pool1": (20, 12, 12), "conv2": (50, 8, 8), "pool2": (50, 4, 4),
         "ip1": (500,), "ip2": (10,)}
CIFAR_QUICK = {"conv1": (32, 32, 32), "pool1": (32, 16, 16), "conv2": (32, 16, 16), "pool2": (32, 8, 8),
               "conv3": (64, 8, 8), "pool3": (64, 4, 4), "ip1": (64,), "ip2": (10,)}
CIFAR_FULL = {"conv1": (32, 32, 32), "pool1": (32, 16, 16), "conv2": (32, 16, 16), "pool2": (32, 8, 8),
              "conv3": (64, 8, 8), "pool3": (64, 4, 4), "ip1": (10,)}
AUTOENCODER = {"encode1": (1000,), "encode2": (500,), "encode3": (250,), "encode4": (30,), "decode1": (784,)}

B = 2       # batch size of the data layers (the real ones would need gigabytes for AlexNet)
# net file -> (phases with their stages, {blob: shape without the batch axis}, batch of deploy inputs)
NETS = {
    "examples/mnist/lenet.prototxt": (None, LENET, 64),
    "examples/mnist/lenet_train_test.prototxt": (None, LENET, None),
    "examples/mnist/mnist_autoencoder.prototxt": ([("TRAIN", ()), ("TEST", ("test-on-train",)),
                                                  ("TEST", ("test-on-test",))], AUTOENCODER, None),
    "examples/cifar10/cifar10_quick.prototxt": (None, CIFAR_QUICK, 1),
    "examples/cifar10/cifar10_quick_train_test.prototxt": (None, CIFAR_QUICK, None),
    "examples/cifar10/cifar10_full.prototxt": (None, CIFAR_FULL, 1),
    "examples/cifar10/cifar10_full_train_test.prototxt": (None, CIFAR_FULL, None),
    "examples/cifar10/cifar10_full_sigmoid_train_test.prototxt": (None, CIFAR_FULL, None),
    "examples/cifar10/cifar10_full_sigmoid_train_test_bn.prototxt": (None, CIFAR_FULL, None),
    "examples/siamese/mnist_siamese.prototxt": (None, {"conv1": (20, 24, 24), "ip2": (10,), "feat": (2,)}, 10000),
    "examples/siamese/mnist_siamese_train_test.prototxt": (None, {"data": (1, 28, 28), "data_p": (1, 28, 28),
                                                                   "feat": (2,), "feat_p": (2,)}, None),
    "examples/hdf5_classification/train_val.prototxt": (None, {"data": (4,), "fc1": (2,)}, None),
    "examples/hdf5_classification/nonlinear_train_val.prototxt": (None, {"data": (4,), "fc1": (40,), "fc2": (2,)}, None),
    "examples/hdf5_classification/nonlinear_auto_train.prototxt": (None, {"ip1": (40,), "ip2": (2,)}, None),
    "examples/hdf5_classification/nonlinear_auto_test.prototxt": (None, {"ip1": (40,), "ip2": (2,)}, None),
    "examples/feature_extraction/imagenet_val.prototxt": (None, {"data": (3, 227, 227), **ALEXNET}, None),
    "examples/net_surgery/conv.prototxt": (None, {"conv": (3, 96, 96)}, 1),
    "examples/net_surgery/bvlc_caffenet_full_conv.prototxt": (None, {"pool5": (256, 13, 13), "fc6-conv": (4096, 8, 8),
                                                                     "fc8-conv": (1000, 8, 8)}, 1),
    "models/bvlc_alexnet/deploy.prototxt": (None, ALEXNET, 10),
    "models/bvlc_alexnet/train_val.prototxt": (None, {"data": (3, 227, 227), **ALEXNET}, None),
    "models/bvlc_reference_caffenet/deploy.prototxt": (None, ALEXNET, 10),
    "models/bvlc_reference_caffenet/train_val.prototxt": (None, ALEXNET, None),
    "models/bvlc_reference_rcnn_ilsvrc13/deploy.prototxt": (None, {"fc7": (4096,), "fc-rcnn": (200,)}, 10),
    "models/finetune_flickr_style/deploy.prototxt": (None, {"fc7": (4096,), "fc8_flickr": (20,)}, 10),
    "models/finetune_flickr_style/train_val.prototxt": (None, {"data": (3, 227, 227), "fc8_flickr": (20,)}, None),
    "models/bvlc_googlenet/deploy.prototxt": (None, GOOGLENET, 10),
    "models/bvlc_googlenet/train_val.prototxt": (None, GOOGLENET, None),
    "examples/finetune_pascal_detection/pascal_finetune_trainval_test.prototxt":
        (None, {"data": (3, 227, 227), **{k: v for k, v in ALEXNET.items() if k != "fc8"}, "fc8_pascal": (21,)}, None),
}
WINDOW_FILES = ["examples/finetune_pascal_detection/window_file_2007_trainval.txt",
                "examples/finetune_pascal_detection/window_file_2007_test.txt"]


@pytest.fixture(scope="module")
def caffe_root(tmp_path_factory):
    """A copy of Caffe's tree with every data source its nets name, as Caffe's examples run from
    its root folder."""
    lmdb = pytest.importorskip("lmdb")
    plyvel = pytest.importorskip("plyvel")
    h5py = pytest.importorskip("h5py")
    Image = pytest.importorskip("PIL.Image")
    root = tmp_path_factory.mktemp("caffe")
    shutil.copytree(CAFFE, root, dirs_exist_ok=True)
    rng = np.random.default_rng(0)
    for path, shape in LMDB.items():
        os.makedirs(root / os.path.dirname(path), exist_ok=True)
        env = lmdb.open(str(root / path), map_size=1 << 26)
        with env.begin(write=True) as txn:
            for i in range(3):
                txn.put(b"%08d" % i, datum_bytes(rng.integers(0, 256, shape, dtype=np.uint8), i % 2))
        env.close()
    for path, shape in LEVELDB.items():
        db = plyvel.DB(str(root / path), create_if_missing=True)
        for i in range(3):
            db.put(b"%08d" % i, datum_bytes(rng.integers(0, 256, shape, dtype=np.uint8), i % 2))
        db.close()
    for path, shape in MEANS.items():
        os.makedirs(root / os.path.dirname(path), exist_ok=True)
        blob = wire.put_bytes(7, wire.put_packed_varints(1, (1,) + shape)) + \
            wire.put_packed_floats(5, rng.random(shape, np.float32) * 255)
        (root / path).write_bytes(blob)
    for path in IMAGE_LISTS:
        folder = root / os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        lines = []
        for i in range(3):
            name = folder / f"img{i}.png"
            Image.fromarray(rng.integers(0, 256, (300, 280, 3), dtype=np.uint8)).save(name)
            lines.append(f"{name} {i}")
        (root / path).write_text("\n".join(lines) + "\n")
    for path in HDF5_LISTS:
        folder = root / os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        with h5py.File(folder / (os.path.basename(path) + ".h5"), "w") as f:
            f["data"] = rng.standard_normal((5, 4)).astype(np.float32)
            f["label"] = rng.integers(0, 2, 5).astype(np.float32)
        (root / path).write_text(str(folder / (os.path.basename(path) + ".h5")) + "\n")
    for path in WINDOW_FILES:        # R-CNN's windows: one image, a foreground and a background box
        image = root / os.path.dirname(path) / "window.png"
        Image.fromarray(rng.integers(0, 256, (240, 300, 3), dtype=np.uint8)).save(image)
        (root / path).write_text(f"# 0\n{image}\n3\n240\n300\n2\n5 0.8 20 30 200 180\n0 0.1 100 50 290 230\n")
    # the Python loss layer linreg.prototxt names (Caffe keeps one in examples/pycaffe/layers;
    # this one is ours, with pycaffe's interface)
    os.makedirs(root / "examples/pycaffe/layers", exist_ok=True)
    (root / "examples/pycaffe/layers/pyloss.py").write_text(PY_EUCLIDEAN_LOSS.format(name="EuclideanLossLayer"))
    return root


def test_linreg_with_its_python_loss_layer(caffe_root, monkeypatch):
    monkeypatch.chdir(caffe_root)
    monkeypatch.syspath_prepend(str(caffe_root / "examples/pycaffe/layers"))   # Caffe: PYTHONPATH
    net = Net("examples/pycaffe/linreg.prototxt", phase="TRAIN", allow_python=True)
    assert net.blobs["x"].shape == (10, 3, 2) and net.blobs["ipx"].shape == (10, 10)
    net.forward()
    d = net.blobs["ipx"].data.astype(np.float64) - net.blobs["ipy"].data
    assert net.loss == pytest.approx(np.sum(d ** 2) / 20, rel=1e-5)
    net.clear_param_diffs()
    net.backward()
    assert np.abs(net.params["ipx"][0].diff).sum() > 0


def test_every_caffe_net_is_listed():
    found = set()
    for folder, _, files in os.walk(CAFFE):
        for f in files:
            path = os.path.relpath(os.path.join(folder, f), CAFFE).replace(os.sep, "/")
            if f.endswith(".prototxt") and "solver" not in f:
                found.add(path)
    missing = found - set(NETS) - OWN_TEST
    assert not missing, missing


# nets with a test of their own below
OWN_TEST = {"examples/pycaffe/linreg.prototxt"}


@pytest.mark.parametrize("path", sorted(NETS))
def test_caffe_net_shapes(caffe_root, monkeypatch, path):
    monkeypatch.chdir(caffe_root)
    states, shapes, deploy_batch = NETS[path]
    if states is None:
        states = [("TEST", ())] if deploy_batch else [("TRAIN", ()), ("TEST", ())]
    for phase, stages in states:
        net = Net(path, phase=phase, stages=stages, batch_size=None if deploy_batch else B)
        n = deploy_batch or B
        for blob, shape in shapes.items():
            assert net.blobs[blob].shape == (n,) + shape, (phase, blob)
        if "googlenet/train_val" in path and phase == "TRAIN":
            for blob, shape in GOOGLENET_AUX.items():
                assert net.blobs[blob].shape == (n,) + shape, (phase, blob)
        if deploy_batch is None:
            net.forward()            # the data layers read what was made above
            assert all(np.isfinite(net.blobs[b].data).all() for b in shapes)


SOLVERS_MISSING_NETS = {
    # its nets are written by the pycaffe notebook (examples/01-learning-lenet.ipynb), not kept in git
    "examples/mnist/lenet_auto_solver.prototxt": "mnist/lenet_auto_train.prototxt: no such net file",
}


def _solvers():
    out = []
    for folder, _, files in os.walk(CAFFE):
        out += [os.path.relpath(os.path.join(folder, f), CAFFE).replace(os.sep, "/") for f in files
                if f.endswith(".prototxt") and "solver" in f]
    return sorted(out)


@pytest.mark.parametrize("path", _solvers())
def test_caffe_solver_loads(caffe_root, monkeypatch, path):
    import functools
    from netcli import Solver
    from netcli.solver import setup as solver_module         # where the Solver builds its nets
    monkeypatch.chdir(caffe_root)
    monkeypatch.setattr(solver_module, "Net", functools.partial(Net, batch_size=B))   # AlexNet's 256 need GBs
    # gpu=-1: the CPU, whatever solver_mode says (with tests/gpu collected, Numba's CUDA simulator is a
    # "GPU" for the whole session, and Caffe's solvers say solver_mode: GPU: a second copy of the params)
    if path in SOLVERS_MISSING_NETS:
        with pytest.raises(NetcliError, match=SOLVERS_MISSING_NETS[path]):
            Solver(path, max_iter=0, progress=False, gpu=-1)
        return
    s = Solver(path, max_iter=0, progress=False, gpu=-1)
    text = open(path).read()
    if "test_state" in text:          # consolidated and autoencoder solvers: two test nets with stages
        assert [t.stages for t in s.test_nets] == \
            ([("test-on-test-set",), ("test-on-train-set",)] if "consolidated" in path else
             [("test-on-train",), ("test-on-test",)])
        assert len(s.test_iters) == 2


SOLVER = """
test_iter: 2  test_state { stage: "a" }
test_iter: 1  test_state { stage: "b" }
test_interval: 1 max_iter: 2 base_lr: 0.1 lr_policy: "fixed" random_seed: 1
snapshot_format: BINARYPROTO snapshot_prefix: "out/s"
net_param {
  name: "inline"
  layer { name: "in" type: "DummyData" top: "x" top: "y"
           dummy_data_param { shape { dim: 4 dim: 3 } shape { dim: 4 dim: 2 } data_filler { type: "gaussian" } } }
  layer { name: "ip" type: "InnerProduct" bottom: "x" top: "z" inner_product_param { num_output: 2
          weight_filler { type: "xavier" } } }
  layer { name: "loss" type: "EuclideanLoss" bottom: "z" bottom: "y" include { phase: TRAIN } }
  layer { name: "lossa" type: "EuclideanLoss" bottom: "z" bottom: "z" include { phase: TEST stage: "a" } }
}
"""


def test_inline_net_several_test_nets_and_caffemodel_snapshots(tmp_path, monkeypatch, capsys):
    from netcli import Solver
    from netcli.caffe.caffemodel import read_caffemodel
    monkeypatch.chdir(tmp_path)
    (tmp_path / "solver.prototxt").write_text(SOLVER)
    (tmp_path / "bad.prototxt").write_text("test_iter: 5\n" + SOLVER)
    with pytest.raises(NetcliError, match=r"^bad.prototxt:3: field 'test_state': 2 given for 3 test net\(s\)"):
        Solver("bad.prototxt", progress=False)
    s = Solver("solver.prototxt", progress=False)
    assert [t.stages for t in s.test_nets] == [("a",), ("b",)] and s.test_iters == [2, 1]
    assert [t.outputs for t in s.test_nets] == [["y", "lossa"], ["y", "z"]]
    s.solve()
    out = capsys.readouterr().out
    assert out.count("Testing net (#0)") == 3 and out.count("Testing net (#1)") == 3
    assert "    Test net output #0: y = " in out
    model = read_caffemodel(tmp_path / "out" / "s_iter_2.caffemodel")
    ip = [l for l in model.layers if l.name == "ip"][0]
    assert np.array_equal(ip.blobs[0].array, s.net.params["ip"][0].data)
