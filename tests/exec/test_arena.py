"""A training iteration's rows in one arena per thread (netcli/exec/arena.py): the weights are
bit-identical with and without it and for any thread count, with arenas full of NaNs (so nothing
reads an arena byte its share did not write first); what lives there are the blobs inside the last
stretch, never the inputs, outputs, loss tops or the rows a late gradient reads; the whole-batch
arrays are never touched; the layout never lets two live arrays share a byte."""
import numpy as np
import pytest

import netcli
from netcli.exec import arena as arena_mod

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



def poisoned(nbytes):
    return np.full(nbytes, 0xFF, np.uint8)           # every float32 in it is a NaN


@pytest.fixture(autouse=True)
def small_nets_too(monkeypatch):
    monkeypatch.setattr(arena_mod, "MIN_SHARE_BYTES", 1)       # every blob of the stretch, small as they are
    monkeypatch.setattr(arena_mod, "MIN_TOTAL_BYTES", 0)
    monkeypatch.setattr(arena_mod, "MIN_FORWARD_BYTES", 0)
    monkeypatch.setattr(arena_mod, "buffer", poisoned)


def solver(tmp_path, arena, net=NET):
    (tmp_path / "net.yaml").write_text(net)
    (tmp_path / "solver.yaml").write_text(SOLVER.format(net=tmp_path / "net.yaml"))
    return netcli.Solver(str(tmp_path / "solver.yaml"), progress=False, log_path=False, release_rows=arena)


def weights_after(tmp_path, thread_count, net, runs, steps=6):
    got = []
    for arena, T in runs:
        thread_count(T)
        s = solver(tmp_path, arena, net)
        assert bool(s.net.executor.arena) == arena
        s.step(steps)
        got.append(s.net.param_data.copy())
    return got


def test_the_arena_changes_no_weight_for_any_thread_count(tmp_path, thread_count):
    # issue 29: the weights after 100 iterations, 1 to 4 threads
    got = weights_after(tmp_path, thread_count, NET, ((False, 2), (True, 1), (True, 2), (True, 3), (True, 4)), 100)
    assert np.isfinite(got[0]).all()
    for g in got[1:]:
        assert np.array_equal(g, got[0])


def test_a_late_gradient_reads_whole_rows_not_the_arena(tmp_path, thread_count):
    """fc's weight (600 x 2028) is formed after the pass (exec/late_grads.py) from its bottom's
    rows of every share: that bottom stays a whole-batch array."""
    net = NET.replace("num_output: 10,", "num_output: 600,").replace(
        "  - {name: drop, type: Dropout, bottom: pool, top: pool, dropout_param: {dropout_ratio: 0.3}}\n", "")
    got = weights_after(tmp_path, thread_count, net, ((False, 2), (True, 2), (True, 1)))
    for g in got[1:]:
        assert np.array_equal(g, got[0])


def test_batch_norm_on_global_statistics_runs_its_fused_chain_on_the_arena(tmp_path, thread_count):
    net = NET.replace("  - {name: relu1, type: ReLU, bottom: conv1, top: conv1}\n", """\
  - {name: bn1, type: BatchNorm, bottom: conv1, top: conv1, batch_norm_param: {use_global_stats: true, eps: 1.0}}
  - {name: sc1, type: Scale, bottom: conv1, top: conv1, scale_param: {bias_term: true}}
  - {name: relu1, type: ReLU, bottom: conv1, top: conv1}
""")
    got = weights_after(tmp_path, thread_count, net, ((False, 2), (True, 2), (True, 1)))
    for g in got[1:]:
        assert np.array_equal(g, got[0])
    s = solver(tmp_path, True, net)
    assert s.net.executor.arena.chains


def test_a_diff_its_consumer_does_not_write_stays_whole(tmp_path, thread_count):
    net = NET.replace("{name: sum, type: Eltwise, bottom: [norm, cat], top: sum}",
                      "{name: sum, type: Eltwise, bottom: [norm, cat], top: sum, propagate_down: [true, false]}")
    s = solver(tmp_path, True, net)
    in_arena = s.net.executor.arena.addresses
    assert s.net.blobs["norm"].diff.__array_interface__["data"][0] in in_arena
    got = weights_after(tmp_path, thread_count, net, ((False, 2), (True, 2)))
    assert np.array_equal(got[0], got[1])


