"""A training iteration's rows handed back share by share (netcli/exec/release.py): the weights
are bit-identical with and without it and for any thread count; what it releases are the blobs
inside the last stretch, never the inputs, outputs or loss tops; the released rows read as zeros
afterwards (pages really returned); pycaffe's solver keeps its blobs."""
import numpy as np
import pytest

import netcli
from netcli.exec import release as release_mod

NET = """
name: branches
layers:
  - {name: mnist, type: Data, top: [data, label], transform_param: {scale: 0.00390625},
     data_param: {source: "mnist:train", batch_size: 64, shuffle: true}}
  - {name: conv1, type: Convolution, bottom: data, top: conv1,
     convolution_param: {num_output: 8, kernel_size: 3, weight_filler: {type: xavier}}}
  - {name: relu1, type: ReLU, bottom: conv1, top: conv1}
  - {name: a, type: Convolution, bottom: conv1, top: a, convolution_param: {num_output: 6, kernel_size: 3, pad: 1,
     weight_filler: {type: xavier}}}
  - {name: b, type: Convolution, bottom: conv1, top: b, convolution_param: {num_output: 6, kernel_size: 1,
     weight_filler: {type: xavier}}}
  - {name: cat, type: Concat, bottom: [a, b], top: cat}
  - {name: norm, type: LRN, bottom: cat, top: norm, lrn_param: {local_size: 3}}
  - {name: sum, type: Eltwise, bottom: [norm, cat], top: sum}
  - {name: pool, type: Pooling, bottom: sum, top: pool, pooling_param: {pool: MAX, kernel_size: 2, stride: 2}}
  - {name: drop, type: Dropout, bottom: pool, top: pool, dropout_param: {dropout_ratio: 0.3}}
  - {name: flat, type: Flatten, bottom: pool, top: flat}
  - {name: ip, type: InnerProduct, bottom: flat, top: ip, inner_product_param: {num_output: 10,
     weight_filler: {type: xavier}}}
  - {name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}
"""
SOLVER = """net: {net}
base_lr: 0.05
momentum: 0.9
lr_policy: fixed
max_iter: 100
random_seed: 5
"""

pytestmark = pytest.mark.skipif(not release_mod.available(), reason="releases pages on Linux only")


def solver(tmp_path, keep, monkeypatch):
    monkeypatch.setattr(release_mod, "MIN_SHARE_BYTES", 1)       # every blob of the stretch, small as they are
    monkeypatch.setattr(release_mod, "MIN_TOTAL_BYTES", 0)
    (tmp_path / "net.yaml").write_text(NET)
    (tmp_path / "solver.yaml").write_text(SOLVER.format(net=tmp_path / "net.yaml"))
    return netcli.Solver(str(tmp_path / "solver.yaml"), progress=False, log_path=False, release_rows=not keep)


def test_released_rows_change_no_weight_for_any_thread_count(tmp_path, monkeypatch, thread_count):
    got = []
    for keep, T in ((True, 2), (False, 1), (False, 2), (False, 3)):
        thread_count(T)
        s = solver(tmp_path, keep, monkeypatch)
        assert bool(s.net.executor.release) != keep
        s.step(6)
        got.append(s.net.param_data.copy())
    for g in got[1:]:
        assert np.array_equal(g, got[0])


def test_what_is_released_and_that_it_reads_as_zeros(tmp_path, monkeypatch):
    s = solver(tmp_path, False, monkeypatch)
    net = s.net
    freed = {addr for entries in net.executor.release.values() for addr, _ in entries}
    names = {name for name, b in net.blobs.items() for a in (b.data, b.diff)
             if a.__array_interface__["data"][0] in freed}
    assert {"conv1", "a", "b", "cat", "norm", "sum"} <= names
    assert not names & {"data", "label", "loss"}
    s.step(2)
    conv1 = net.blobs["conv1"].data
    page = release_mod.PAGE // conv1.itemsize
    flat = conv1.reshape(-1)
    start = -(-conv1.__array_interface__["data"][0] // release_mod.PAGE) * release_mod.PAGE
    first = (start - conv1.__array_interface__["data"][0]) // conv1.itemsize
    assert not flat[first:first + page].any()       # a whole page of the first share's rows: zeros
    kept = solver(tmp_path, True, monkeypatch)
    kept.step(2)
    assert kept.net.blobs["conv1"].data.any() and not kept.net.executor.release


def test_pycaffe_solvers_keep_their_blobs(tmp_path, monkeypatch):
    monkeypatch.setattr(release_mod, "MIN_SHARE_BYTES", 1)
    monkeypatch.setattr(release_mod, "MIN_TOTAL_BYTES", 0)
    monkeypatch.setattr(release_mod, "memory_available", lambda: 1)    # "auto" releases: memory is short
    (tmp_path / "net.yaml").write_text(NET)
    (tmp_path / "solver.yaml").write_text(SOLVER.format(net=tmp_path / "net.yaml"))
    from netcli import caffe
    s = caffe.SGDSolver(str(tmp_path / "solver.yaml"))
    assert not s.native.net.executor.release
    s.step(1)
    assert s.net.blobs["conv1"].data.any()


def test_not_on_other_systems(monkeypatch):
    monkeypatch.setattr(release_mod, "_MADVISE", None)
    assert not release_mod.available()
    assert release_mod.release_plan(None, (), (), {}, 1, 1) == {}


def test_small_nets_release_nothing(tmp_path):
    import os
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    (tmp_path / "solver.yaml").write_text(SOLVER.format(net=os.path.join(root, "configs", "lenet_train_test.yaml")))
    s = netcli.Solver(str(tmp_path / "solver.yaml"), progress=False, log_path=False)
    assert s.net.release_rows and not s.net.executor.release


def test_clear_zeroes_every_element_and_releases_the_whole_pages():
    base = np.ones(300_000, np.float32)
    for lo, hi in ((3, 300_000), (0, 1), (5, 1000), (1001, 299_999), (0, 300_000)):
        base[...] = 1.0
        release_mod.clear(base[lo:hi])
        assert not base[lo:hi].any()
        assert base[:lo].all() and base[hi:].all()           # nothing outside the array


def test_the_solver_releases_only_where_memory_is_short(tmp_path, monkeypatch):
    """Fresh pages cost time: the Solver's "auto" keeps a net's rows unless the net would not fit
    in half the memory available without releasing them."""
    monkeypatch.setattr(release_mod, "MIN_SHARE_BYTES", 1)
    monkeypatch.setattr(release_mod, "MIN_TOTAL_BYTES", 0)
    (tmp_path / "net.yaml").write_text(NET)
    (tmp_path / "solver.yaml").write_text(SOLVER.format(net=tmp_path / "net.yaml"))
    s = netcli.Solver(str(tmp_path / "solver.yaml"), progress=False, log_path=False)
    assert s.net.release_rows == "auto" and not s.net.executor.release
    whole = netcli.Net(str(tmp_path / "net.yaml"), phase="TRAIN").executor.memory.total
    monkeypatch.setattr(release_mod, "memory_available", lambda: int(1.5 * whole))
    assert netcli.Solver(str(tmp_path / "solver.yaml"), progress=False, log_path=False).net.executor.release
