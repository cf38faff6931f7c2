"""Issue 28, item 1: the streaming readers (netcli/data/readers.py, FileRows in sources.py) read
exactly the samples asked for, equal to the arrays the sources were written from (random data),
open only what they need, and name the file and record of a bad one when it is read."""
import io
import os

import numpy as np
import pytest

from netcli.data.sources import DataError, Dataset, FileRows, load_idx, load_npz

IDX = np.array([3, 0, 5, 5, 1, 6, 2])          # out of order, with a repeat


def write_idx(prefix, images, labels):
    with open(prefix + "-images-idx3-ubyte", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + np.array(images.shape, ">i4").tobytes() + images.tobytes())
    with open(prefix + "-labels-idx1-ubyte", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + np.array(labels.shape, ">i4").tobytes() + labels.tobytes())


def random_images(n=7, shape=(3, 6, 5), seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n,) + shape, dtype=np.uint8), rng.integers(0, 10, n).astype(np.float32)


def png(chw):
    from PIL import Image
    a = chw[0] if chw.shape[0] == 1 else chw[::-1].transpose(1, 2, 0)      # BGR (C, H, W) -> RGB (H, W, C)
    b = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(a)).save(b, "PNG")
    return b.getvalue()


def test_idx_is_read_by_rows_not_loaded_and_a_truncated_file_is_one_line(tmp_path):
    images, labels = random_images(9, (6, 5))
    write_idx(str(tmp_path / "t"), images, labels.astype(np.uint8))
    ds = load_idx(str(tmp_path / "t"))
    assert isinstance(ds.images, FileRows) and ds.shape == (1, 6, 5) and ds.dtype == np.uint8
    x, y = ds.read(IDX)
    np.testing.assert_array_equal(x[:, 0], images[IDX])
    np.testing.assert_array_equal(y, labels[IDX])
    part = ds.subset(np.array([8, 2, 4]), "part")
    np.testing.assert_array_equal(part.read(np.array([2, 0]))[0][:, 0], images[[4, 8]])
    path = str(tmp_path / "t-images-idx3-ubyte")
    os.truncate(path, os.path.getsize(path) - 30 * 3)       # shrinks under the open reader
    with pytest.raises(DataError, match=r"t-images-idx3-ubyte: ends before sample 8: the file was truncated"):
        ds.read(np.array([8]))


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_stored_is_read_by_rows_compressed_is_loaded(tmp_path, compressed):
    rng = np.random.default_rng(1)
    data, labels = rng.normal(size=(8, 2, 3, 4)), rng.integers(0, 5, 8)
    (np.savez_compressed if compressed else np.savez)(tmp_path / "d.npz", data=data, label=labels)
    ds = load_npz(str(tmp_path / "d.npz"))
    assert isinstance(ds.images, FileRows) != compressed
    x, y = ds.read(IDX)
    assert x.dtype == np.float32 and ds.shape == (2, 3, 4)
    np.testing.assert_array_equal(x, data[IDX].astype(np.float32))
    np.testing.assert_array_equal(y, labels[IDX])


def test_npz_rows_name_a_sample_that_is_not_finite(tmp_path):
    data = np.zeros((5, 1, 2, 2))
    data[3, 0, 1, 1] = np.inf
    np.savez(tmp_path / "d.npz", data=data, label=np.zeros(5))
    ds = load_npz(str(tmp_path / "d.npz"))
    ds.read(np.array([0, 1, 2]))
    with pytest.raises(DataError, match=r"d.npz: sample 3 holds a value that is not finite"):
        ds.read(np.array([1, 3]))


def test_hdf5_reader_reads_rows_across_files(tmp_path):
    h5py = pytest.importorskip("h5py")
    from netcli.data.readers import HDF5Reader
    rng = np.random.default_rng(2)
    data, labels = rng.normal(size=(7, 2, 3, 3)).astype(np.float32), rng.integers(0, 4, 7).astype(np.float32)
    for name, rows in (("a.h5", slice(0, 4)), ("b.h5", slice(4, 7))):
        with h5py.File(tmp_path / name, "w") as h:
            h["data"], h["label"] = data[rows], labels[rows]
    (tmp_path / "list.txt").write_text("a.h5\nb.h5\n")
    r = HDF5Reader(str(tmp_path / "list.txt"))
    assert len(r) == 7 and r.shape == (2, 3, 3)
    x, y = r.read(IDX)
    np.testing.assert_array_equal(x, data[IDX])
    np.testing.assert_array_equal(y, labels[IDX])
    np.testing.assert_array_equal(r.labels, labels)


