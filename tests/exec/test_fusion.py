"""BatchNorm + Scale (+ ReLU) chains run as one pass (netcli/exec/fusion.py): the same bits as the
layers run one by one, in TRAIN (forward and backward fused) and in a TEST net that still needs a
backward pass (forward fused, writing what the unfused backward reads); chains found only where
fusing cannot change what a user sees. Also the backward of a net whose params are another's
(exec/cpu.py, _backward_apart), which such a TEST net runs."""
import numpy as np
import pytest

import netcli
from netcli.exec import threads
from resnetlike import NET


def _net(tmp_path, phase, text=None, batch=32):
    path = tmp_path / "net.yaml"
    path.write_text((text or NET).format(batch=batch))
    return netcli.Net(str(path), phase=phase, seed=3)


def _unfused(net):
    net.executor.chains = {}
    net.executor._plans = {}
    return net


def _state(net):
    out = {f"{n}.data": b.data.copy() for n, b in net.blobs.items()}
    out.update({f"{n}.diff": b.diff.copy() for n, b in net.blobs.items()})
    out["param_diff"] = net.param_diff.copy()
    return out


def _same(a, b):
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=True), k


def _folded(net):
    """The convolutions whose forward runs the chain after them on each block it finishes."""
    ex = net.executor
    return [net.layer_names[i] for n, idx in ex.stretches if n is not None
            for steps, _ in ex._segments(n, idx, True, False) for kind, i in steps if kind == "conv_fused_forward"]


def _norm_chains(net):
    """The BatchNorm + Scale (+ ReLU) chains (not the Eltwise + ReLU ones)."""
    from netcli.exec.fusion import NormScaleReLU
    return [c for c in net.executor.chains.values() if isinstance(c, NormScaleReLU)]


def _names(net):
    return {net.layer_names[h]: c.names for h, c in net.executor.chains.items()}


def test_the_chains_found_in_a_resnet_style_net(tmp_path):
    net = _net(tmp_path, "TRAIN")
    assert _names(net) == {"bn1": ["bn1", "scale1", "relu1"], "bn2a": ["bn2a", "scale2a"],
                           "bn2b": ["bn2b", "scale2b"], "res2": ["res2", "relu2"]}     # PReLU is in none
    assert all(c.backward for c in net.executor.chains.values())
    assert _folded(net) == []                   # batch statistics: the whole batch's conv output first
    assert any(line.startswith("fused (one pass over the blob, the same results): bn1+scale1+relu1")
               for line in net.executor.plan())


@pytest.mark.parametrize("nthreads", [1, 3])
def test_training_pass_fused_gives_the_unfused_bits(tmp_path, nthreads):
    old = threads.count()
    threads.set_threads(nthreads)
    try:
        fused, plain = _net(tmp_path, "TRAIN"), _unfused(_net(tmp_path, "TRAIN"))
        for net in (fused, plain):
            net.clear_param_diffs()
            net.forward_backward()
        a, b = _state(fused), _state(plain)
        _same(a, b)
        assert np.abs(a["param_diff"]).max() > 0
    finally:
        threads.set_threads(old)


def test_a_chain_whose_top_a_later_layer_rewrites_keeps_its_layers_apart(tmp_path):
    """A ReLU whose top a later layer rewrites in place (here flips its sign) keeps a mask of its
    own (net_plan.relu_masks), which a chain's forward does not write, so it stays out of the
    chain (BatchNorm + Scale still fuse); the same bits as the layers apart."""
    flip = ("  - {{name: flip, type: Power, bottom: conv1, top: conv1, power_param: {{scale: -1}}}}\n"
            "  - {{name: conv2a,")
    text = NET.replace("  - {{name: conv2a,", flip, 1)
    fused, plain = _net(tmp_path, "TRAIN", text=text), _unfused(_net(tmp_path, "TRAIN", text=text))
    assert _names(fused) == {"bn1": ["bn1", "scale1"], "bn2a": ["bn2a", "scale2a"], "bn2b": ["bn2b", "scale2b"],
                             "res2": ["res2", "relu2"]}
    assert fused.layers[fused.layer_names.index("relu1")].keep_mask
    for net in (fused, plain):
        net.clear_param_diffs()
        net.forward_backward()
    _same(_state(fused), _state(plain))
    assert (fused.blobs["conv1"].data < 0).any() and (fused.blobs["conv1"].data <= 0).all()


