"""Issue 26 items 1-2: every layer that computes each sample alone is per-sample (PerSample), so it
joins the executor's stretches and the batch can be split across threads and processes. Its rows
computed share by share give the whole batch's bits (the same per-element formulas); its param
gradients, summed per share, match the whole batch's sum. The batch-axis cases (Concat, Slice,
Softmax, Crop along axis 0; Bias from a second bottom) stay on the whole batch."""
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from helpers import make_layer  # noqa: E402
from resnetlike import DIRECT_NET, LOSSES_NET, NET, resnet_solver  # noqa: E402

import netcli  # noqa: E402

N = 7
SHARES = [(0, 2), (2, 5), (5, 7)]
X4 = (N, 4, 5, 6)

CASES = [
    ("PReLU", {}, [X4], 1),
    ("PReLU", {"prelu_param": {"channel_shared": True}}, [X4], 1),
    ("ELU", {"elu_param": {"alpha": 0.7}}, [X4], 1),
    ("AbsVal", {}, [X4], 1),
    ("Power", {"power_param": {"power": 2.0, "scale": 0.5, "shift": 0.3}}, [X4], 1),
    ("Exp", {"exp_param": {"base": 2.0, "scale": 0.5, "shift": 0.1}}, [X4], 1),
    ("Log", {"log_param": {"shift": 10.0}}, [X4], 1),
    ("BNLL", {}, [X4], 1),
    ("Threshold", {"threshold_param": {"threshold": 0.2}}, [X4], 1),
    ("HardSigmoid", {}, [X4], 1),
    ("Clip", {"clip_param": {"min": -0.5, "max": 0.7}}, [X4], 1),
    ("HardTanh", {}, [X4], 1),
    ("Maxout", {"maxout_param": {"num_pieces": 2}}, [X4], 1),
    ("Eltwise", {"eltwise_param": {"operation": "SUM", "coeff": [0.5, -1.5, 2.0]}}, [X4] * 3, 1),
    ("Eltwise", {"eltwise_param": {"operation": "PROD"}}, [X4] * 3, 1),
    ("Eltwise", {"eltwise_param": {"operation": "MAX"}}, [X4] * 3, 1),
    ("Concat", {"concat_param": {"axis": 1}}, [X4, (N, 2, 5, 6)], 1),
    ("Concat", {"concat_param": {"axis": 3}}, [X4, (N, 4, 5, 2)], 1),
    ("Slice", {"slice_param": {"axis": 1, "slice_point": [1, 3]}}, [X4], 3),
    ("Slice", {"slice_param": {"axis": -1}}, [X4], 2),
    ("Softmax", {}, [X4], 1),
    ("Softmax", {"softmax_param": {"axis": 2}}, [X4], 1),
    ("Bias", {}, [X4], 1),
    ("Bias", {"bias_param": {"num_axes": 2}}, [X4], 1),
    ("Bias", {"bias_param": {"axis": 0}}, [X4, (N, 4)], 1),
    ("Scale", {"scale_param": {"axis": 0}}, [X4, (N, 4)], 1),
    ("Scale", {"scale_param": {"bias_term": True}}, [X4], 1),
    ("MVN", {}, [X4], 1),
    ("MVN", {"mvn_param": {"across_channels": True}}, [X4], 1),
    ("MVN", {"mvn_param": {"normalize_variance": False}}, [X4], 1),
    ("LRN", {"lrn_param": {"local_size": 3, "alpha": 0.5}}, [X4], 1),
    ("LRN", {"lrn_param": {"local_size": 3, "alpha": 0.5, "norm_region": "WITHIN_CHANNEL"}}, [X4], 1),
    ("Crop", {"crop_param": {"axis": 2, "offset": [1, 2]}}, [X4, (N, 1, 3, 3)], 1),
    ("Split", {}, [X4], 2),
    ("ArgMax", {"argmax_param": {"top_k": 2, "out_max_val": True}}, [X4], 1),
    ("ArgMax", {"argmax_param": {"top_k": 2, "axis": 2}}, [X4], 1),
    ("Reduction", {"reduction_param": {"axis": 1, "operation": "SUMSQ", "coeff": 0.5}}, [X4], 1),
    ("Reduction", {"reduction_param": {"axis": 2, "operation": "MEAN"}}, [X4], 1),
    ("Tile", {"tile_param": {"axis": 2, "tiles": 3}}, [X4], 1),
    ("SPP", {"spp_param": {"pyramid_height": 3}}, [X4], 1),
    ("SPP", {"spp_param": {"pyramid_height": 2, "pool": "AVE"}}, [X4], 1),
    ("Embed", {"embed_param": {"num_output": 3, "input_dim": 5, "weight_filler": {"type": "gaussian"}}}, [(N, 4)], 1),
]
LOSSES = [
    ("EuclideanLoss", {}, [(N, 6), (N, 6)], 1),
    ("L1Loss", {}, [(N, 6), (N, 2, 3)], 1),
    ("SmoothL1Loss", {"smooth_l1_loss_param": {"sigma": 2.0}}, [(N, 6), (N, 6)], 1),
    ("SigmoidCrossEntropyLoss", {}, [(N, 6), (N, 6)], 1),
    ("SigmoidCrossEntropyLoss", {"loss_param": {"normalization": "FULL", "ignore_label": 1}}, [(N, 6), (N, 6)], 1),
    ("SigmoidCrossEntropyLoss", {"loss_param": {"normalization": "VALID", "ignore_label": 1}}, [(N, 6), (N, 6)], 1),
    ("HingeLoss", {"hinge_loss_param": {"norm": "L2"}}, [(N, 5), (N,)], 1),
    ("InfogainLoss", {}, [(N, 5, 3), (N, 3)], 1),
    ("ContrastiveLoss", {}, [(N, 4), (N, 4), (N,)], 1),
    ("SoftmaxWithLoss", {"loss_param": {"ignore_label": 1}}, [(N, 5, 3), (N, 3)], 2),
    ("SoftmaxWithLoss", {"softmax_param": {"axis": 2}}, [(N, 3, 5), (N, 3)], 1),
]
CASES += LOSSES
_R = np.random.default_rng(3)
INDICES = {"Embed": [np.arange(N * 4).reshape(N, 4) % 5],      # bottoms that hold indices or labels
           "SigmoidCrossEntropyLoss": [None, _R.integers(0, 2, (N, 6))],
           "HingeLoss": [None, np.arange(N) % 5],
           "InfogainLoss": [None, np.arange(N * 3).reshape(N, 3) % 5],
           "ContrastiveLoss": [None, None, np.arange(N) % 2],
           "SoftmaxWithLoss": [None, np.arange(N * 3).reshape(N, 3) % 5]}