def names_in(net):
    return {name for name, b in net.blobs.items() for a in (b.data, b.diff)
            if a.__array_interface__["data"][0] in net.executor.arena.addresses}


def test_what_lives_in_the_arena_and_that_the_whole_arrays_are_never_touched(tmp_path):
    s = solver(tmp_path, True)
    net = s.net
    assert {"conv1", "a", "b", "cat", "norm", "sum"} <= names_in(net)
    assert not names_in(net) & {"data", "label", "loss"}
    s.step(2)
    assert not net.blobs["conv1"].data.any() and not net.blobs["sum"].diff.any()
    kept = solver(tmp_path, False)
    kept.step(2)
    assert kept.net.blobs["conv1"].data.any() and not kept.net.executor.arena


def test_the_memory_plan_counts_the_arenas_not_the_whole_arrays(tmp_path, thread_count):
    thread_count(2)
    with_arena, without = (solver(tmp_path, a).net.executor for a in (True, False))
    line = [i.fixed for i in with_arena.memory.items if i.what.endswith("(arenas)")][0]
    assert line == 2 * with_arena.arena.nbytes
    assert with_arena.memory.total < without.memory.total


def test_the_layout_never_puts_two_live_arrays_on_one_byte():
    rng = np.random.default_rng(3)
    for _ in range(200):
        k = int(rng.integers(1, 30))
        sizes = {a: int(rng.integers(1, 5000)) for a in range(k)}
        spans = {}
        for a in range(k):
            f = int(rng.integers(0, 40))
            spans[a] = (f, f + int(rng.integers(0, 15)))
        offsets, total = arena_mod.layout(sizes, spans)
        assert total <= sum(-(-s // arena_mod.ALIGN) * arena_mod.ALIGN for s in sizes.values())
        for a in range(k):
            assert offsets[a] % arena_mod.ALIGN == 0 and offsets[a] + sizes[a] <= total
            for b in range(a):
                live = spans[a][0] <= spans[b][1] and spans[b][0] <= spans[a][1]
                apart = offsets[a] + sizes[a] <= offsets[b] or offsets[b] + sizes[b] <= offsets[a]
                assert apart or not live
        peak = max(sum(sizes[a] for a in range(k) if spans[a][0] <= step <= spans[a][1]) for step in range(60))
        assert total >= peak


def test_pycaffe_solvers_keep_their_blobs(tmp_path):
    (tmp_path / "net.yaml").write_text(NET)
    (tmp_path / "solver.yaml").write_text(SOLVER.format(net=tmp_path / "net.yaml"))
    from netcli import caffe
    s = caffe.SGDSolver(str(tmp_path / "solver.yaml"))
    assert not s.native.net.executor.arena
    s.step(1)
    assert s.net.blobs["conv1"].data.any()


def test_small_nets_keep_their_blobs(tmp_path, monkeypatch):
    import os
    monkeypatch.undo()
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    (tmp_path / "solver.yaml").write_text(SOLVER.format(net=os.path.join(root, "configs", "lenet_train_test.yaml")))
    s = netcli.Solver(str(tmp_path / "solver.yaml"), progress=False, log_path=False)
    assert s.net.release_rows and not s.net.executor.arena


def test_the_solver_uses_the_arena_where_the_net_is_large_enough(tmp_path):
    s = solver(tmp_path, "auto")
    assert s.net.release_rows == "auto" and s.net.executor.arena


def test_check_and_time_plan_a_train_net_as_the_solver_builds_it(tmp_path, monkeypatch):
    from netcli.commands.check import check
    from netcli.commands.timing import benchmark
    (tmp_path / "net.yaml").write_text(NET)
    lines = []
    check(model=str(tmp_path / "net.yaml"), phase="TRAIN", echo=lines.append)
    assert any("(arenas)" in line for line in lines)
    made = []
    monkeypatch.setattr(arena_mod, "buffer", lambda nbytes: made.append(nbytes) or poisoned(nbytes))
    benchmark(str(tmp_path / "net.yaml"), iterations=1, echo=lambda *a, **k: None)
    assert made                        # its training pass ran on the arenas


BN_NOT_IN_PLACE = NET.replace("  - {name: relu1, type: ReLU, bottom: conv1, top: conv1}\n", """\
  - {name: bn1, type: BatchNorm, bottom: conv1, top: bn1, batch_norm_param: {use_global_stats: true, eps: 1.0}}
  - {name: sc1, type: Scale, bottom: bn1, top: bn1, scale_param: {bias_term: true}}
  - {name: relu1, type: ReLU, bottom: bn1, top: bn1}
""").replace("bottom: conv1, top: a,", "bottom: bn1, top: a,").replace("bottom: conv1, top: b,", "bottom: bn1, top: b,")


def inference_net(tmp_path, release, net=NET):
    (tmp_path / "net.yaml").write_text(net)
    return netcli.Net(str(tmp_path / "net.yaml"), phase="TEST", inference=True, release_rows=release, seed=3)


@pytest.mark.parametrize("net", [NET, BN_NOT_IN_PLACE], ids=["branches", "batch-norm"])
def test_an_inference_forward_on_the_arena_gives_the_same_outputs(tmp_path, thread_count, net):
    """A net for inference runs its forward on the arenas (full of NaNs) where release_rows says:
    its outputs and the loss's input (a layer that finishes after every share) have the same bits
    as with whole arrays, for 1 to 3 threads; the arrays it replaced stay untouched."""
    got = []
    for release, T in ((False, 2), (True, 1), (True, 2), (True, 3)):
        thread_count(T)
        n = inference_net(tmp_path, release, net)
        assert bool(n.executor.arena) == release and not (release and not n.executor.arena.forward_only)
        n.forward()
        n.forward()
        got.append((float(n.loss), n.blobs["ip"].data.copy(), n.blobs["conv1"].data.any()))
    assert np.isfinite(got[0][1]).all() and got[0][2]
    for loss, ip, touched in got[1:]:
        assert loss == got[0][0] and np.array_equal(ip, got[0][1]) and not touched


def test_a_chain_inside_a_convolution_writes_its_top_in_that_step(tmp_path):
    """lifetimes: a BatchNorm chain run inside the convolution before it (conv_fused_forward)
    writes its top (here not the convolution's) in that step: its life begins there."""
    n = inference_net(tmp_path, True, BN_NOT_IN_PLACE)
    ex = n.executor
    steps = ex._segments(*ex.stretches[-1], True, False)[0][0]
    conv1 = n.layer_names.index("conv1")
    assert ("conv_fused_forward", conv1) in steps
    spans = arena_mod.lifetimes(n, steps, ex.chains, ex.arena.rowbytes)
    bn1 = n.blobs["bn1"].data.__array_interface__["data"][0]
    assert spans[bn1][0] == steps.index(("conv_fused_forward", conv1))


def test_nets_for_inference_keep_their_blobs_unless_told(tmp_path):
    """Net(inference=True) alone (extract_features reads any blob) keeps whole arrays; the
    Solver's test nets, netcli test's and predict's release their rows ("auto")."""
    n = inference_net(tmp_path, False)
    n.forward()
    assert not n.executor.arena and n.blobs["conv1"].data.any()
    (tmp_path / "solver.yaml").write_text(SOLVER.format(net=tmp_path / "net.yaml") + "test_iter: 1\ntest_interval: 5\n")
    s = netcli.Solver(str(tmp_path / "solver.yaml"), progress=False, log_path=False)
    assert s.test_nets[0].executor.arena.forward_only
    kept = netcli.Solver(str(tmp_path / "solver.yaml"), progress=False, log_path=False, release_rows=False)
    assert not kept.test_nets[0].executor.arena
