"""Data: IDX parsing and its errors, npz, transforms, determinism and resume, the fetcher against a
local HTTP server, the offline fallback, prefetch errors, and LeNet on the embedded subset."""
import gzip
import hashlib
import os

import numpy as np
import pytest

import netcli
from netcli.config.schema import Problems
from netcli.config.yamlload import LDict
from netcli.data import datasets
from netcli.data.sources import DataError, load_idx, load_npz, read_idx
from netcli.data.transform import TRANSFORM, Transformer
from netcli.errors import NetcliError
from local_server import Server


def idx_bytes(arr, code=0x08):
    head = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">i4").tobytes()
    return head + arr.astype(np.uint8).tobytes()


def write_idx(prefix, images, labels, gz=False):
    for kind, arr in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
        data = idx_bytes(arr)
        path = f"{prefix}-{kind}" + (".gz" if gz else "")
        with open(path, "wb") as f:
            f.write(gzip.compress(data) if gz else data)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reader(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 5, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, 7, dtype=np.uint8)
    write_idx(str(tmp_path / "train"), images, labels, gz)
    ds = load_idx(str(tmp_path / "train"))
    assert ds.images.shape == (7, 1, 5, 4)
    np.testing.assert_array_equal(ds.images[:, 0], images)
    np.testing.assert_array_equal(ds.labels, labels.astype(np.float32))


def test_idx_errors(tmp_path):
    p = tmp_path / "x-images-idx3-ubyte"
    p.write_bytes(b"\x12\x34\x08\x03" + b"\0" * 20)
    with pytest.raises(DataError, match="bad magic number 0x12340803"):
        read_idx(str(p))
    p.write_bytes(idx_bytes(np.zeros((4, 3, 3)))[:-5])
    with pytest.raises(DataError, match=r"the header says \(4, 3, 3\) .* truncated or damaged"):
        read_idx(str(p))
    p.write_bytes(idx_bytes(np.zeros((4, 3))))
    with pytest.raises(DataError, match="expected an IDX file of 3 dimensions, got 2"):
        read_idx(str(p), 3)
    write_idx(str(tmp_path / "m"), np.zeros((5, 2, 2)), np.zeros(4))
    with pytest.raises(DataError, match="5 images but 4 labels"):
        load_idx(str(tmp_path / "m"))
    with pytest.raises(DataError, match="no such file"):
        load_idx(str(tmp_path / "missing"))


def test_npz_source(tmp_path):
    np.savez(tmp_path / "d.npz", data=np.ones((3, 4, 4), np.uint8), label=[0, 1, 2])
    ds = load_npz(str(tmp_path / "d.npz"))
    assert ds.images.shape == (3, 1, 4, 4) and ds.labels.dtype == np.float32
    np.savez(tmp_path / "bad.npz", data=np.ones((3, 4, 4)))
    with pytest.raises(DataError, match="missing array"):
        load_npz(str(tmp_path / "bad.npz"))


def _transform(phase, **kw):
    p = TRANSFORM.parse(LDict(kw), Problems(), None, "")
    return Transformer(p, phase, (2, 6, 6))


def test_transform_semantics():
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (8, 2, 6, 6)).astype(np.uint8)
    t = _transform("TEST", scale=0.5, mean_value=[10, 20], crop_size=4)
    out = np.empty((8, 2, 4, 4), np.float32)
    t(raw, out, np.random.default_rng(1))
    ref = (raw.astype(np.float32) - np.array([10, 20], np.float32).reshape(1, 2, 1, 1)) * 0.5
    np.testing.assert_array_equal(out, ref[:, :, 1:5, 1:5])          # centre crop in TEST
    t = _transform("TRAIN", crop_size=4, mirror=True)
    out = np.empty((8, 2, 4, 4), np.float32)
    r = np.random.default_rng(5)
    t(raw, out, r)
    r = np.random.default_rng(5)
    hs, ws, flips = r.integers(0, 3, 8), r.integers(0, 3, 8), r.random(8) < 0.5
    for i in range(8):
        crop = raw[i, :, hs[i]:hs[i] + 4, ws[i]:ws[i] + 4].astype(np.float32)
        np.testing.assert_array_equal(out[i], crop[..., ::-1] if flips[i] else crop)
    assert 0 < flips.sum() < 8
    t = _transform("TEST", mirror=True)                               # no mirror in TEST
    out = np.empty((8, 2, 6, 6), np.float32)
    t(raw, out, np.random.default_rng(0))
    np.testing.assert_array_equal(out, raw)