IN_PLACE = {"PReLU", "ELU", "AbsVal", "Power", "Log", "BNLL", "HardSigmoid", "Clip", "Exp", "Scale", "Bias"}


def build(type_, params, shapes, n_tops, in_place):
    layer, bottoms, tops = make_layer(type_, params, shapes, n_tops, dtype=np.float32, bottoms_data=INDICES.get(type_))
    if in_place:               # the same layer set up again with its top its bottom
        again = type(layer)("L", layer.p, layer.phase, layer.bottom_names, layer.bottom_names[:1], layer.rng)
        again.setup(bottoms, bottoms[:1])
        for mine, theirs in zip(again.blobs, layer.blobs):
            mine.data, mine.diff = theirs.data.copy(), np.zeros_like(theirs.data)
        layer, tops = again, bottoms[:1]
    return layer, bottoms, tops


def run_layer(layer, bottoms, tops, rows, top_diffs):
    """Forward and backward over `rows` (None: the whole batch at once): (tops, bottom diffs, param
    gradients summed over the pieces)."""
    x0 = [b.data.copy() for b in bottoms]
    if rows is None:
        layer.forward(bottoms, tops)
    else:
        wss = [{k: np.zeros(s, d) for k, (s, d) in {**layer.workspace(hi - lo), **layer.scratch(hi - lo)}.items()}
               for lo, hi in rows]
        if layer.batch_stats:                 # as the executor: the batch's statistics first
            for (lo, hi), ws in zip(rows, wss):
                layer.stats_rows(bottoms, lo, hi, ws)
            layer.combine_stats(wss)
        for (lo, hi), ws in zip(rows, wss):
            layer.forward_rows(bottoms, tops, lo, hi, ws)
        layer.finish_rows(tops, wss)
    out = [t.data.copy() for t in tops]
    for t, d in zip(tops, top_diffs):
        t.diff[...] = d
    pd = [i not in layer.no_grad_bottoms for i in range(len(bottoms))]
    grads = [np.zeros_like(b.diff) for b in layer.blobs]
    if layer.has_backward:
        if rows is None:
            for b in layer.blobs:
                b.diff[...] = 0
            layer.backward(tops, pd, bottoms)
            grads = [b.diff.copy() for b in layer.blobs]
        else:
            if layer.batch_stats:
                for (lo, hi), ws in zip(rows, wss):
                    layer.grad_stats_rows(tops, lo, hi, ws)
                layer.combine_grad_stats(wss)
            for (lo, hi), ws in zip(rows, wss):
                share = [np.zeros_like(b.diff) for b in layer.blobs]
                layer.backward_rows(tops, pd, bottoms, lo, hi, ws, share, False)
                grads = [g + s for g, s in zip(grads, share)]
    diffs = [b.diff.copy() for i, b in enumerate(bottoms) if pd[i]]
    for b, x in zip(bottoms, x0):
        b.data[...] = x
    return out, diffs, grads