def test_image_list_decodes_only_what_is_read_and_names_a_bad_line(tmp_path):
    pytest.importorskip("PIL")
    from netcli.data.readers import ImageListReader
    images, labels = random_images()
    lines = []
    for i, (a, label) in enumerate(zip(images, labels)):
        (tmp_path / f"{i}.png").write_bytes(png(a))
        lines.append(f"{i}.png {int(label)}")
    (tmp_path / "7.png").write_bytes(b"not an image")
    (tmp_path / "8.png").write_bytes(png(images[0][:, :4]))
    (tmp_path / "list.txt").write_text("\n".join(lines + ["7.png 1", "8.png 2"]) + "\n")
    r = ImageListReader(str(tmp_path / "list.txt"), str(tmp_path) + "/")    # the bad ones are not opened yet
    assert len(r) == 9 and r.shape == (3, 6, 5) and r.colors == "BGR"
    x, y = r.read(IDX)
    np.testing.assert_array_equal(x, images[IDX])
    np.testing.assert_array_equal(y, labels[IDX])
    with pytest.raises(DataError, match=r"list.txt:8: cannot read image .*7.png"):
        r.read(np.array([0, 7]))
    with pytest.raises(DataError, match=r"list.txt:9: image .*8.png: shape \(3, 4, 5\), the first record's is "
                                         r"\(3, 6, 5\).*give new_height and new_width"):
        r.read(np.array([8]))


def test_image_folder_reader(tmp_path):
    pytest.importorskip("PIL")
    from netcli.data.readers import ImageFolderReader
    images, _ = random_images(6)
    for i, a in enumerate(images):
        os.makedirs(tmp_path / f"c{i % 2}", exist_ok=True)
        (tmp_path / f"c{i % 2}" / f"{i}.png").write_bytes(png(a))
    r = ImageFolderReader(str(tmp_path))
    order = [0, 2, 4, 1, 3, 5]                  # class folders in order, files sorted
    x, y = r.read(np.arange(6))
    np.testing.assert_array_equal(x, images[order][:, ::-1])           # RGB as decoded
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 1, 1])


def write_lmdb(path, records):
    lmdb = pytest.importorskip("lmdb")
    env = lmdb.open(str(path), map_size=1 << 26)
    with env.begin(write=True) as txn:
        for i, value in enumerate(records):
            txn.put(f"{i:08d}".encode(), value)
    env.close()


def encoded_datum(chw, label):
    from netcli.caffe import wire
    from netcli.caffe.datum import DATA, ENCODED, LABEL
    return wire.put_bytes(DATA, png(chw)) + wire.put_varint(LABEL, label) + wire.put_varint(ENCODED, 1)


@pytest.mark.parametrize("encoded", [False, True])
def test_lmdb_reader_reads_datums_by_key_index(tmp_path, encoded):
    pytest.importorskip("lmdb")
    if encoded:
        pytest.importorskip("PIL")
    from netcli.caffe.datum import datum_bytes
    from netcli.data.readers import DBReader
    images, labels = random_images()
    write_lmdb(tmp_path / "db", [(encoded_datum if encoded else datum_bytes)(a, int(label))
                                 for a, label in zip(images, labels)])
    r = DBReader(str(tmp_path / "db"))
    assert len(r) == 7 and r.shape == (3, 6, 5) and r.labels is None and r.colors == "BGR"
    x, y = r.read(IDX)
    np.testing.assert_array_equal(x, images[IDX])
    np.testing.assert_array_equal(y, labels[IDX])


def test_lmdb_bad_record_is_named_when_read(tmp_path):
    pytest.importorskip("lmdb")
    from netcli.caffe.datum import datum_bytes
    from netcli.data.readers import DBReader
    images, _ = random_images(3)
    write_lmdb(tmp_path / "db", [datum_bytes(images[0], 1), datum_bytes(images[1][:, :3], 2), b"\xff\xff"])
    r = DBReader(str(tmp_path / "db"))
    r.read(np.array([0, 0]))
    with pytest.raises(DataError, match=r"db: record 1 \(key b'00000001'\): shape \(3, 3, 5\), the first record's is"):
        r.read(np.array([0, 1]))
    with pytest.raises(DataError, match=r"db: record 2 \(key b'00000002'\) is not a valid Datum"):
        r.read(np.array([2]))


