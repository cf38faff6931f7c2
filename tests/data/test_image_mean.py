"""`netcli data compute-mean` (Caffe's compute_image_mean): the per-pixel mean of an LMDB, an
image list or a named dataset equals NumPy's mean of the same images; it is written as Caffe's
mean.binaryproto or .npy; the database is read record by record; cifar10:mean is a mean file."""
import os

import numpy as np
import pytest
from click.testing import CliRunner

from netcli.caffe.caffemodel import read_binaryproto
from netcli.cli import caffe_flags, cli
from netcli.data import image_mean, readers
from netcli.data.sources import DataError
from netcli.data.convert_imageset import convert_imageset
from image_files import bgr, make_images, write_list

lmdb = pytest.importorskip("lmdb")


def run(*args):
    return CliRunner().invoke(cli, caffe_flags(args), obj={})


def numpy_mean(images):
    return np.mean(np.stack(images).astype(np.float64), axis=0).astype(np.float32)


@pytest.fixture
def lmdb_of_images(tmp_path):
    lines, arrays = make_images(tmp_path / "img", n=9, seed=5)
    listfile = write_list(tmp_path / "l.txt", lines)
    convert_imageset(str(tmp_path / "img"), listfile, str(tmp_path / "db"))
    return str(tmp_path / "db"), listfile, [bgr(a) for a in arrays]


def test_mean_of_an_lmdb_is_numpys(lmdb_of_images, tmp_path, monkeypatch):
    db, _, images = lmdb_of_images
    monkeypatch.setattr(readers, "load_db", None)       # record by record: never the whole database
    r = run("data", "compute-mean", db, "-o", str(tmp_path / "mean.binaryproto"))
    assert r.exit_code == 0, r.output
    want = numpy_mean(images)
    np.testing.assert_allclose(read_binaryproto(str(tmp_path / "mean.binaryproto")), want, rtol=1e-6)
    assert "Number of images: 9; number of channels: 3" in r.output
    assert f"mean_value channel [0]: {want[0].mean():.6g}" in r.output
    r = run("compute_image_mean", db, str(tmp_path / "mean.npy"))          # Caffe's name, OUTPUT positional
    assert r.exit_code == 0, r.output
    np.testing.assert_allclose(np.load(tmp_path / "mean.npy"), want, rtol=1e-6)


def test_binaryproto_is_caffes_blob(lmdb_of_images, tmp_path):
    caffe_pb2 = pytest.importorskip("netcli.caffe.proto.caffe_pb2")
    db, _, images = lmdb_of_images
    mean, n = image_mean.compute_mean(db)
    image_mean.write_mean(str(tmp_path / "m.binaryproto"), mean)
    b = caffe_pb2.BlobProto()
    b.ParseFromString((tmp_path / "m.binaryproto").read_bytes())
    assert (b.num, b.channels, b.height, b.width, n) == (1, 3, 7, 9, 9)
    np.testing.assert_array_equal(np.array(b.data, np.float32).reshape(3, 7, 9), mean)


def test_mean_of_an_image_list(lmdb_of_images, tmp_path):
    _, listfile, images = lmdb_of_images
    mean, n = image_mean.compute_mean(listfile, root=str(tmp_path / "img"))
    assert n == 9
    np.testing.assert_allclose(mean, numpy_mean(images), rtol=1e-6)


def test_mean_of_a_named_dataset_and_cifar10_mean(tmp_path, monkeypatch):
    from fake_cifar import put_cifar10
    splits = put_cifar10(str(tmp_path / "data"), 25, 10)
    monkeypatch.setenv("NETCLI_DATA", str(tmp_path / "data"))
    mean, n = image_mean.compute_mean("cifar10:train")
    assert n == 25
    np.testing.assert_allclose(mean, numpy_mean(list(splits["train"][0])), rtol=1e-6)
    path = image_mean.named_mean("cifar10:mean")
    assert path == os.path.join(str(tmp_path / "data"), "cifar10", "mean.binaryproto")
    np.testing.assert_array_equal(read_binaryproto(path), mean)
    assert image_mean.named_mean("data/mean.binaryproto") is None


def test_bad_sources_are_one_line(tmp_path, lmdb_of_images):
    r = run("data", "compute-mean", str(tmp_path / "nothing"), "-o", str(tmp_path / "m.npy"))
    assert r.exit_code == 1 and "no such database, image list or named dataset" in r.output
    (tmp_path / "l2.txt").write_text("cls0/img 0.png 0\nmissing.png 1\n")
    r = run("data", "compute-mean", str(tmp_path / "l2.txt"), "--root", str(tmp_path / "img"), "-o", str(tmp_path / "m.npy"))
    assert r.exit_code == 1 and "l2.txt:2: " in r.output and "Traceback" not in r.output
    r = run("data", "compute-mean", lmdb_of_images[0], "-o", str(tmp_path / "m.txt"))
    assert r.exit_code == 2 and "must end in .binaryproto or .npy" in r.output
    assert not [f for f in os.listdir(tmp_path) if f.startswith("m.")]


def test_an_lmdb_of_empty_datums_is_one_line(tmp_path):
    pytest.importorskip("lmdb")
    import lmdb
    from netcli.caffe import wire
    from netcli.caffe.datum import LABEL
    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 20)
    with env.begin(write=True) as txn:
        txn.put(b"00000000", wire.put_varint(LABEL, 1))
    env.close()
    with pytest.raises(DataError, match=r"record 0 .*an empty image"):
        image_mean.compute_mean(str(tmp_path / "db"))