@pytest.mark.parametrize("case, in_place", [(c, False) for c in CASES] + [(c, True) for c in CASES if c[0] in IN_PLACE],
                         ids=lambda c: f"{c[0]}-{c[1]}" if isinstance(c, tuple) else ("in place" if c else ""))
def test_rows_by_share_give_the_whole_batch(case, in_place):
    type_, params, shapes, n_tops = case
    whole = build(type_, params, shapes, n_tops, in_place)
    parts = build(type_, params, shapes, n_tops, in_place)
    assert parts[0].per_sample
    rng = np.random.default_rng(7)
    dys = [rng.standard_normal(t.data.shape).astype(np.float32) for t in whole[2]]
    a = run_layer(*whole, None, dys)
    b = run_layer(*parts, SHARES, dys)
    reduced = [k for k in range(len(a[0])) if k in whole[0].reduced_tops]
    for k in reduced:                                    # a loss: the pieces' sums added in order
        np.testing.assert_allclose(b[0][k], a[0][k], rtol=1e-6)
    for got, want in zip([t for k, t in enumerate(b[0]) if k not in reduced] + b[1],
                         [t for k, t in enumerate(a[0]) if k not in reduced] + a[1]):
        np.testing.assert_array_equal(got, want)         # tops and bottom diffs: the same bits
    assert any(np.any(d) for d in a[1]) or not whole[0].has_backward or whole[0].no_grad_bottoms
    for got, want in zip(b[2], a[2]):                    # param gradients: sums in another order
        assert np.any(want)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("type_, params, shapes", [
    ("Concat", {"concat_param": {"axis": 0}}, [(3, 2), (4, 2)]),
    ("Slice", {"slice_param": {"axis": 0, "slice_point": [2]}}, [(5, 2)]),
    ("Softmax", {"softmax_param": {"axis": 0}}, [(5, 3)]),
    ("Crop", {"crop_param": {"axis": 0, "offset": [1, 0]}}, [(5, 3), (2, 3)]),
    ("Bias", {}, [(5, 3), (3,)]),
    ("Scale", {}, [(5, 3), (3,)]),
    ("Reduction", {"reduction_param": {"axis": 0}}, [(5, 3)]),
    ("Tile", {"tile_param": {"axis": 0, "tiles": 2}}, [(5, 3)]),
    ("ArgMax", {"argmax_param": {"axis": 0}}, [(5, 3)]),
])
def test_batch_axis_cases_stay_on_the_whole_batch(type_, params, shapes):
    n_tops = 2 if type_ == "Slice" else 1
    layer, bottoms, tops = make_layer(type_, params, shapes, n_tops)
    assert not layer.per_sample
    layer.forward(bottoms, tops)
    x = bottoms[0].data
    want = {"Concat": lambda: np.concatenate([b.data for b in bottoms]),
            "Slice": lambda: x[:2],
            "Softmax": lambda: np.exp(x) / np.exp(x).sum(axis=0),
            "Crop": lambda: x[1:3],
            "Bias": lambda: x + bottoms[1].data,
            "Scale": lambda: x * bottoms[1].data,
            "Reduction": lambda: x.sum(),
            "Tile": lambda: np.concatenate([x, x]),
            "ArgMax": lambda: x.argmax(axis=0)[None]}[type_]()
    np.testing.assert_allclose(tops[0].data, want, rtol=1e-12)
    if type_ == "Slice":
        np.testing.assert_array_equal(tops[1].data, x[2:])