def test_readers_travel_to_other_processes_without_their_handles(tmp_path):
    pytest.importorskip("lmdb")
    import pickle
    from netcli.caffe.datum import datum_bytes
    from netcli.data.readers import DBReader
    images, labels = random_images(4)
    write_lmdb(tmp_path / "db", [datum_bytes(a, int(b)) for a, b in zip(images, labels)])
    r = DBReader(str(tmp_path / "db"))
    r.read(np.array([1]))
    copy = pickle.loads(pickle.dumps(r))
    np.testing.assert_array_equal(copy.read(np.array([3, 2]))[0], images[[3, 2]])
    write_idx(str(tmp_path / "t"), images[:, 0], labels.astype(np.uint8))
    ds = load_idx(str(tmp_path / "t"))
    ds.read(np.array([0]))
    assert isinstance(pickle.loads(pickle.dumps(ds)), Dataset)


@pytest.mark.parametrize("shuffle", [False, True])
def test_data_layer_over_lmdb_gives_the_batches_of_the_same_data_in_memory(tmp_path, shuffle):
    """The Data layer streaming an LMDB (sequential, or netcli's index shuffle) gives the batches
    it gives from the same samples held in memory (a compressed .npz), crops and mirrors included."""
    pytest.importorskip("lmdb")
    from netcli import Net
    from netcli.caffe.datum import datum_bytes
    images, labels = random_images(11, (3, 8, 8), seed=5)
    write_lmdb(tmp_path / "db", [datum_bytes(a, int(b)) for a, b in zip(images, labels)])
    np.savez_compressed(tmp_path / "d.npz", data=images, label=labels)

    def batches(source):
        layer = {"name": "d", "type": "Data", "top": ["data", "label"],
                 "data_param": {"source": str(source), "batch_size": 4, "shuffle": shuffle, "rand_skip": 3},
                 "transform_param": {"crop_size": 6, "mirror": True, "mean_value": [10, 20, 30]}}
        net = Net({"name": "n", "layers": [layer]}, phase="TRAIN", seed=3)
        out = []
        for _ in range(5):                  # past the end of an epoch
            net.forward()
            out.append((net.blobs["data"].data.copy(), net.blobs["label"].data.copy()))
        return out

    for (a, la), (b, lb) in zip(batches(tmp_path / "db"), batches(tmp_path / "d.npz")):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(la, lb)


def test_a_bad_class_label_in_an_lmdb_is_named_when_its_batch_is_read(tmp_path):
    pytest.importorskip("lmdb")
    import netcli
    from netcli.caffe.datum import datum_bytes
    images, _ = random_images(6, (1, 4, 4))
    write_lmdb(tmp_path / "db", [datum_bytes(a, 12 if i == 4 else i % 3) for i, a in enumerate(images)])
    layers = [{"name": "d", "type": "Data", "top": ["data", "label"],
               "data_param": {"source": str(tmp_path / "db"), "batch_size": 2}},
              {"name": "ip", "type": "InnerProduct", "bottom": "data", "top": "ip", "inner_product_param": {"num_output": 3}},
              {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["ip", "label"], "top": "loss"}]
    net = netcli.Net({"name": "n", "layers": layers}, phase="TRAIN")
    net.forward()
    net.forward()
    with pytest.raises(netcli.errors.NetcliError, match=r"db: label 12 of sample 4 is outside \[0, 3\), but layer "
                                                        r"'loss' \(SoftmaxWithLoss\) reads labels as class indices"):
        net.forward()


def test_leveldb_reader_reads_datums_and_two_readers_share_the_locked_database(tmp_path):
    plyvel = pytest.importorskip("plyvel")
    from netcli.caffe.datum import datum_bytes
    from netcli.data.readers import DBReader
    images, labels = random_images()
    db = plyvel.DB(str(tmp_path / "ldb"), create_if_missing=True)
    for i, (a, label) in enumerate(zip(images, labels)):
        db.put(f"{i:08d}".encode(), datum_bytes(a, int(label)))
    db.close()
    first, second = DBReader(str(tmp_path / "ldb"), "LEVELDB"), DBReader(str(tmp_path / "ldb"), "LEVELDB")
    assert first.one_process and len(second) == 7
    for r in (first, second):               # LevelDB's LOCK allows one open per process: they share it
        x, y = r.read(IDX)
        np.testing.assert_array_equal(x, images[IDX])
        np.testing.assert_array_equal(y, labels[IDX])