def test_test_net_fuses_its_forward_and_its_unfused_backward_reads_the_same(tmp_path):
    nets = _net(tmp_path, "TEST"), _unfused(_net(tmp_path, "TEST"))
    rng = np.random.default_rng(5)
    stats = {}
    for net in nets:
        for name, layer in zip(net.layer_names, net.layers):
            if layer.type == "BatchNorm":
                C = layer.C
                stats.setdefault(name, (rng.standard_normal(C), rng.uniform(0.5, 2, C)))
                layer.blobs[0].data[...], layer.blobs[1].data[...] = stats[name]
                layer.blobs[2].data[...] = 1
    fused, plain = nets
    assert _norm_chains(fused) and not any(c.backward for c in _norm_chains(fused))
    assert all(c.keeps for c in _norm_chains(fused))     # the TEST net has a loss: it can backward
    assert _folded(fused) == ["conv1", "conv2a", "conv2b"]        # each chain runs inside its convolution
    for net in nets:
        net.forward()
        net.clear_param_diffs()
        net.backward()
    _same(_state(fused), _state(plain))


def test_a_test_net_sharing_the_training_nets_weights_fuses_its_forward(tmp_path):
    """The solver's test net (and pycaffe's) has the training net's params and gradients: its
    backward runs layer by layer, but a BatchNorm with global statistics needs nothing from the
    batch, so its chain's forward is fused (and keeps what that backward reads); a TRAIN net
    in the same position fuses nothing, as its batch statistics would have to be fused too."""
    trains = _net(tmp_path, "TRAIN"), _net(tmp_path, "TRAIN")     # one each: the diffs add up there
    for train in trains:
        rng = np.random.default_rng(6)
        for layer in train.layers:
            if layer.type == "BatchNorm":
                layer.blobs[0].data[...] = rng.standard_normal(layer.C)
                layer.blobs[1].data[...] = rng.uniform(0.5, 2, layer.C)
                layer.blobs[2].data[...] = 1
    nets = _net(tmp_path, "TEST"), _net(tmp_path, "TEST")
    for net, train in zip(nets, trains):
        net.share_weights(train)
    fused, plain = nets[0], _unfused(nets[1])
    assert not fused.executor.backward_ok
    assert _names(fused) == {"bn1": ["bn1", "scale1", "relu1"], "bn2a": ["bn2a", "scale2a"],
                             "bn2b": ["bn2b", "scale2b"], "res2": ["res2", "relu2"]}
    assert all(c.keeps and not c.backward for c in _norm_chains(fused))
    for net in nets:
        net.forward()
        net.backward()
    _same(_state(fused), _state(plain))
    assert np.array_equal(trains[0].param_diff, trains[1].param_diff)
    assert np.abs(trains[0].param_diff).max() > 0
    other = _net(tmp_path, "TRAIN")
    other.share_weights(trains[0])
    assert not other.executor.backward_ok and _norm_chains(other) == []
    assert _names(other) == {"res2": ["res2", "relu2"]}           # its backward runs the two layers apart
    assert not any(c.backward for c in other.executor.chains.values())


def test_deploy_net_without_backward_fuses_and_keeps_nothing(tmp_path):
    text = NET.replace("  - {{name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}}\n", "")
    net = _net(tmp_path, "TEST", text=text)
    plain = _unfused(_net(tmp_path, "TEST", text=text))
    assert net.executor.chains and not any(c.keeps or c.backward for c in net.executor.chains.values())
    net.forward()
    plain.forward()
    assert np.array_equal(net.blobs["ip"].data, plain.blobs["ip"].data)


def test_an_inference_net_keeps_nothing_and_refuses_a_backward(tmp_path):
    """Net(..., inference=True) (a Solver's test nets, netcli test): the same outputs as the TEST
    net that may still run a backward, without writing what that backward would read; backward()
    is refused with one line."""
    nets = _net(tmp_path, "TEST"), netcli.Net(str(tmp_path / "net.yaml"), phase="TEST", seed=3, inference=True)
    rng = np.random.default_rng(7)
    for layers in zip(*(net.layers for net in nets)):
        if layers[0].type == "BatchNorm":
            stats = rng.standard_normal(layers[0].C), rng.uniform(0.5, 2, layers[0].C)
            for layer in layers:
                layer.blobs[0].data[...], layer.blobs[1].data[...] = stats
                layer.blobs[2].data[...] = 1
    full, inference = nets
    assert all(c.keeps for c in _norm_chains(full))
    assert inference.executor.chains and not any(c.keeps for c in inference.executor.chains.values())
    assert not any(inference.need_backward)
    for net in nets:
        net.forward()
    for name in ("conv1", "conv2b", "ip", "loss", "accuracy"):
        assert np.array_equal(full.blobs[name].data, inference.blobs[name].data), name
    with pytest.raises(netcli.NetcliError, match="made for inference.*forward only"):
        inference.backward()
    with pytest.raises(netcli.NetcliError, match="made for inference"):
        inference.forward_backward()