def _net(tmp_path, shuffle=True, batch=10, seed=3, source="d.npz", n=35):
    np.savez(tmp_path / "d.npz", data=np.arange(n * 4, dtype=np.uint8).reshape(n, 1, 2, 2), label=np.arange(n))
    (tmp_path / "net.yaml").write_text(
        "layers:\n  - {name: d, type: Data, top: [data, label], "
        f"data_param: {{source: {source}, batch_size: {batch}, shuffle: {str(shuffle).lower()}}}}}\n")
    return netcli.Net(str(tmp_path / "net.yaml"), phase="TRAIN", seed=seed)


def _labels(net, k):
    out = []
    for _ in range(k):
        net.forward()
        out.append(net.blobs["label"].data.astype(int).copy())
    return out


def test_epochs_wrap_and_shuffle_deterministically(tmp_path):
    a, b = _net(tmp_path), _net(tmp_path)
    la, lb = _labels(a, 7), _labels(b, 7)
    assert all(np.array_equal(x, y) for x, y in zip(la, lb))
    flat = np.concatenate(la)
    for e in range(2):     # every epoch visits every sample once, in a new order
        assert sorted(flat[e * 35:(e + 1) * 35]) == list(range(35))
    assert not np.array_equal(flat[:35], flat[35:70])
    c = _net(tmp_path, seed=4)
    assert not np.array_equal(np.concatenate(_labels(c, 3)), flat[:30])
    plain = np.concatenate(_labels(_net(tmp_path, shuffle=False), 4))
    np.testing.assert_array_equal(plain, np.arange(40) % 35)


def test_data_state_continues_exactly(tmp_path):
    a = _net(tmp_path)
    first = _labels(a, 4)
    state = a.get_state()
    rest = _labels(a, 5)
    b = _net(tmp_path, seed=99)
    b.set_state(state)
    assert all(np.array_equal(x, y) for x, y in zip(rest, _labels(b, 5)))
    assert first


def test_loader_error_reaches_main_thread(tmp_path, monkeypatch):
    net = _net(tmp_path)
    layer = net.data_layers()[0]

    def broken(k, data, label):
        raise ValueError("disk on fire")
    monkeypatch.setattr(layer, "make_batch", broken)
    with pytest.raises(NetcliError, match="data layer 'd': ValueError: disk on fire"):
        net.forward()


def test_bad_source_is_a_config_error(tmp_path):
    with pytest.raises(netcli.ConfigError, match="layer 'd' \\(Data\\): field 'data_param.source': .*nope.npz"):
        _net(tmp_path, source="nope.npz")