def test_an_lmdb_is_closed_when_its_last_reader_goes(tmp_path):
    """Readers of one LMDB share one environment (lmdb allows one per process), which closes
    with the last of them: the user's own code can then open the database again."""
    lmdb = pytest.importorskip("lmdb")
    from netcli.caffe.datum import datum_bytes
    from netcli.data import readers
    images, labels = random_images()
    write_lmdb(tmp_path / "db", [datum_bytes(a, int(label)) for a, label in zip(images, labels)])
    a, b = readers.DBReader(str(tmp_path / "db")), readers.DBReader(str(tmp_path / "db"))
    with pytest.raises(lmdb.Error):
        lmdb.open(str(tmp_path / "db"), readonly=True)
    del a
    np.testing.assert_array_equal(b.read(IDX)[0], images[IDX])       # still open for b
    del b
    env = lmdb.open(str(tmp_path / "db"), readonly=True)
    env.close()
    readers.load_db(str(tmp_path / "db"))                             # a whole load closes it too
    lmdb.open(str(tmp_path / "db"), readonly=True).close()


def test_an_idx_header_whose_size_overflows_int64_is_refused(tmp_path):
    """dims whose product wraps around in int64 to the file's few bytes: the header check uses
    exact integers."""
    import struct
    path = tmp_path / "x-images-idx3-ubyte"
    path.write_bytes(b"\0\0\x08\x03" + struct.pack(">3i", 1824726041, 74342, 135984) + bytes(32))
    (tmp_path / "x-labels-idx1-ubyte").write_bytes(b"\0\0\x08\x01" + struct.pack(">i", 1824726041))
    with pytest.raises(DataError):
        load_idx(str(tmp_path / "x"))


def test_an_lmdb_of_empty_datums_is_one_line(tmp_path):
    pytest.importorskip("lmdb")
    from netcli.caffe import wire
    from netcli.caffe.datum import LABEL
    from netcli.data.readers import DBReader
    write_lmdb(tmp_path / "db", [wire.put_varint(LABEL, 1)] * 3)       # a label, no pixels
    with pytest.raises(DataError, match=r"record 0 .*an empty sample"):
        DBReader(str(tmp_path / "db"))


def test_force_color_decodes_a_grey_jpeg_among_colour_ones(tmp_path):
    """As Caffe's transform_param.force_color: an encoded LMDB of colour images with a grey one
    (as ImageNet has) trains with it, and stops with one line naming the record without it."""
    pytest.importorskip("lmdb")
    PIL = pytest.importorskip("PIL.Image")
    import netcli
    from netcli.caffe import wire
    from netcli.caffe.datum import DATA, ENCODED, LABEL
    rng = np.random.default_rng(0)
    records = []
    for i in range(6):
        b = io.BytesIO()
        a = rng.integers(0, 256, (8, 8) if i == 3 else (8, 8, 3), dtype=np.uint8)
        PIL.fromarray(a).save(b, "PNG")
        records.append(wire.put_bytes(DATA, b.getvalue()) + wire.put_varint(LABEL, i % 2) + wire.put_varint(ENCODED, 1))
    write_lmdb(tmp_path / "db", records)
    net = """name: n
layers:
  - {{name: data, type: Data, top: [data, label], transform_param: {{force_color: {fc}}},
     data_param: {{source: {db}, batch_size: 6, threads: 0}}}}
  - {{name: ip, type: InnerProduct, bottom: data, top: ip, inner_product_param: {{num_output: 2}}}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}}
"""
    for fc in ("false", "true"):
        (tmp_path / f"{fc}.yaml").write_text(net.format(fc=fc, db=tmp_path / "db"))
    n = netcli.Net(str(tmp_path / "true.yaml"), phase="TRAIN")
    n.forward()
    assert n.blobs["data"].shape == (6, 3, 8, 8)
    g = n.blobs["data"].data[3]
    assert np.array_equal(g[0], g[1]) and np.array_equal(g[1], g[2])       # the grey image in 3 channels
    del n
    n = netcli.Net(str(tmp_path / "false.yaml"), phase="TRAIN")
    with pytest.raises(netcli.NetcliError, match=r"record 3 .*shape \(1, 8, 8\)"):
        n.forward()