def test_softmax_loss_with_labels_not_per_sample_stays_on_the_whole_batch():
    lab = np.arange(15) % 4
    layer, bottoms, tops = make_layer("SoftmaxWithLoss", {"softmax_param": {"axis": 2}}, [(5, 3, 4), (15,)],
                                      bottoms_data=[None, lab])
    assert not layer.per_sample
    layer.forward(bottoms, tops)
    x = bottoms[0].data.reshape(15, 4)
    logp = x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    assert float(tops[0].data) == pytest.approx(-logp[np.arange(15), lab].sum() / 15, rel=1e-10)


def test_a_loss_that_counts_valid_labels_adds_the_pieces_counts():
    x, t = np.random.default_rng(0).standard_normal((5, 3)), np.array([[0, 1, 1]] * 4 + [[1, 0, 1]], float)
    layer, bottoms, tops = make_layer("SigmoidCrossEntropyLoss", {"loss_param": {"ignore_label": 1, "normalization": "VALID"}},
                                      [(5, 3), (5, 3)], bottoms_data=[x, t])
    assert layer.per_sample and layer.batch_stats
    wss = [{k: np.zeros(s, d) for k, (s, d) in layer.workspace(hi - lo).items()} for lo, hi in ((0, 2), (2, 5))]
    for (lo, hi), ws in zip(((0, 2), (2, 5)), wss):
        layer.stats_rows(bottoms, lo, hi, ws)
    layer.combine_stats(wss)
    for (lo, hi), ws in zip(((0, 2), (2, 5)), wss):
        layer.forward_rows(bottoms, tops, lo, hi, ws)
    layer.finish_rows(tops, wss)
    terms = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    assert layer.n == 5 and float(tops[0].data) == pytest.approx((terms * (t != 1)).sum() / 5, rel=1e-12)


VALID_NET = """layers:
  - {{name: in, type: Input, top: [x, label], input_param: {{shape: [{{dim: [{n}, 3, 5, 4]}}, {{dim: [{n}, 5, 4]}}]}}}}
  - {{name: c, type: Convolution, bottom: x, top: c, convolution_param: {{num_output: 3, kernel_size: 3, pad: 1,
      weight_filler: {{type: gaussian, std: 0.5}}}}}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [c, label], top: loss,
      loss_param: {{ignore_label: 255, normalization: VALID}}}}
  - {{name: sig, type: SigmoidCrossEntropyLoss, bottom: [c, t], top: sig,
      loss_param: {{ignore_label: 255, normalization: VALID}}}}
"""