# -- fetcher ---------------------------------------------------------------------------------------
@pytest.fixture
def fake_mnist(monkeypatch, tmp_path):
    rng = np.random.default_rng(0)
    files = {}
    for split, n in (("train", 12), ("t10k", 6)):
        files[f"{split}-images-idx3-ubyte.gz"] = gzip.compress(idx_bytes(rng.integers(0, 256, (n, 28, 28))))
        files[f"{split}-labels-idx1-ubyte.gz"] = gzip.compress(idx_bytes(rng.integers(0, 10, n)))
    good = Server(files)
    entry = datasets.NamedDataset(
        "mnist", mirrors=(good.url,),
        files=tuple(datasets.RemoteFile(k, hashlib.md5(v).hexdigest()) for k, v in files.items()),
        splits={"train": "train", "test": "t10k"}, embedded="mnist_5k.npz")
    monkeypatch.setitem(datasets.DATASETS, "mnist", entry)
    monkeypatch.setenv("NETCLI_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("NETCLI_OFFLINE", raising=False)
    yield entry, files, good
    good.close()


def test_fetch_downloads_and_verifies(fake_mnist, tmp_path):
    entry, files, good = fake_mnist
    old = os.umask(0o022)
    try:
        ds = datasets.load_named("mnist:train")
    finally:
        os.umask(old)
    assert ds.images.shape == (12, 1, 28, 28)
    assert sorted(os.listdir(tmp_path / "data" / "mnist")) == sorted(files)
    for f in files:                                   # the user's umask, not mkstemp's 0600
        assert os.stat(tmp_path / "data" / "mnist" / f).st_mode & 0o777 == 0o644
    assert datasets.load_named("mnist:test").images.shape == (6, 1, 28, 28)


def test_fetch_rejects_corrupt_and_dropped_files(fake_mnist, tmp_path):
    entry, files, good = fake_mnist
    corrupt = dict(files)
    corrupt["train-images-idx3-ubyte.gz"] = b"\x1f\x8b" + b"garbage"
    bad = Server(corrupt)
    dropped = Server(files, truncate={"train-images-idx3-ubyte.gz"})
    try:
        folder = str(tmp_path / "f")
        with pytest.raises(DataError) as e:
            datasets.fetch("mnist", folder, mirrors=(bad.url, dropped.url))
        msg = str(e.value)
        assert "checksum mismatch" in msg and "connection closed after" in msg
        assert "train-images-idx3-ubyte.gz" not in os.listdir(folder)
        assert not [f for f in os.listdir(folder) if f.endswith((".part", ".tmp"))]      # no partial file left
        datasets.fetch("mnist", folder, mirrors=(bad.url, dropped.url, good.url))   # falls through to a good mirror
        assert sorted(os.listdir(folder)) == sorted(files)
    finally:
        bad.close()
        dropped.close()


def test_offline_falls_back_to_embedded_without_a_warning(monkeypatch, tmp_path, capsys):
    """NETCLI_OFFLINE=1 chose the embedded subset: no warning (issue 24)."""
    monkeypatch.setenv("NETCLI_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("NETCLI_OFFLINE", "1")
    monkeypatch.setattr(datasets.log, "_warned", set())
    tr = datasets.load_named("mnist:train")
    te = datasets.load_named("mnist:test")
    assert capsys.readouterr().err == ""
    assert tr.images.shape == (4000, 1, 28, 28) and te.images.shape == (1000, 1, 28, 28)
    assert np.bincount(tr.labels.astype(int)).tolist() == [400] * 10
    assert np.bincount(te.labels.astype(int)).tolist() == [100] * 10
    assert tr.images.dtype == np.uint8 and tr.images.max() > 200


def test_lenet_trains_on_embedded_subset(tmp_path):
    """300 iterations of Caffe's LeNet solver on the embedded MNIST subset: TEST accuracy > 0.9."""
    s = netcli.Solver("configs/lenet_solver.yaml", max_iter=300, progress=False)
    s.prefix = str(tmp_path / "lenet")
    s.test_interval, s.test_iter = 300, 10
    s.solve()
    assert s.last_test["accuracy"] > 0.9, s.last_test


def test_optional_backends_say_what_to_install(tmp_path, monkeypatch):
    import sys
    from netcli.data.readers import load_hdf5, load_images
    monkeypatch.setitem(sys.modules, "h5py", None)        # import h5py now raises ImportError
    monkeypatch.setitem(sys.modules, "PIL", None)
    (tmp_path / "list.txt").write_text("a.h5\n")
    with pytest.raises(DataError, match=r"the hdf5 backend needs h5py: pip install 'netcli\[hdf5\]'"):
        load_hdf5(str(tmp_path / "list.txt"))
    with pytest.raises(DataError, match=r"the images backend needs Pillow: pip install 'netcli\[images\]'"):
        load_images(str(tmp_path))


def test_hdf5_backend(tmp_path):
    h5py = pytest.importorskip("h5py")
    for i in range(2):
        with h5py.File(tmp_path / f"p{i}.h5", "w") as h:
            h["data"] = np.full((3, 1, 4, 4), i, np.float32)
            h["label"] = np.arange(3) + i
    (tmp_path / "list.txt").write_text("p0.h5\np1.h5\n")
    from netcli.data.readers import load_hdf5
    ds = load_hdf5(str(tmp_path / "list.txt"))
    assert ds.images.shape == (6, 1, 4, 4) and ds.labels.tolist() == [0, 1, 2, 1, 2, 3]


def test_images_backend(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    for c, v in (("cat", 10), ("dog", 200)):
        (tmp_path / c).mkdir()
        for i in range(2):
            Image.fromarray(np.full((5, 6, 3), v + i, np.uint8)).save(tmp_path / c / f"{i}.png")
    from netcli.data.readers import load_images
    ds = load_images(str(tmp_path))
    assert ds.images.shape == (4, 3, 5, 6) and ds.labels.tolist() == [0, 0, 1, 1] and ds.classes == ["cat", "dog"]


def test_data_fetch_command(fake_mnist, tmp_path):
    from click.testing import CliRunner
    from netcli.cli import cli
    r = CliRunner().invoke(cli, ["data", "fetch", "mnist", "--dir", str(tmp_path / "m")], obj={})
    assert r.exit_code == 0, r.output
    assert "mnist: files in" in r.output and len(os.listdir(tmp_path / "m")) == 4
    r = CliRunner().invoke(cli, ["data", "fetch", "cifar"], obj={})
    assert r.exit_code == 1 and "unknown dataset 'cifar'" in r.output


# -- damaged and hostile data files (issue 10): each is one error naming the file -------------------
NET_ON = """name: d
layers:
  - {{name: data, type: Data, top: [data, label], transform_param: {{scale: 0.1{extra}}},
     data_param: {{source: {source}, batch_size: 4}}}}
  - {{name: ip, type: InnerProduct, bottom: data, top: ip, inner_product_param: {{num_output: 3}}}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}}
"""


def net_error(tmp_path, source="d.npz", extra="", folder=None):
    from netcli.layers.data import _CACHE
    _CACHE.clear()
    folder = folder or tmp_path
    (folder / "net.yaml").write_text(NET_ON.format(source=source, extra=extra))
    with pytest.raises(NetcliError) as e:
        netcli.Net(str(folder / "net.yaml"), phase="TRAIN")
    return str(e.value)


def lying_header_npz():
    """A well-formed zip (right CRCs) whose data header claims 10^9 images."""
    import io
    import zipfile
    npy = io.BytesIO()
    np.save(npy, np.zeros((8, 1, 4, 4), np.uint8))
    lie = npy.getvalue().replace(b"(8, 1, 4, 4)", b"(1000000000, 1, 4, 4)")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data.npy", lie)
        z.writestr("label.npy", b"")
    return buf.getvalue()


def good_npz(n=8):
    import io
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    np.savez(buf, data=rng.integers(0, 255, (n, 1, 4, 4)).astype(np.uint8), label=rng.integers(0, 3, n))
    return buf.getvalue()


@pytest.mark.parametrize("mangle,expected", [
    (lambda raw: raw[:len(raw) // 2], "damaged or not a dataset file"),
    (lambda raw: raw[:60] + bytes([raw[60] ^ 0xFF]) + raw[61:], "damaged or not a dataset file|damaged file"),
    (lambda raw: b"", "the dataset file is empty"),
    (lambda raw: b"\x93NUMPY" + raw[6:], "a single .npy array, not an .npz archive"),
    (lambda raw: raw.replace(b"(8, 1, 4, 4)", b"(10**9,1,4,4)"[:12]), "damaged"),
    (lambda raw: lying_header_npz(), r"claims shape \(1000000000, 1, 4, 4\) .* damaged file"),
])
def test_damaged_npz_is_one_error(tmp_path, mangle, expected):
    import re
    (tmp_path / "d.npz").write_bytes(mangle(good_npz()))
    msg = net_error(tmp_path)
    assert "d.npz" in msg and re.search(expected, msg), msg


def test_npy_named_npz(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((2, 1, 4, 4)))
    os.rename(tmp_path / "x.npy", tmp_path / "d.npz")
    assert "a single .npy array, not an .npz archive" in net_error(tmp_path)


def test_corrupt_gzip_idx_and_bad_dims(tmp_path):
    images, labels = np.zeros((4, 3, 3), np.uint8) + 1, np.arange(4) % 3
    write_idx(str(tmp_path / "g"), images, labels, gz=True)
    raw = (tmp_path / "g-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "g-images-idx3-ubyte.gz").write_bytes(raw[:12] + bytes(8) + raw[20:])
    assert "not a valid gzip file" in net_error(tmp_path, "g")
    for dims, expected in (((64, -28, -28), "must all be positive"), ((-1, 3, 3), "must all be positive"),
                           ((10 ** 9, 3, 3), r"the header says \(1000000000, 3, 3\)")):
        head = bytes([0, 0, 8, 3]) + np.asarray(dims, ">i4").tobytes()
        (tmp_path / "h-images-idx3-ubyte").write_bytes(head + images.tobytes())
        (tmp_path / "h-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
        import re
        msg = net_error(tmp_path, "h")
        assert re.search(expected, msg), msg


def test_zero_size_images_and_empty_mean_file(tmp_path):
    np.savez(tmp_path / "d.npz", data=np.zeros((4, 1, 0, 4), np.uint8), label=np.zeros(4))
    assert "holds no samples or empty images" in net_error(tmp_path)
    np.savez(tmp_path / "d.npz", data=np.zeros((4, 1, 4, 4), np.uint8), label=np.zeros(4))
    np.savez(tmp_path / "mean.npz")
    assert "the .npz holds no arrays" in net_error(tmp_path, extra=", mean_file: mean.npz")


@pytest.mark.parametrize("labels,expected", [
    ([0, 1, 2.5, 0], "label 2.5 of sample 2 is not a whole number"),
    ([0, -1, 2, 0], "label -1 of sample 1 is outside \\[0, 3\\)"),
    ([0, 1, 2, 7], "label 7 of sample 3 is outside \\[0, 3\\)"),
    ([0, np.nan, 2, 0], "label of sample 1 is not a finite number"),
])
def test_labels_must_be_class_indices(tmp_path, labels, expected):
    import re
    np.savez(tmp_path / "d.npz", data=np.zeros((4, 1, 4, 4), np.uint8), label=np.asarray(labels))
    msg = net_error(tmp_path)
    assert re.search(expected, msg) and "layer 'loss' (SoftmaxWithLoss)" in msg or "finite" in msg, msg


def test_relative_paths_resolve_next_to_the_net_then_cwd(tmp_path, monkeypatch):
    from netcli.layers.data import _CACHE
    sub = tmp_path / "configs"
    sub.mkdir()
    write_idx(str(sub / "digits"), np.ones((4, 4, 4), np.uint8), np.arange(4) % 3)
    (sub / "net.yaml").write_text(NET_ON.format(source="digits", extra=""))
    monkeypatch.chdir(tmp_path)                       # not the net's folder: found next to the net
    _CACHE.clear()
    assert netcli.Net(str(sub / "net.yaml"), phase="TRAIN").data_size() == 4
    msg = net_error(tmp_path, "nodigits", folder=sub)
    assert "no such IDX dataset" in msg and "next to the config file and in the working directory" in msg
    assert str(sub / "nodigits") in msg and str(tmp_path / "nodigits") in msg


def test_hdf5_mixed_shapes_and_string_labels(tmp_path):
    h5py = pytest.importorskip("h5py")
    for name, shape in (("a.h5", (2, 1, 4, 4)), ("b.h5", (2, 1, 5, 5))):
        with h5py.File(tmp_path / name, "w") as h:
            h["data"], h["label"] = np.zeros(shape), np.zeros(2)
    (tmp_path / "list.txt").write_text("a.h5\nb.h5\n")
    assert "every file must hold one sample shape" in net_error(tmp_path, "list.txt")
    with h5py.File(tmp_path / "b.h5", "w") as h:
        h["data"], h["label"] = np.zeros((2, 1, 4, 4)), np.array([b"x", b"y"])
    assert "labels must be numbers" in net_error(tmp_path, "list.txt")


def test_image_decompression_bomb(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    (tmp_path / "imgs" / "a").mkdir(parents=True)
    Image.new("L", (4, 4)).save(tmp_path / "imgs" / "a" / "x.png")
    raw = bytearray((tmp_path / "imgs" / "a" / "x.png").read_bytes())
    raw[16:24] = np.asarray([20000, 20000], ">u4").tobytes()        # IHDR width, height
    (tmp_path / "imgs" / "a" / "x.png").write_bytes(bytes(raw))
    assert "cannot read image" in net_error(tmp_path, "imgs")


def test_a_failed_download_is_not_retried_by_every_command(fake_mnist, monkeypatch, capsys):
    """Offline without NETCLI_OFFLINE: the first command tries the mirrors and falls back; the
    next ones do not wait out the mirrors again (for an hour), and the warning says how to fetch."""
    entry, files, good = fake_mnist
    hits = []
    empty = Server({})                                # every file: 404
    real = empty.httpd.RequestHandlerClass.do_GET

    def counting(self):
        hits.append(self.path)
        real(self)
    empty.httpd.RequestHandlerClass.do_GET = counting
    try:
        monkeypatch.setitem(datasets.DATASETS, "mnist", datasets.NamedDataset(
            entry.name, (empty.url,), entry.files, entry.splits, entry.embedded))
        monkeypatch.setattr(datasets.log, "_warned", set())
        assert datasets.load_named("mnist:train").images.shape == (4000, 1, 28, 28)
        first = len(hits)
        assert first >= 1
        datasets.load_named("mnist:test")
        assert len(hits) == first                     # not tried again
        err = capsys.readouterr().err.splitlines()
        folder = os.path.join(os.environ["NETCLI_DATA"], "mnist")
        assert len(err) == 1 and len(err[0]) - len(folder) < 200, err     # once, and short (issue 24)
        assert err[0].startswith("WARNING: no MNIST in ") and "could not download" in err[0]
        assert err[0].endswith("using the embedded subset; `netcli data fetch mnist` gets the full set")
        with pytest.raises(DataError):                # an explicit fetch always tries
            datasets.fetch("mnist")
        assert len(hits) > first
    finally:
        empty.close()
