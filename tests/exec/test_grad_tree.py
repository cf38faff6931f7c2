"""The shares' parameter gradients summed as they finish (netcli/exec/grad_tree.py) by the tree of
ops.cpu.shares.combine_shares: the same bits as summing every partial at the end, for any thread
count, with at most log2(b) + 1 partial rows per thread of b shares instead of S - 1."""
import math

import numpy as np
import pytest

import netcli
from netcli.exec import threads
from netcli.exec.cpu import _blocks
from netcli.exec.grad_tree import add_child, schedule
from netcli.ops.cpu.shares import combine_shares


@pytest.mark.parametrize("S", [1, 2, 3, 4, 5, 8, 16])
@pytest.mark.parametrize("T", [1, 2, 3, 4])
def test_summing_as_shares_finish_gives_the_tree_bits(S, T):
    T = min(T, S)
    rng = np.random.default_rng(S * 10 + T)
    parts = (rng.standard_normal((S, 1000)) * 10.0 ** rng.integers(-3, 4, (S, 1))).astype(np.float32)
    base, scratch = parts[0].copy(), parts[1:].copy()
    combine_shares(base, scratch, 0, base.size)
    blocks = tuple(_blocks(S, T))
    rows, after, final, used = schedule(S, blocks)
    assert used <= sum(math.ceil(math.log2(max(e - f, 1))) + 1 for f, e in blocks)
    assert used <= max(S - 1, 0) and sorted(set(rows[1:])) == sorted(set(rows[1:]))
    got, rowbuf = parts[0].copy(), np.zeros((max(used, 1), 1000), np.float32)
    for f, e in blocks:                   # each thread's shares in order (threads one after another)
        for s in range(f, e):
            if s:
                assert not rowbuf[rows[s]].any()       # a row is clean when a share takes it
                rowbuf[rows[s]] = parts[s]
            for a, b in after[s]:
                add_child(got, rowbuf, rows, a, b)
    for a, b in final:
        add_child(got, rowbuf, rows, a, b, 0, 500)
        add_child(got, rowbuf, rows, a, b, 500, 1000)
    assert np.array_equal(got, base) and not rowbuf.any()


NET = """
name: tree
layers:
  - {name: in, type: Input, top: [data, label], input_param: {shape: [{dim: [256, 3, 8, 8]}, {dim: [256]}]}}
  - {name: conv, type: Convolution, bottom: data, top: conv,
     convolution_param: {num_output: 8, kernel_size: 3, weight_filler: {type: xavier}, bias_filler: {type: gaussian}}}
  - {name: relu, type: ReLU, bottom: conv, top: conv}
  - {name: ip, type: InnerProduct, bottom: conv, top: ip, inner_product_param: {num_output: 5, weight_filler: {type: xavier}}}
  - {name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}
"""


def test_a_net_of_eight_shares_keeps_its_bits_and_holds_fewer_partials(tmp_path):
    (tmp_path / "net.yaml").write_text(NET)
    net = netcli.Net(str(tmp_path / "net.yaml"), phase="TRAIN", seed=1)
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape)
    net.blobs["label"].data[...] = rng.integers(0, 5, 256)
    ex = net.executor
    assert len(ex.shares[256]) == 8 and ex.single_back
    old = threads.count()
    got = []
    try:
        for T, online in ((1, False), (1, True), (2, True), (3, True), (4, True)):
            threads.set_threads(T)
            ex.single_back = online
            net.clear_param_diffs()
            net.forward_backward(cleared=True)
            got.append(net.param_diff.copy())
            assert not ex.scratch.any()
            if online:                     # rows beyond the schedule's never written
                used = schedule(8, tuple(_blocks(8, T)))[3]
                assert used <= 7 and (T > 2 or used <= 5)     # 1 thread: 3 rows, 2 threads: 2 + 3
    finally:
        threads.set_threads(old)
    for g in got[1:]:
        assert np.array_equal(g, got[0])
    assert np.count_nonzero(got[0]) > 0.9 * got[0].size
