"""Large param gradients formed after the pass, tile by tile (netcli/exec/late_grads.py): the
gradient equals a float64 NumPy reference, its bits do not depend on the thread count, it adds to
what the diffs held (iter_size), and no share holds a partial of the weight's size."""
import numpy as np
import pytest

import netcli
from netcli.exec.late_grads import clip, dense_ranges, split_tasks
from netcli.ops.cpu import inner_product

NET = """
name: late
layers:
  - {{name: in, type: Input, top: [data, label], input_param: {{shape: [{{dim: [{batch}, 30]}}, {{dim: [{batch}]}}]}}}}
  - {{name: ip1, type: InnerProduct, bottom: data, top: ip1,
     inner_product_param: {{num_output: 150, transpose: {transpose}, weight_filler: {{type: gaussian, std: 0.1}},
                           bias_filler: {{type: gaussian, std: 0.1}}}}}}
  - {{name: relu, type: ReLU, bottom: ip1, top: ip1}}
  - {{name: ip2, type: InnerProduct, bottom: ip1, top: ip2, inner_product_param: {{num_output: 5, weight_filler: {{type: xavier}}}}}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [ip2, label], top: loss}}
"""


def reference_grads(net):
    """(dW1, db1) by float64 NumPy for the loss's mean over the batch."""
    x = net.blobs["data"].data.astype(np.float64)
    y = net.blobs["label"].data.astype(int)
    w1, b1 = (b.data.astype(np.float64) for b in net.params["ip1"])
    w1 = w1.T if w1.shape[0] == 30 else w1
    w2, b2 = (b.data.astype(np.float64) for b in net.params["ip2"])
    h = np.maximum(x @ w1.T + b1, 0)
    z = h @ w2.T + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz = p.copy()
    dz[np.arange(len(y)), y] -= 1
    dz /= len(y)
    dh = (dz @ w2) * (h > 0)
    return dh.T @ x, dh.sum(axis=0)


@pytest.mark.parametrize("transpose", [False, True])
def test_late_tiles_match_the_reference_and_keep_their_bits_for_any_thread_count(tmp_path, monkeypatch, transpose,
                                                                                 thread_count):
    monkeypatch.setattr(inner_product, "TILE_ELEMENTS", 1000)     # ip1's 4,500 weights: tiles of 64 rows
    (tmp_path / "net.yaml").write_text(NET.format(batch=128, transpose=str(transpose).lower()))
    net = netcli.Net(str(tmp_path / "net.yaml"), phase="TRAIN", seed=3)
    rng = np.random.default_rng(0)
    net.blobs["data"].data[...] = rng.standard_normal(net.blobs["data"].shape)
    net.blobs["label"].data[...] = rng.integers(0, 5, 128)
    ex = net.executor
    assert len(ex.shares[128]) == 4
    assert {(net.layer_names[i], a0, a1) for i, j, a0, a1 in ex.late} == \
        ({("ip1", 0, 30)} if transpose else {("ip1", 0, 64), ("ip1", 64, 128), ("ip1", 128, 150)})
    assert any(name.startswith("late gradient tiles") for name, _ in ex.memory.biggest(20))
    got = []
    for T in (1, 2, 3, 4):
        thread_count(T)
        net.clear_param_diffs()
        net.forward_backward(cleared=True)
        got.append(net.param_diff.copy())
        assert not ex.scratch.any()
    dw, db = (b.diff.copy() for b in net.params["ip1"])
    net.forward_backward()                               # not cleared: adds (iter_size)
    np.testing.assert_allclose(net.params["ip1"][0].diff, 2 * dw, rtol=1e-6, atol=1e-7)
    for g in got[1:]:
        assert np.array_equal(g, got[0])
    ref_w, ref_b = reference_grads(net)
    np.testing.assert_allclose(dw.T if transpose else dw, ref_w, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(db, ref_b, rtol=1e-4, atol=1e-6)
    # the late weight's region of the share partials is never written (its pages never touched)
    i = net.layer_names.index("ip1")
    start = (net.layers[i].blobs[0].diff.__array_interface__["data"][0]
             - net.param_diff.__array_interface__["data"][0]) // 4
    assert (start, start + 4500) not in dense_ranges(net.param_diff, ex.late, net)
    assert all(hi <= start or lo >= start + 4500 for lo, hi in dense_ranges(net.param_diff, ex.late, net))


def test_small_weights_and_single_shares_form_their_gradients_in_the_pass(tmp_path, monkeypatch):
    (tmp_path / "net.yaml").write_text(NET.format(batch=128, transpose="false"))
    assert netcli.Net(str(tmp_path / "net.yaml"), phase="TRAIN").executor.late == []
    assert inner_product.weight_tiles(4096, 9216)[:2] == [(0, 64), (64, 128)]
    assert inner_product.weight_tiles(500, 800) == [(0, 500)]
    monkeypatch.setattr(inner_product, "TILE_ELEMENTS", 1000)
    (tmp_path / "small.yaml").write_text(NET.format(batch=8, transpose="false"))     # one share
    assert netcli.Net(str(tmp_path / "small.yaml"), phase="TRAIN").executor.late == []


def test_the_helpers_split_by_elements_and_clip_ranges():
    assert clip([(0, 10), (20, 30)], 5, 25) == [(5, 10), (20, 25)]
    assert clip([(0, 10)], 10, 20) == []

    class FakeNet:
        class L:
            def __init__(self, rows):
                self.blobs = [type("B", (), {"diff": np.zeros((rows, 100), np.float32)})()]
        layers = [L(64), L(640)]
    tasks = [(0, 0, 0, 64)] * 3 + [(1, 0, a, a + 64) for a in range(0, 640, 64)]
    blocks = split_tasks(FakeNet, tasks, 2)
    assert blocks[0][0] == 0 and blocks[-1][1] == len(tasks) and blocks[0][1] == blocks[1][0]
    assert 5 <= blocks[0][1] <= 8