@pytest.mark.parametrize("n", [2, 64])
def test_valid_normalization_divides_this_passes_gradient_by_this_passes_count(tmp_path, n):
    # the executor runs a share's backward right after its forward: the count of valid labels must
    # be the batch's before any backward (a count summed after the pass scaled the first gradient
    # by the setup's count, and later ones by the previous batch's)
    from netcli.exec import threads
    rng = np.random.default_rng(n)
    text = VALID_NET.format(n=n).replace("top: [x, label]", "top: [x, label, t]").replace(
        "{{dim: [{n}, 5, 4]}}]".format(n=n), "{{dim: [{n}, 5, 4]}}, {{dim: [{n}, 3, 5, 4]}}]".format(n=n))
    path = tmp_path / "net.yaml"
    path.write_text(text)
    net = netcli.Net(str(path), phase="TRAIN", seed=1)
    assert [len(idx) for k, idx in net.executor.stretches if k] == [4]       # c, a Split, both losses
    old = threads.count()
    try:
        for t in (1, 2):
            threads.set_threads(t)
            label = rng.integers(0, 3, (n, 5, 4)).astype(np.float32)
            label[rng.random(label.shape) < 0.4] = 255
            target = rng.random((n, 3, 5, 4)).astype(np.float32)
            target[rng.random(target.shape) < 0.3] = 255
            net.blobs["x"].data[...] = rng.standard_normal((n, 3, 5, 4))
            net.blobs["label"].data[...], net.blobs["t"].data[...] = label, target
            net.clear_param_diffs()
            net.forward_backward(cleared=True)
            c = net.blobs["c"].data.astype(np.float64)
            p = np.exp(c - c.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            valid = label != 255
            onehot = np.zeros_like(p)
            for k in range(3):
                onehot[:, k] = (label == k)
            g_soft = (p - onehot) * valid[:, None] / valid.sum()
            tv = target != 255
            g_sig = (1 / (1 + np.exp(-c)) - target) * tv / tv.sum()
            np.testing.assert_allclose(net.blobs["c"].diff, g_soft + g_sig, rtol=1e-4, atol=1e-6)
    finally:
        threads.set_threads(old)


MIXED = """\
layers:
  - {name: in, type: Input, top: [x], input_param: {shape: [{dim: [8, 4, 5, 5]}]}}
  - {name: c, type: Convolution, bottom: x, top: c, convolution_param: {num_output: 4, kernel_size: 3, pad: 1}}
  - {name: sum, type: Eltwise, bottom: [x, c], top: s}
  - {name: join, type: Concat, bottom: [s, c], top: j}
  - {name: norm, type: LRN, bottom: j, top: n}
  - {name: batch, type: Concat, bottom: [n, n], top: b, concat_param: {axis: 0}}
  - {name: prob, type: Softmax, bottom: b, top: p, softmax_param: {axis: 0}}
"""


def test_processes_refuse_only_the_layers_that_are_not_per_sample(tmp_path):
    from netcli.errors import NetcliError
    path = tmp_path / "net.yaml"
    path.write_text(MIXED)
    net = netcli.Net(str(path), phase="TRAIN")
    assert [len(idx) for n, idx in net.executor.stretches if n] == [7]    # c, sum, join, norm, 3 Splits
    with pytest.raises(NetcliError) as e:
        net.executor.distribute(None)
    msg = str(e.value)
    assert "'batch' (Concat)" in msg and "'prob' (Softmax)" in msg
    assert not any(f"'{name}'" in msg for name in ("c", "sum", "join", "norm")), msg


def test_resnet_style_net_is_one_stretch_and_check_names_no_layer_as_not_per_sample(tmp_path, monkeypatch):
    from click.testing import CliRunner
    from netcli.cli import cli
    monkeypatch.setenv("NETCLI_OFFLINE", "1")
    path = tmp_path / "net.yaml"
    path.write_text(NET.format(batch=32))
    r = CliRunner().invoke(cli, ["check", "--model", str(path)], obj={})
    assert r.exit_code == 0, r.output
    plan = [line for line in r.output.splitlines() if "Parallel plan" in line and "fused" not in line]
    assert len(plan) == 2 and all("per-sample stretch" in line for line in plan), plan
    assert "not per-sample" not in r.output
    for name in ("res2", "join", "norm", "prelu2a", "prob"):
        assert any(f" {name}," in line or line.endswith(f" {name}") for line in plan), name


@pytest.mark.parametrize("text", [NET, LOSSES_NET, DIRECT_NET], ids=["resnet", "losses", "direct"])
def test_weights_do_not_depend_on_the_thread_count(tmp_path, monkeypatch, text):
    """Eltwise, Concat, LRN, PReLU (slope gradients per share) and BatchNorm in one stretch, or
    three losses (one counting its valid labels), or direct convolutions: the weights after 4
    iterations have the same bits for 1, 2, 3 and 4 threads (4 shares of 16)."""
    from netcli.exec import threads
    monkeypatch.setenv("NETCLI_OFFLINE", "1")
    old = threads.count()
    got = []
    try:
        for n in (1, 2, 3, 4):
            threads.set_threads(n)
            s = netcli.Solver(resnet_solver(str(tmp_path / str(n)), "r", iters=4, test=100, batch=64, text=text),
                              progress=False, quiet=True, shares=4)
            assert len(s.net.executor.stretches) == 2 and len(s.net.executor.shares[64]) == 4
            before = s.net.param_data.copy()
            s.step(4)
            assert not np.array_equal(before, s.net.param_data)
            got.append(s.net.param_data.copy())
    finally:
        threads.set_threads(old)
    assert np.any(got[0])
    for w in got[1:]:
        assert np.array_equal(w, got[0])


@pytest.mark.parametrize("nthreads", [1, 2])
def test_one_large_sample_sums_and_rectifies_in_tiles(tmp_path, nthreads, thread_count, monkeypatch):
    """Batch-1 inference: Eltwise's sum of two bottoms and a ReLU over one sample of
    SAMPLE_TILED numbers or more go in tiles (exec/threads.py, sample_tiles); the values are
    NumPy's float32 ones, in place or not; a smaller sample goes whole."""
    from netcli.exec import threads
    thread_count(nthreads)
    calls = []
    real = threads.tiles
    monkeypatch.setattr(threads, "tiles", lambda fn, count: (calls.append(count), real(fn, count)))
    big, small = [1, 4, 256, 256], [1, 3, 16, 16]            # 4 * 256 * 256 = SAMPLE_TILED
    assert np.prod(big) == threads.SAMPLE_TILED
    path = tmp_path / "net.yaml"
    path.write_text(f"""
layers:
  - {{name: in, type: Input, top: [a, b, c, d], input_param: {{shape: [{{dim: {big}}}, {{dim: {big}}}, {{dim: {small}}},
                                                                    {{dim: {small}}}]}}}}
  - {{name: sum, type: Eltwise, bottom: [a, b], top: s, eltwise_param: {{coeff: [0.5, -1.5]}}}}
  - {{name: relu, type: ReLU, bottom: s, top: s}}
  - {{name: leaky, type: ReLU, bottom: a, top: r, relu_param: {{negative_slope: 0.25}}}}
  - {{name: sum2, type: Eltwise, bottom: [c, d], top: s2}}
  - {{name: relu2, type: ReLU, bottom: s2, top: s2}}
""")
    net = netcli.Net(str(path), phase="TEST", inference=True)
    rng = np.random.default_rng(5)
    x = {k: rng.standard_normal(net.blobs[k].data.shape).astype(np.float32) for k in "abcd"}
    for k in "abcd":
        net.blobs[k].data[...] = x[k]
    net.forward()
    f = np.float32
    s = x["a"] * f(0.5) + x["b"] * f(-1.5)
    assert np.array_equal(net.blobs["s"].data, np.where(s <= 0, f(0), s))
    assert np.array_equal(net.blobs["r"].data, np.where(x["a"] > 0, x["a"], x["a"] * f(0.25)))
    s2 = x["c"] + x["d"]
    assert np.array_equal(net.blobs["s2"].data, np.where(s2 <= 0, f(0), s2))
    assert calls == [threads.SAMPLE_TILES] * 2      # sum + relu (one pass: exec/fusion.py) and leaky, not sum2