@pytest.mark.parametrize("change", [
    ("{{name: scale1, type: Scale, bottom: conv1, top: conv1,", "{{name: scale1, type: Scale, bottom: conv1, top: s1,"),
    ("{{name: bn1, type: BatchNorm, bottom: conv1, top: conv1}}", "{{name: bn1, type: BatchNorm, bottom: conv1, top: conv1, loss_weight: 0}}"),
])
def test_a_chain_is_left_apart_where_its_blobs_differ(tmp_path, change):
    """A Scale writing a blob of its own (someone may read the BatchNorm's output) is not fused
    with the BatchNorm; a loss weight on a top (even 0, as written) keeps it too."""
    old, new = change
    text = NET.replace(old, new)
    if "top: s1" in new:
        text = text.replace("{{name: relu1, type: ReLU, bottom: conv1, top: conv1}}",
                            "{{name: relu1, type: ReLU, bottom: s1, top: s1}}")
        net = _net(tmp_path, "TRAIN", text=text)
        assert "bn1" not in _names(net)
    else:
        net = _net(tmp_path, "TRAIN", text=text)
        assert "bn1" in _names(net)       # a zero weight is no loss


JOIN = "{{name: res2, type: Eltwise, bottom: [conv1, conv2b], top: res2}}"
RELU2 = "{{name: relu2, type: ReLU, bottom: res2, top: res2}}"


@pytest.mark.parametrize("join,relu,fused", [
    (JOIN.replace("top: res2}}", "top: res2, eltwise_param: {{coeff: [0.5, -1.5]}}}}"), RELU2, True),
    (JOIN, RELU2.replace("top: res2}}", "top: res2, relu_param: {{negative_slope: 0.2}}}}"), True),
    (JOIN.replace("top: res2}}", "top: res2, propagate_down: [false, true]}}"), RELU2, True),
    (JOIN, RELU2.replace("top: res2}}", "top: res2, relu_param: {{negative_slope: -0.2}}}}"), False),
    (JOIN.replace("top: res2}}", "top: res2, eltwise_param: {{operation: MAX}}}}"), RELU2, False),
])
def test_an_eltwise_sum_and_its_relu_run_as_one_pass_with_the_same_bits(tmp_path, join, relu, fused):
    """Eltwise SUM + the ReLU in place on it (exec/fusion.py, SumReLU): with coefficients, a slope,
    a bottom not back-propagated into, the same bits as the two layers apart, every blob's data
    and diff; not fused where the ReLU needs a mask (a negative slope) or the Eltwise is no SUM."""
    text = NET.replace(JOIN, join).replace(RELU2, relu)
    nets = _net(tmp_path, "TRAIN", text=text), _unfused(_net(tmp_path, "TRAIN", text=text))
    head = nets[0].layer_names.index("res2")
    assert (_names(nets[0]).get("res2") == ["res2", "relu2"]) == fused
    assert not fused or nets[0].executor.chains[head].backward
    for net in nets:
        net.clear_param_diffs()
        net.forward_backward()
    _same(_state(nets[0]), _state(nets[1]))
    assert np.abs(nets[0].param_diff).max() > 0


@pytest.mark.parametrize("phase", ["TEST", "TRAIN"])
def test_a_net_sharing_another_nets_params_gets_the_gradients_of_a_net_of_its_own(tmp_path, phase):
    """Backward in a net whose params (and diffs) are another net's, as pycaffe's
    solver.test_nets[0].backward(): each layer over the shares, reading what each share's forward
    kept (LRN's scale, the max pool's and ReLU's masks, BatchNorm's statistics in TRAIN), gives
    the gradients a net with its own params gets (up to the order of the shares' sums)."""
    own = _net(tmp_path, phase)
    owner = _net(tmp_path, "TRAIN")
    shared = _net(tmp_path, phase)
    shared.share_weights(owner)
    assert own.executor.backward_ok and not shared.executor.backward_ok
    for net in (own, shared):
        net.forward()
        net.clear_param_diffs()
        net.backward()
    assert np.array_equal(own.blobs["ip"].data, shared.blobs["ip"].data)
    got, want = owner.param_diff, own.param_diff
    assert np.abs(want).max() > 0
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6 * np.abs(want).max())


