"""`netcli data convert-imageset` (Caffe's convert_imageset): its databases are read by netcli's
Caffe LMDB/LevelDB reader and decode to the source images; keys, shuffle, grey, resize, encoded
and check_size as Caffe's; every bad input one line with nothing left behind; Caffe's name works."""
import gc
import os
import time

import numpy as np
import pytest
from click.testing import CliRunner

from netcli.cli import caffe_flags, cli
from netcli.data.convert_imageset import convert_imageset, read_list
from netcli.data.readers import load_db
from netcli.data.sources import DataError

PIL = pytest.importorskip("PIL")
lmdb = pytest.importorskip("lmdb")
from PIL import Image  # noqa: E402
from image_files import bgr, make_images, write_list  # noqa: E402


def run(*args):
    return CliRunner().invoke(cli, caffe_flags(args), obj={})


def keys(db):
    env = lmdb.open(db, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            return [bytes(k).decode() for k, _ in txn.cursor()]
    finally:
        env.close()


def leftovers(folder):
    return [f for f in os.listdir(folder) if f.endswith(".tmp")]


def test_raw_pngs_decode_to_the_source_images_in_caffes_order(tmp_path):
    lines, arrays = make_images(tmp_path / "img")
    listfile = write_list(tmp_path / "list.txt", lines)
    r = run("data", "convert-imageset", str(tmp_path / "img"), listfile, str(tmp_path / "db"))
    assert r.exit_code == 0, r.output
    assert "Wrote " in r.output and "6 images (LMDB)" in r.output
    ds = load_db(str(tmp_path / "db"))
    assert ds.images.dtype == np.uint8 and ds.images.shape == (6, 3, 7, 9) and ds.colors == "BGR"
    for i, a in enumerate(arrays):
        np.testing.assert_array_equal(ds.images[i], bgr(a))
    assert ds.labels.tolist() == [i % 3 for i in range(6)]
    assert keys(str(tmp_path / "db")) == [f"{i:08d}_{line.rpartition(' ')[0]}" for i, line in enumerate(lines)]
    assert leftovers(tmp_path) == []


def test_datum_fields_are_caffes(tmp_path):
    """A raw Datum as Caffe writes it, parsed by protobuf's own caffe_pb2 (when installed)."""
    caffe_pb2 = pytest.importorskip("netcli.caffe.proto.caffe_pb2")
    lines, arrays = make_images(tmp_path / "img", n=2)
    convert_imageset(str(tmp_path / "img"), write_list(tmp_path / "l.txt", lines), str(tmp_path / "db"))
    env = lmdb.open(str(tmp_path / "db"), readonly=True, lock=False)
    with env.begin() as txn:
        d = caffe_pb2.Datum()
        d.ParseFromString(txn.get(f"00000001_{lines[1].rpartition(' ')[0]}".encode()))
    env.close()
    assert (d.channels, d.height, d.width, d.label, d.encoded) == (3, 7, 9, 1, False)
    assert d.data == bgr(arrays[1]).tobytes()


def test_shuffle_is_seeded(tmp_path):
    lines, arrays = make_images(tmp_path / "img", n=12)
    listfile = write_list(tmp_path / "list.txt", lines)
    orders = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        convert_imageset(str(tmp_path / "img"), listfile, str(tmp_path / name), shuffle=True, seed=seed)
        orders.append([k.partition("_")[2] for k in keys(str(tmp_path / name))])
    assert orders[0] == orders[1] != orders[2]
    assert sorted(orders[0]) == sorted(line.rpartition(" ")[0] for line in lines)
    assert orders[0] != [line.rpartition(" ")[0] for line in lines]
    ds = load_db(str(tmp_path / "a"))                  # each image keeps its own label
    for k, img, label in zip(orders[0], ds.images, ds.labels):
        i = int(k.split()[-1].split(".")[0])
        np.testing.assert_array_equal(img, bgr(arrays[i]))
        assert label == i % 3


def test_gray_and_resize(tmp_path):
    lines, arrays = make_images(tmp_path / "img", n=3)
    r = run("data", "convert-imageset", str(tmp_path / "img"), write_list(tmp_path / "l.txt", lines),
            str(tmp_path / "db"), "--gray", "--resize_height", "4", "--resize_width", "5")
    assert r.exit_code == 0, r.output
    ds = load_db(str(tmp_path / "db"))
    assert ds.images.shape == (3, 1, 4, 5)
    for img, a in zip(ds.images, arrays):
        want = np.asarray(Image.fromarray(a).convert("L").resize((5, 4), Image.BILINEAR))
        np.testing.assert_array_equal(img, want[None])


def test_encoded_keeps_the_files_bytes_and_decodes_as_pil(tmp_path):
    caffe_pb2 = pytest.importorskip("netcli.caffe.proto.caffe_pb2")
    lines, _ = make_images(tmp_path / "img", n=4, ext="jpg")
    r = run("data", "convert-imageset", str(tmp_path / "img"), write_list(tmp_path / "l.txt", lines),
            str(tmp_path / "db"), "--encoded")
    assert r.exit_code == 0, r.output
    ds = load_db(str(tmp_path / "db"))
    env = lmdb.open(str(tmp_path / "db"), readonly=True, lock=False)
    with env.begin() as txn:
        values = [bytes(v) for _, v in txn.cursor()]
    env.close()
    for line, img, value in zip(lines, ds.images, values):
        path = tmp_path / "img" / line.rpartition(" ")[0]
        d = caffe_pb2.Datum()
        d.ParseFromString(value)
        assert d.encoded and d.data == path.read_bytes()
        np.testing.assert_array_equal(img, bgr(np.asarray(Image.open(path).convert("RGB"))))


def test_encoded_resized_is_encoded_anew(tmp_path):
    lines, arrays = make_images(tmp_path / "img", n=2, ext="jpg")
    convert_imageset(str(tmp_path / "img"), write_list(tmp_path / "l.txt", lines), str(tmp_path / "db"),
                     resize=(3, 4), encoded=True, encode_type="png")
    ds = load_db(str(tmp_path / "db"))
    for line, img in zip(lines, ds.images):
        im = Image.open(tmp_path / "img" / line.rpartition(" ")[0]).convert("RGB").resize((4, 3), Image.BILINEAR)
        np.testing.assert_array_equal(img, bgr(np.asarray(im)))     # PNG: lossless after the resize


def test_leveldb_backend(tmp_path):
    pytest.importorskip("plyvel")
    lines, arrays = make_images(tmp_path / "img", n=3)
    r = run("data", "convert-imageset", str(tmp_path / "img"), write_list(tmp_path / "l.txt", lines),
            str(tmp_path / "db"), "--backend", "leveldb")
    assert r.exit_code == 0, r.output
    ds = load_db(str(tmp_path / "db"), "LEVELDB")
    np.testing.assert_array_equal(ds.images, np.stack([bgr(a) for a in arrays]))
    from netcli.data.image_mean import compute_mean
    mean, n = compute_mean(str(tmp_path / "db"))                  # found as LevelDB by its CURRENT file
    np.testing.assert_allclose(mean, ds.images.astype(np.float64).mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize("module,extra", [("lmdb", "lmdb"), ("plyvel", "leveldb"), ("PIL", "images")])
def test_missing_extra_is_one_line(tmp_path, monkeypatch, module, extra):
    import sys
    lines, _ = make_images(tmp_path / "img", n=2)
    listfile = write_list(tmp_path / "l.txt", lines)
    monkeypatch.setitem(sys.modules, module, None)
    r = run("data", "convert-imageset", str(tmp_path / "img"), listfile, str(tmp_path / "db"),
            "--backend", "leveldb" if module == "plyvel" else "lmdb")
    assert f"pip install 'netcli[{extra}]'" in _one_error_line(r)
    assert sorted(os.listdir(tmp_path)) == ["img", "l.txt"]


def test_caffes_tool_name_and_flags(tmp_path):
    """`netcli convert_imageset -resize_height=4 ...` as a Caffe user types it."""
    lines, _ = make_images(tmp_path / "img", n=2)
    r = run("convert_imageset", "-resize_height=4", "-resize_width=4", "-shuffle", "-backend", "lmdb",
            str(tmp_path / "img") + "/", write_list(tmp_path / "l.txt", lines), str(tmp_path / "db"))
    assert r.exit_code == 0, r.output
    assert load_db(str(tmp_path / "db")).images.shape == (2, 3, 4, 4)


def _one_error_line(r):
    assert r.exit_code == 1, r.output
    lines = [line for line in r.output.splitlines() if line.startswith("netcli: error: ")]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    return lines[0]


@pytest.mark.parametrize("case,expected", [
    ("no list", "cannot read the image list"),
    ("bad line", "l.txt:2: expected '<image path> <integer label>', got 'cls1/img 1.png one'"),
    ("missing image", "l.txt:3: "),
    ("unreadable image", "l.txt:1: cannot read image"),
    ("other size", "l.txt:2: image cls1/img 1.png is 8x9x3, the first is 7x9x3 (--check_size"),
])
def test_bad_inputs_are_one_line_and_leave_nothing(tmp_path, case, expected):
    lines, _ = make_images(tmp_path / "img", n=3)
    if case == "bad line":
        lines[1] = lines[1].rpartition(" ")[0] + " one"
    elif case == "missing image":
        os.remove(tmp_path / "img" / lines[2].rpartition(" ")[0])
    elif case == "unreadable image":
        (tmp_path / "img" / lines[0].rpartition(" ")[0]).write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    elif case == "other size":
        Image.fromarray(np.zeros((8, 9, 3), np.uint8)).save(tmp_path / "img" / lines[1].rpartition(" ")[0])
    listfile = str(tmp_path / "l.txt") if case == "no list" else write_list(tmp_path / "l.txt", lines)
    r = run("data", "convert-imageset", str(tmp_path / "img"), listfile, str(tmp_path / "db"), "--check_size")
    assert expected in _one_error_line(r)
    assert not os.path.exists(tmp_path / "db") and leftovers(tmp_path) == []


def test_existing_db_is_refused_unless_overwrite(tmp_path):
    lines, arrays = make_images(tmp_path / "img", n=2)
    listfile = write_list(tmp_path / "l.txt", lines)
    db = str(tmp_path / "db")
    assert run("data", "convert-imageset", str(tmp_path / "img"), listfile, db).exit_code == 0
    r = run("data", "convert-imageset", str(tmp_path / "img"), listfile, db, "--gray")
    assert "db exists: give another name, or --overwrite" in _one_error_line(r)
    assert load_db(db).images.shape == (2, 3, 7, 9)                 # untouched
    r = run("data", "convert-imageset", str(tmp_path / "img"), listfile, db, "--gray", "--overwrite")
    assert r.exit_code == 0, r.output
    assert load_db(db).images.shape == (2, 1, 7, 9) and leftovers(tmp_path) == []
    (tmp_path / "notes").mkdir()                                    # not a database: never replaced
    (tmp_path / "notes" / "mine.txt").write_text("keep")
    r = run("data", "convert-imageset", str(tmp_path / "img"), listfile, str(tmp_path / "notes"), "--overwrite")
    assert "is not an LMDB database: not replacing it" in _one_error_line(r)
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep"


def test_symlinked_db_is_refused(tmp_path):
    lines, _ = make_images(tmp_path / "img", n=2)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "db")
    r = run("data", "convert-imageset", str(tmp_path / "img"), write_list(tmp_path / "l.txt", lines),
            str(tmp_path / "db"), "--overwrite")
    assert "symbolic link" in _one_error_line(r)
    assert os.listdir(tmp_path / "elsewhere") == []


def test_list_parser_is_linear(tmp_path):
    def timed(n):
        (tmp_path / "l.txt").write_text("".join(f"{'d/' * 20}img{i}.png {i}\n" for i in range(n)))
        best = float("inf")
        gc.disable()                           # the parser's own time, not collections of the session's objects
        try:
            for _ in range(3):                 # the best of three: a shared machine's pauses left out
                t = time.perf_counter()
                assert len(read_list(str(tmp_path / "l.txt"))) == n
                best = min(best, time.perf_counter() - t)
        finally:
            gc.enable()
        return best
    assert timed(100_000) / max(timed(10_000), 1e-4) < 30
    (tmp_path / "l.txt").write_text("a" + " " * 200_000 + "b\n")        # one long line: no backtracking
    t = time.perf_counter()
    with pytest.raises(DataError):
        read_list(str(tmp_path / "l.txt"))
    assert time.perf_counter() - t < 2


def test_lmdb_map_grows_and_batches_stay_bounded(tmp_path, monkeypatch):
    """A database larger than LMDB's first map (and than one transaction) is written whole."""
    from netcli.data import caffe_db
    monkeypatch.setattr(caffe_db, "MAP_START", 64 << 10)
    monkeypatch.setattr(caffe_db, "BATCH_BYTES", 20 << 10)
    lines, arrays = make_images(tmp_path / "img", n=40, size=(32, 32))
    convert_imageset(str(tmp_path / "img"), write_list(tmp_path / "l.txt", lines), str(tmp_path / "db"))
    ds = load_db(str(tmp_path / "db"))
    np.testing.assert_array_equal(ds.images, np.stack([bgr(a) for a in arrays]))
