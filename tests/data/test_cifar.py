"""Named CIFAR-10, CIFAR-100 and Fashion-MNIST: `netcli data fetch` against a local HTTP server
(SHA-256 and size checked: a good file, a truncated one, a wrong checksum; nothing half-written),
the binary archives read safely by member name, `cifar10:train` as a Data source, and
configs/cifar10_quick_solver.yaml trained as the README's first command trains LeNet."""
import gzip
import hashlib
import os
import shutil
import tarfile
import io

import numpy as np
import pytest
from click.testing import CliRunner

from fake_cifar import cifar10_archive, cifar_records, tar_gz
from local_server import Server
from netcli.cli import cli
from netcli.data import datasets
from netcli.data.sources import DataError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*args):
    return CliRunner().invoke(cli, list(args), obj={})


@pytest.fixture
def served_cifar10(monkeypatch, tmp_path):
    """A fake cifar-10-binary.tar.gz on a local server, the cifar10 entry pointing at it, an empty data dir."""
    archive, splits = cifar10_archive(30, 20)
    server = Server({"cifar-10-binary.tar.gz": archive})

    def entry(data=archive, url=server.url):
        return datasets.NamedDataset(
            "cifar10", mirrors=(url,),
            files=(datasets.RemoteFile("cifar-10-binary.tar.gz", sha256=hashlib.sha256(data).hexdigest(), size=len(data)),),
            splits=datasets.DATASETS["cifar10"].splits, reader=datasets.DATASETS["cifar10"].reader, mean="train")

    monkeypatch.setitem(datasets.DATASETS, "cifar10", entry())
    monkeypatch.setenv("NETCLI_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("NETCLI_OFFLINE", raising=False)
    yield archive, splits, server, entry
    server.close()


def test_fetch_verifies_and_names_the_splits_and_mean(served_cifar10, tmp_path):
    archive, splits, _, _ = served_cifar10
    r = run("data", "fetch", "cifar10")
    assert r.exit_code == 0, r.output
    folder = tmp_path / "data" / "cifar10"
    assert sorted(os.listdir(folder)) == ["cifar-10-binary.tar.gz", "mean.binaryproto"]
    assert "cifar10:mean: " in r.output
    for split in ("train", "test"):
        ds = datasets.load_named(f"cifar10:{split}")
        np.testing.assert_array_equal(ds.images, splits[split][0])         # RGB, channel-major, as the file
        np.testing.assert_array_equal(ds.labels, splits[split][1])
        assert ds.colors == "RGB" and ds.images.flags.c_contiguous


@pytest.mark.parametrize("fault,expected", [
    ("truncated", "connection closed after"),
    ("checksum", "checksum mismatch (SHA-256 "),
    ("size", "bytes, expected"),
    ("oversize", "more than the "),        # stopped as soon as it passes the published size
])
def test_bad_downloads_are_one_line_and_leave_nothing(served_cifar10, monkeypatch, tmp_path, fault, expected):
    archive, _, server, entry = served_cifar10
    if fault == "truncated":
        server.truncate.add("cifar-10-binary.tar.gz")
    elif fault == "checksum":
        monkeypatch.setitem(datasets.DATASETS, "cifar10", entry(archive[:-1] + b"x"))
    else:
        bad = entry()
        size = len(archive) + 1 if fault == "size" else 100
        monkeypatch.setitem(datasets.DATASETS, "cifar10", datasets.NamedDataset(
            "cifar10", bad.mirrors, (datasets.RemoteFile(bad.files[0].name, sha256=bad.files[0].sha256,
                                                         size=size),), bad.splits, reader=bad.reader))
    r = run("data", "fetch", "cifar10")
    assert r.exit_code == 1 and expected in r.output and "Traceback" not in r.output, r.output
    assert [line for line in r.output.splitlines() if line.startswith("netcli: error:")]
    folder = tmp_path / "data" / "cifar10"
    assert os.listdir(folder) == []                               # no partial or temporary file


def test_offline_is_one_line_saying_how_to_fetch(monkeypatch, tmp_path):
    monkeypatch.setenv("NETCLI_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("NETCLI_OFFLINE", "1")
    with pytest.raises(DataError, match=r"cifar10 not found in .* run: netcli data fetch cifar10"):
        datasets.load_named("cifar10:train")
    shutil.copytree(os.path.join(ROOT, "configs"), tmp_path / "configs")
    monkeypatch.chdir(tmp_path)
    r = run("train", "--solver", "configs/cifar10_quick_solver.yaml", "--quiet")
    assert r.exit_code == 1, r.output
    errors = [line for line in r.output.splitlines() if "error" in line]
    assert len(errors) == 1 and "run: netcli data fetch cifar10" in errors[0], r.output


def test_cifar10_quick_trains_fetching_on_first_use(served_cifar10, monkeypatch, tmp_path):
    """`netcli train --solver configs/cifar10_quick_solver.yaml` in a fresh clone: the data and its
    mean come on first use (here from the local server; fewer iterations and test batches)."""
    shutil.copytree(os.path.join(ROOT, "configs"), tmp_path / "configs")
    solver = tmp_path / "configs" / "cifar10_quick_solver.yaml"
    solver.write_text(solver.read_text().replace("test_iter: 100", "test_iter: 1")
                      .replace("test_interval: 500", "test_interval: 2"))
    monkeypatch.chdir(tmp_path)
    r = run("train", "--solver", "configs/cifar10_quick_solver.yaml", "--iterations", "2", "--quiet")
    assert r.exit_code == 0, r.output
    assert "Test net output #0: accuracy" in r.output
    assert sorted(os.listdir(tmp_path / "data" / "cifar10")) == ["cifar-10-binary.tar.gz", "mean.binaryproto"]


def _archive_with(members):
    """A .tar.gz holding `members`: name -> bytes, or name -> ('symlink', target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, tuple):
                info.type, info.linkname = tarfile.SYMTYPE, data[1]
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("members,expected", [
    ({"cifar-10-batches-bin/test_batch.bin": ("symlink", "/etc/passwd")}, "is not a regular file in the archive"),
    ({"cifar-10-batches-bin/test_batch.bin": b"x" * 3000}, "not a whole number"),
    ({"../cifar-10-batches-bin/test_batch.bin": b"x" * 3073}, "no member cifar-10-batches-bin/test_batch.bin"),
    (None, "not a readable .tar.gz archive"),
])
def test_archive_members_are_read_by_exact_name_and_checked(tmp_path, monkeypatch, members, expected):
    folder = tmp_path / "data" / "cifar10"
    folder.mkdir(parents=True)
    data = _archive_with(members) if members else gzip.compress(b"not a tar")[:20]
    (folder / "cifar-10-binary.tar.gz").write_bytes(data)
    monkeypatch.setenv("NETCLI_DATA", str(tmp_path / "data"))
    with pytest.raises(DataError, match=expected):
        datasets.load_named("cifar10:test")
    assert sorted(os.listdir(tmp_path)) == ["data"] and os.listdir(folder) == ["cifar-10-binary.tar.gz"]


def test_cifar100_fine_labels(tmp_path, monkeypatch):
    members = {}
    for split, n in (("train", 7), ("test", 4)):
        raw, images, labels = cifar_records(n, label_bytes=2, seed=n)
        members[f"cifar-100-binary/{split}.bin"] = raw
    (tmp_path / "cifar100").mkdir()
    (tmp_path / "cifar100" / "cifar-100-binary.tar.gz").write_bytes(tar_gz(members))
    monkeypatch.setenv("NETCLI_DATA", str(tmp_path))
    ds = datasets.load_named("cifar100:test")
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels[:, 1])          # byte 0 coarse, byte 1 fine


def test_fashion_mnist_is_an_idx_dataset(tmp_path, monkeypatch):
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 5), ("t10k", 3)):
        for kind, arr in (("images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28))), ("labels-idx1-ubyte", np.arange(n))):
            head = bytes([0, 0, 8, arr.ndim]) + np.asarray(arr.shape, ">i4").tobytes()
            (folder / f"{prefix}-{kind}.gz").write_bytes(gzip.compress(head + arr.astype(np.uint8).tobytes()))
    monkeypatch.setenv("NETCLI_DATA", str(tmp_path))
    assert datasets.load_named("fashion-mnist:test").images.shape == (3, 1, 28, 28)
    assert all(f.sha256 and f.size for f in datasets.DATASETS["fashion-mnist"].files)
    assert all(f.sha256 and f.size for n in ("cifar10", "cifar100") for f in datasets.DATASETS[n].files)