@pytest.mark.parametrize("nthreads", [1, 3])
def test_frozen_statistics_in_training_fold_into_the_convolution(tmp_path, nthreads, thread_count):
    """A TRAIN net whose BatchNorms use their stored statistics (fine-tuning with frozen BN):
    each chain runs inside its convolution's forward, the backward apart; a training pass gives
    the unfused bits, on any thread count."""
    thread_count(nthreads)
    text = NET.replace("type: BatchNorm, bottom: conv1, top: conv1}}",
                       "type: BatchNorm, bottom: conv1, top: conv1, batch_norm_param: {{use_global_stats: true}}}}")
    text = text.replace("type: BatchNorm, bottom: conv2a, top: conv2a}}",
                        "type: BatchNorm, bottom: conv2a, top: conv2a, batch_norm_param: {{use_global_stats: true}}}}")
    nets = _net(tmp_path, "TRAIN", text=text), _unfused(_net(tmp_path, "TRAIN", text=text))
    rng = np.random.default_rng(8)
    stats = {}
    for net in nets:
        for name, layer in zip(net.layer_names, net.layers):
            if layer.type == "BatchNorm":
                stats.setdefault(name, (rng.standard_normal(layer.C), rng.uniform(0.5, 2, layer.C)))
                layer.blobs[0].data[...], layer.blobs[1].data[...] = stats[name]
                layer.blobs[2].data[...] = 1
    fused, plain = nets
    assert _folded(fused) == ["conv1", "conv2a"]               # conv2b's BatchNorm uses the batch's
    for net in nets:
        net.clear_param_diffs()
        net.forward_backward()
    a, b = _state(fused), _state(plain)
    _same(a, b)
    assert np.abs(a["param_diff"]).max() > 0


ONE_IMAGE = """\
name: OneImage
layers:
  - {name: in, type: Input, top: data, input_param: {shape: {dim: [1, 64, 64, 64]}}}
""" + "".join(f"""\
  - {{name: {c}, type: Convolution, bottom: {x}, top: {c},
     convolution_param: {{num_output: {k}, kernel_size: {ks}, stride: {s}, pad: {p}, bias_term: false,
                          weight_filler: {{type: msra}}}}}}
  - {{name: bn_{c}, type: BatchNorm, bottom: {c}, top: {c}}}
  - {{name: scale_{c}, type: Scale, bottom: {c}, top: {c}, scale_param: {{bias_term: true}}}}
""" + (f"  - {{name: relu_{c}, type: ReLU, bottom: {c}, top: {c}}}\n" if c != "d" else "")
    for c, x, k, ks, s, p in [("a", "data", 64, 1, 1, 0), ("b", "a", 248, 3, 2, 1), ("c", "b", 520, 3, 2, 1),
                              ("d", "pool", 2048, 1, 1, 0)]).replace(
    "  - {name: d,", "  - {name: pool, type: Pooling, bottom: c, top: pool, pooling_param: {pool: MAX, kernel_size: 4, stride: 4}}\n  - {name: d,")


@pytest.mark.parametrize("nthreads", [1, 2])
def test_one_image_runs_each_chain_in_its_convolutions_tiles(tmp_path, nthreads, thread_count, monkeypatch):
    """Batch-1 inference (ops/cpu/conv2d.py, one image in tiles): each chain runs on the tiles
    of its convolution's GEMM as they finish, in blocks of positions ("1x1" at 64x64, im2col at
    32x32) and of output channels (im2col at 16x16, "1x1-nhwc" at 4x4): the bits of the layers
    run one by one."""
    from netcli.exec import fusion
    thread_count(nthreads)
    path = tmp_path / "one.yaml"
    path.write_text(ONE_IMAGE)
    nets = netcli.Net(str(path), phase="TEST", seed=3, inference=True), \
        _unfused(netcli.Net(str(path), phase="TEST", seed=3, inference=True))
    fused, plain = nets
    assert [fused.layers[fused.layer_names.index(c)].algorithm for c in "abcd"] == ["1x1", "im2col", "im2col", "1x1-nhwc"]
    assert _folded(fused) == list("abcd")
    rng = np.random.default_rng(9)
    x = rng.standard_normal(fused.blobs["data"].data.shape).astype(np.float32)
    for layers in zip(*(net.layers for net in nets)):
        params = [rng.uniform(0.5, 2, b.data.shape) if layers[0].type in ("BatchNorm", "Scale") and j == 1 - (
            layers[0].type == "Scale") else rng.standard_normal(b.data.shape) for j, b in enumerate(layers[0].blobs)]
        if layers[0].type == "BatchNorm":
            params[2] = 1
        for layer in layers:
            for b, v in zip(layer.blobs, params):
                b.data[...] = v
    tiles = []
    real = fusion.ops.norm_scale_relu_tile
    monkeypatch.setattr(fusion.ops, "norm_scale_relu_tile", lambda *a: (tiles.append(a[-4:]), real(*a)))
    for net in nets:
        net.blobs["data"].data[...] = x
        net.forward()
    assert len(tiles) == 4 * 4                    # ONE_IMAGE_TILES each
    assert {t for t in tiles if t[1] - t[0] < 512} and {t for t in tiles if t[3] - t[2] < 64 * 64}
    for c in "abcd":
        assert np.array_equal(fused.blobs[c].data, plain.blobs[c].data), c
    assert (fused.blobs["d"].data < 0).any() and (fused.blobs["c"].data > 0).any()


