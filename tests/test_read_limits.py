"""Readers of untrusted files: nothing allocated before the declared shape is checked against
what the net needs, and only regular files are opened (a FIFO is refused, never waited on)."""
import os
import threading

import numpy as np
import pytest

from netcli.errors import NetcliError
from netcli.layers.base import LayerError

UNTRUSTED = (NetcliError, LayerError)      # what a reader may raise: one line, file named


def npy_header_only(path, shape, dtype="<f8"):
    """An .npy file whose header declares `shape` but that holds 64 bytes of data."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
        f.write(b"\0" * 64)


def test_mean_npy_declaring_a_huge_array_is_refused_before_allocating(tmp_path):
    from netcli.layers.data import _load_mean
    path = str(tmp_path / "mean.npy")
    npy_header_only(path, (3, 28, 28 * 10 ** 8))            # 1.7 TiB declared
    with pytest.raises(UNTRUSTED, match=r"shape \(3, 28, 2800000000\), expected \(3, 28, 28\)"):
        _load_mean(path, (3, 28, 28))
    with pytest.raises(UNTRUSTED, match=r"expected \(1, any, any\)"):
        _load_mean(path, (1, None, None))


def test_mean_npy_of_any_size_for_a_window_layer(tmp_path):
    from netcli.layers.data import _load_mean
    np.save(tmp_path / "mean.npy", np.ones((3, 5, 6), np.float32))
    assert _load_mean(str(tmp_path / "mean.npy"), (3, None, None)).shape == (3, 5, 6)


def test_binaryproto_mean_of_another_shape_is_not_decoded(tmp_path, monkeypatch):
    from netcli.caffe import caffemodel
    from netcli.layers.data import _load_mean
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(caffemodel.blob_bytes(np.ones((1, 3, 8, 8), np.float32)))
    assert _load_mean(str(path), (3, 8, 8)).shape == (3, 8, 8)
    monkeypatch.setattr(caffemodel.Blob, "array", property(lambda b: pytest.fail("decoded before the check")))
    with pytest.raises(UNTRUSTED, match=r"shape \(3, 8, 8\), expected \(3, 4, 4\)"):
        _load_mean(str(path), (3, 4, 4))


def _returns_quickly(fn, path, seconds=5):
    """fn(path) in a thread; whether it returned (or raised) within `seconds`. A reader left
    blocked on the FIFO is released by opening it for writing."""
    done = threading.Event()
    errors = []

    def run():
        try:
            fn(path)
        except Exception as e:          # the clean error is what we want
            errors.append(e)
        finally:
            done.set()
    threading.Thread(target=run, daemon=True).start()
    ok = done.wait(seconds)
    if not ok:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        done.wait(seconds)
    return ok, errors


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("name,reader", [
    ("w.npz", lambda p: __import__("netcli.io.npzfile", fromlist=["read_npz"]).read_npz(p)),
    ("w.caffemodel", lambda p: __import__("netcli.caffe.caffemodel", fromlist=["x"]).read_caffemodel(p)),
    ("mean.npy", lambda p: __import__("netcli.layers.data", fromlist=["x"])._load_mean(p, (1, 2, 2))),
    ("mean.binaryproto", lambda p: __import__("netcli.layers.data", fromlist=["x"])._load_mean(p, (1, 2, 2))),
])
def test_a_fifo_named_like_a_weights_or_mean_file_is_refused_not_waited_on(tmp_path, name, reader):
    path = str(tmp_path / name)
    os.mkfifo(path)
    ok, errors = _returns_quickly(reader, path)
    assert ok, f"reading the FIFO {name} blocked"
    assert len(errors) == 1 and isinstance(errors[0], UNTRUSTED), errors
    assert "not a regular file" in str(errors[0])


def test_a_solver_state_is_checked_against_the_nets_history_shapes_before_inflating(tmp_path):
    """A deflated history (or unknown) entry of 64 MB is refused from its header: never inflated."""
    import tracemalloc
    import zipfile

    import netcli
    from tinynet import make_tiny
    s = netcli.Solver(make_tiny(tmp_path, max_iter=2, test_interval=0, snapshot=2), progress=False)
    s.solve()
    state = str(tmp_path / "snaps" / "tiny_iter_2.solverstate.npz")
    big = np.zeros(16 * 2 ** 20, np.float32)
    for name in ("history/0", "junk"):
        with zipfile.ZipFile(state) as z:
            entries = {n[:-4]: np.load(z.open(n)) for n in z.namelist()}
        entries[name] = big
        hostile = str(tmp_path / "snaps" / f"hostile_{name.replace('/', '_')}.solverstate.npz")
        np.savez_compressed(hostile, **entries)
        fresh = netcli.Solver(make_tiny(tmp_path, max_iter=4, test_interval=0, snapshot=2), progress=False)
        tracemalloc.start()
        try:
            if name == "junk":
                fresh.restore(hostile)           # an entry netcli does not know is not read at all
            else:
                with pytest.raises(NetcliError, match="the saved history does not fit this net"):
                    fresh.restore(hostile)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < big.nbytes / 4, f"{name}: {peak:,} bytes allocated"


def test_a_window_file_with_a_huge_coordinate_is_one_line(tmp_path):
    from netcli.layers.window_data import read_window_file
    path = tmp_path / "windows.txt"
    path.write_text("# 0\nimg.png\n3\n8\n8\n1\n1 0.9 0 0 " + "9" * 30 + " 7\n")
    with pytest.raises(NetcliError, match=r"windows.txt:7: expected x2, got '9999"):
        read_window_file(str(path), "", 0.5, 0.5)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("reader", [
    lambda p: __import__("netcli.predict", fromlist=["x"]).read_labels(p),
    lambda p: __import__("netcli.layers.window_data", fromlist=["x"]).read_window_file(p, "", 0.5, 0.5),
    lambda p: __import__("netcli.data.readers", fromlist=["x"]).load_image_list(p),
])
def test_a_fifo_given_as_a_list_or_labels_file_is_refused_not_waited_on(tmp_path, reader):
    pytest.importorskip("PIL")
    path = str(tmp_path / "list.txt")
    os.mkfifo(path)
    ok, errors = _returns_quickly(reader, path)
    assert ok, "reading the FIFO blocked"
    assert len(errors) == 1 and isinstance(errors[0], UNTRUSTED) and "not a regular file" in str(errors[0]), errors