ONE_IMAGE_ROWS = """\
name: OneImageRows
layers:
  - {name: in, type: Input, top: data, input_param: {shape: {dim: [1, 64, 64, 64]}}}
  - {name: a, type: Convolution, bottom: data, top: a,
     convolution_param: {num_output: 40, kernel_size: 3, stride: 2, pad: 1, bias_term: false, weight_filler: {type: msra}}}
  - {name: bn_a, type: BatchNorm, bottom: a, top: a}
  - {name: scale_a, type: Scale, bottom: a, top: a, scale_param: {bias_term: true}}
  - {name: relu_a, type: ReLU, bottom: a, top: a}
  - {name: b, type: Convolution, bottom: a, top: b,
     convolution_param: {num_output: 12, kernel_size: 3, stride: 2, pad: 1, weight_filler: {type: msra},
                         bias_filler: {type: gaussian}}}
"""


@pytest.mark.parametrize("nthreads", [1, 2])
def test_one_image_im2row_makes_its_rows_in_tiles_of_positions(tmp_path, nthreads, thread_count, monkeypatch):
    """Batch-1 inference, "im2row" with more positions than output channels (ResNet-50's conv1):
    each tile of positions makes its own patch rows, its GEMM rows, its part of the NCHW output
    and runs the chain on it; the bits of the layers run one by one, with and without a bias."""
    from netcli.exec import fusion
    from netcli.ops.cpu import im2col
    thread_count(nthreads)
    path = tmp_path / "rows.yaml"
    path.write_text(ONE_IMAGE_ROWS)
    fused = netcli.Net(str(path), phase="TEST", seed=3, inference=True)
    plain = _unfused(netcli.Net(str(path), phase="TEST", seed=3, inference=True))
    assert [fused.layers[fused.layer_names.index(c)].algorithm for c in "ab"] == ["im2row", "im2row"]
    rng = np.random.default_rng(11)
    for layers in zip(fused.layers, plain.layers):
        for j, b in enumerate(layers[0].blobs):
            v = rng.uniform(0.5, 2, b.data.shape) if layers[0].type == "BatchNorm" else rng.standard_normal(b.data.shape)
            for layer in layers:
                layer.blobs[j].data[...] = v
    firsts, tiles = [], []
    real_rows, real_tile = im2col.im2row, fusion.ops.norm_scale_relu_tile
    monkeypatch.setattr(im2col, "im2row", lambda *a: (firsts.append((a[-1], a[1].shape[0])), real_rows(*a)))
    monkeypatch.setattr(fusion.ops, "norm_scale_relu_tile", lambda *a: (tiles.append(a[-4:]), real_tile(*a)))
    x = rng.standard_normal(fused.blobs["data"].data.shape).astype(np.float32)
    for net in (fused, plain):
        net.blobs["data"].data[...] = x
        net.forward()
    # a: 4 tiles of its 1024 positions in each net; b (1.1M multiply-adds, 256 positions) untiled
    assert sorted(firsts) == sorted([(p, 256) for p in (0, 256, 512, 768)] * 2 + [(0, 256)] * 2)
    assert len(firsts) == 10
    assert sorted(tiles) == [(0, 40, p, p + 256) for p in (0, 256, 512, 768)]
    for c in "ab":
        assert np.array_equal(fused.blobs[c].data, plain.blobs[c].data), c
    assert (fused.blobs["a"].data > 0).any() and (fused.blobs["a"].data == 0).any()
