"""Graph behaviour: in-place, splits, sharing, phases, loss_weight; weights files; LeNet forward
against an independent NumPy computation."""
import textwrap

import numpy as np
import pytest

import netcli
from netcli.errors import NetcliError
from reference import conv2d, pool2d, softmax


def write(tmp_path, text, name="net.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


IP = "inner_product_param: {{num_output: {n}, weight_filler: {{type: gaussian, std: 0.5}}, bias_filler: {{type: gaussian}}}}"


def test_lenet_deploy_matches_independent_reference():
    net = netcli.Net("configs/lenet_deploy.yaml", seed=3)
    x = np.random.default_rng(0).random((64, 1, 28, 28)).astype(np.float32)
    out = net.forward(data=x)["prob"]
    P = {k: [b.data.astype(np.float64) for b in v] for k, v in net.params.items()}
    h = conv2d(x.astype(np.float64), *P["conv1"])
    h = pool2d(h, (2, 2), (2, 2), (0, 0), "MAX")
    h = conv2d(h, *P["conv2"])
    h = pool2d(h, (2, 2), (2, 2), (0, 0), "MAX").reshape(64, -1)
    h = np.maximum(h @ P["ip1"][0].T + P["ip1"][1], 0)
    ref = softmax(h @ P["ip2"][0].T + P["ip2"][1])
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-7)
    assert net.param_data.size == 431080


def test_in_place_relu_shares_the_blob_and_backprops(tmp_path):
    path = write(tmp_path, f"""
        layers:
          - {{name: in, type: Input, top: [x, y], input_param: {{shape: [{{dim: [4, 3]}}, {{dim: [4, 2]}}]}}}}
          - {{name: ip, type: InnerProduct, bottom: x, top: h, {IP.format(n=2)}}}
          - {{name: relu, type: ReLU, bottom: h, top: h}}
          - {{name: loss, type: EuclideanLoss, bottom: [h, y], top: loss}}
        """)
    net = netcli.Net(path, seed=0)
    assert [l.type for l in net.layers] == ["Input", "InnerProduct", "ReLU", "EuclideanLoss"]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    net.forward(x=x, y=y)
    w, b = (p.data.astype(np.float64) for p in net.params["ip"])
    h = np.maximum(x @ w.T + b, 0)
    assert net.loss == pytest.approx(((h - y) ** 2).sum() / 8, rel=1e-5)
    net.clear_param_diffs()
    net.backward()
    dh = (h - y) / 4 * (h > 0)
    np.testing.assert_allclose(net.params["ip"][0].diff, dh.T @ x, rtol=1e-4, atol=1e-6)


def test_split_of_shared_blob_sums_gradients(tmp_path):
    path = write(tmp_path, f"""
        layers:
          - {{name: in, type: Input, top: [x, y], input_param: {{shape: [{{dim: [5, 3]}}, {{dim: [5, 2]}}]}}}}
          - {{name: ip, type: InnerProduct, bottom: x, top: h, {IP.format(n=2)}}}
          - {{name: l1, type: EuclideanLoss, bottom: [h, y], top: l1}}
          - {{name: l2, type: EuclideanLoss, bottom: [h, y], top: l2, loss_weight: 3}}
        """)
    net = netcli.Net(path, seed=1)
    assert "Split" in [l.type for l in net.layers]
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    net.forward(x=x, y=y)
    w, b = (p.data.astype(np.float64) for p in net.params["ip"])
    h = x @ w.T + b
    one = ((h - y) ** 2).sum() / 10
    assert net.loss == pytest.approx(4 * one, rel=1e-5)
    net.clear_param_diffs()
    net.backward()
    dh = 4 * (h - y) / 5
    np.testing.assert_allclose(net.params["ip"][0].diff, dh.T @ x, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(net.params["ip"][1].diff, dh.sum(0), rtol=1e-4, atol=1e-6)


def test_weight_sharing_one_param_both_layers_accumulate(tmp_path):
    path = write(tmp_path, f"""
        layers:
          - {{name: in, type: Input, top: [a, b, y], input_param: {{shape: [{{dim: [4, 3]}}, {{dim: [4, 3]}}, {{dim: [4, 2]}}]}}}}
          - {{name: ipa, type: InnerProduct, bottom: a, top: ha, param: [{{name: w}}, {{name: bias}}], {IP.format(n=2)}}}
          - {{name: ipb, type: InnerProduct, bottom: b, top: hb, param: [{{name: w}}, {{name: bias}}], {IP.format(n=2)}}}
          - {{name: sum, type: Eltwise, bottom: [ha, hb], top: h}}
          - {{name: loss, type: EuclideanLoss, bottom: [h, y], top: loss}}
        """)
    net = netcli.Net(path, seed=2)
    assert net.params["ipa"][0] is net.params["ipb"][0]
    assert len(net.learnable_params) == 2 and net.param_data.size == 8
    rng = np.random.default_rng(2)
    a, b, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    net.forward(a=a, b=b, y=y)
    w, bias = (p.data.astype(np.float64) for p in net.params["ipa"])
    h = a @ w.T + b @ w.T + 2 * bias
    net.clear_param_diffs()
    net.backward()
    dh = (h - y) / 4
    np.testing.assert_allclose(net.params["ipa"][0].diff, dh.T @ (a + b), rtol=1e-4, atol=1e-6)
    # one update through the flat buffer changes both layers
    net.param_data -= 0.1 * net.param_diff
    np.testing.assert_array_equal(net.params["ipa"][0].data, net.params["ipb"][0].data)


def test_phase_filtering_and_outputs(tmp_path):
    path = write(tmp_path, f"""
        name: phased
        layers:
          - {{name: in, type: Input, top: [x, label], input_param: {{shape: [{{dim: [4, 3]}}, {{dim: [4]}}]}}}}
          - {{name: ip, type: InnerProduct, bottom: x, top: s, {IP.format(n=3)}}}
          - {{name: drop, type: Dropout, bottom: s, top: s, include: {{phase: TRAIN}}}}
          - {{name: acc, type: Accuracy, bottom: [s, label], top: acc, include: [{{phase: TEST}}]}}
          - {{name: loss, type: SoftmaxWithLoss, bottom: [s, label], top: loss, exclude: {{phase: TEST}}}}
        """)
    train, test = netcli.Net(path, phase="TRAIN"), netcli.Net(path, phase="TEST")
    assert [l.name for l in train.layers] == ["in", "ip", "drop", "loss"]
    assert [l.name for l in test.layers] == ["in", "ip", "acc"]
    assert train.outputs == ["loss"] and test.outputs == ["acc"]
    assert not any(test.need_backward)


def test_loss_weight_scales_loss_and_gradient(tmp_path):
    def build(w):
        return netcli.Net(write(tmp_path, f"""
            layers:
              - {{name: in, type: Input, top: [x, y], input_param: {{shape: [{{dim: [3, 2]}}, {{dim: [3, 2]}}]}}}}
              - {{name: ip, type: InnerProduct, bottom: x, top: h, {IP.format(n=2)}}}
              - {{name: loss, type: EuclideanLoss, bottom: [h, y], top: loss, loss_weight: {w}}}
            """, f"n{w}.yaml"), seed=5)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    n1, n3 = build(1), build(2.5)
    for n in (n1, n3):
        n.forward(x=x, y=y)
        n.clear_param_diffs()
        n.backward()
    assert n3.loss == pytest.approx(2.5 * n1.loss, rel=1e-6)
    np.testing.assert_allclose(n3.param_diff, 2.5 * n1.param_diff, rtol=1e-5)


def test_first_conv_does_not_backprop_into_data():
    net = netcli.Net("configs/lenet_deploy.yaml", phase="TEST")
    conv1 = net.layer_names.index("conv1")
    assert net.propagate_down[conv1] == [False]


def test_weights_round_trip(tmp_path):
    a = netcli.Net("configs/lenet_deploy.yaml", seed=1)
    b = netcli.Net("configs/lenet_deploy.yaml", seed=2)
    assert not np.array_equal(a.param_data, b.param_data)
    a.save(tmp_path / "w.npz")
    with np.load(tmp_path / "w.npz") as z:
        assert sorted(z.files) == ["conv1/0", "conv1/1", "conv2/0", "conv2/1", "ip1/0", "ip1/1", "ip2/0", "ip2/1"]
        assert z["conv1/0"].shape == (20, 1, 5, 5) and z["ip1/0"].shape == (500, 800)
        assert z["conv1/0"].dtype == np.float32
    b.load(tmp_path / "w.npz")
    np.testing.assert_array_equal(a.param_data, b.param_data)
    c = netcli.Net("configs/lenet_deploy.yaml", weights=str(tmp_path / "w.npz"))
    np.testing.assert_array_equal(a.param_data, c.param_data)


def test_weights_load_reports_every_mismatch(tmp_path):
    net = netcli.Net("configs/lenet_deploy.yaml")
    arrays = {k: b.data for k, b in zip(net.param_owner_keys, net.learnable_params)}
    arrays["conv1/0"] = np.zeros((10, 1, 5, 5), np.float32)
    arrays["ip2/1"] = np.zeros((3,), np.float32)
    del arrays["ip1/1"]
    arrays["pool1/0"] = np.zeros(2, np.float32)      # a layer of the net, without params
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(NetcliError) as e:
        net.load(tmp_path / "bad.npz")
    msg = str(e.value)
    for part in ("conv1/0: shape (10, 1, 5, 5) in the file, (20, 1, 5, 5) in the net", "ip2/1", "ip1/1: missing",
                 "pool1/0: in the file but not in the net"):
        assert part in msg


STRETCH_NET = """\
name: stretch
layers:
  - {{name: in, type: Input, top: [data, label], input_param: {{shape: [{{dim: [{n}, 3, 10, 10]}}, {{dim: [{n}]}}]}}}}
  - {{name: conv1, type: Convolution, bottom: data, top: conv1,
     convolution_param: {{num_output: 8, kernel_size: 3, weight_filler: {{type: xavier}}, bias_filler: {{type: gaussian}}}}}}
  - {{name: relu1, type: ReLU, bottom: conv1, top: conv1}}
  - {{name: conv2, type: Convolution, bottom: conv1, top: conv2, param: [{{name: shared_w}}, {{}}],
     convolution_param: {{num_output: 8, kernel_size: 3, pad: 1, weight_filler: {{type: xavier}}}}}}
  - {{name: conv3, type: Convolution, bottom: conv2, top: conv3, param: [{{name: shared_w}}],
     convolution_param: {{num_output: 8, kernel_size: 3, pad: 1, bias_term: false}}}}
  - {{name: pool, type: Pooling, bottom: conv3, top: pool, pooling_param: {{pool: MAX, kernel_size: 2, stride: 2}}}}
  - {{name: flat, type: Flatten, bottom: pool, top: flat}}
  - {{name: ip, type: InnerProduct, bottom: flat, top: ip,
     inner_product_param: {{num_output: 4, weight_filler: {{type: xavier}}, bias_filler: {{type: gaussian}}}}}}
  - {{name: tanh, type: TanH, bottom: ip, top: t}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [t, label], top: loss}}
  - {{name: acc, type: Accuracy, bottom: [t, label], top: acc}}
  - {{name: prob, type: Softmax, bottom: t, top: prob, softmax_param: {{axis: 0}}}}
"""


@pytest.mark.parametrize("nthreads", [1, 2, 3])
@pytest.mark.parametrize("tail", [True, False])
def test_stretches_match_layer_by_layer(tmp_path, nthreads, tail):
    """Per-sample layers run as stretches over fixed shares of the batch (one hand-off per pass)
    with per-share param-gradient scratch combined by a fixed tree; the result must equal running
    the layers one by one, with shared weights, an in-place layer, a Flatten view, a Split and
    uneven shares."""
    from netcli.exec import threads
    old = threads.count()
    threads.set_threads(nthreads)
    try:
        text = STRETCH_NET.format(n=130)          # 4 shares: 32, 33, 32, 33 samples
        if not tail:       # no Softmax over the batch axis (not per-sample) at the end: the net ends in a stretch, and
            text = text[:text.index("  - {name: prob")]    # forward_backward runs it in one go
        net = netcli.Net(write(tmp_path, text), phase="TRAIN", seed=1)
        stretches = net.executor.stretches
        assert max(len(idx) for n, idx in stretches if n) >= 6 and len(net.executor.shares[130]) == 4
        assert (stretches[-1][0] is not None) == (not tail)
        rng = np.random.default_rng(2)
        x, y = rng.standard_normal((130, 3, 10, 10)).astype(np.float32), rng.integers(0, 4, 130).astype(np.float32)
        net.clear_param_diffs()
        net.forward(data=x, label=y)
        net.backward()
        got_loss, got_diff, got_acc = net.loss, net.param_diff.copy(), float(net.blobs["acc"].data)
        assert np.abs(net.executor.scratch).max(initial=0) == 0    # scratch combined and cleared
        net.clear_param_diffs()
        for layer, b, t in zip(net.layers, net.bottom_vecs, net.top_vecs):
            layer.forward(b, t)
        for i in reversed(range(len(net.layers))):
            if net.need_backward[i]:
                net.layers[i].backward(net.top_vecs[i], net.propagate_down[i], net.bottom_vecs[i])
        assert float(net.blobs["loss"].data) == pytest.approx(got_loss, rel=1e-6)
        assert float(net.blobs["acc"].data) == got_acc and 0 < got_acc < 1   # Accuracy over 4 shares
        np.testing.assert_allclose(got_diff, net.param_diff, rtol=1e-4, atol=1e-6)
        net.clear_param_diffs()
        assert net.forward_backward() == pytest.approx(got_loss, rel=1e-6)
        np.testing.assert_allclose(got_diff, net.param_diff, rtol=1e-4, atol=1e-6)
        # After a clear, layers whose params nobody shares write their gradients (conv1, ip),
        # the sharing ones (conv2, conv3) still add; a second pass without the promise adds on.
        assert [net.executor.sole[net.layer_names.index(n)] for n in ("conv1", "conv2", "conv3", "ip")] == \
            [True, False, False, True]
        net.clear_param_diffs()
        net.forward_backward(cleared=True)
        np.testing.assert_allclose(got_diff, net.param_diff, rtol=1e-4, atol=1e-6)
        net.forward_backward()
        np.testing.assert_allclose(2 * got_diff, net.param_diff, rtol=1e-4, atol=1e-6)
        assert np.count_nonzero(got_diff) > 0.9 * got_diff.size
    finally:
        threads.set_threads(old)


def test_results_do_not_depend_on_the_thread_count(tmp_path):
    """One net, run with 1, 2, 3 and 8 threads (changed after building): the loss and every param
    gradient have the same bits."""
    from netcli.exec import threads
    old = threads.count()
    net = netcli.Net(write(tmp_path, STRETCH_NET.format(n=130)), phase="TRAIN", seed=1)
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((130, 3, 10, 10)).astype(np.float32), rng.integers(0, 4, 130).astype(np.float32)
    net.blobs["data"].data[...], net.blobs["label"].data[...] = x, y
    got = []
    try:
        for n in (1, 2, 3, 8):
            threads.set_threads(n)
            net.clear_param_diffs()
            net.forward_backward(cleared=True)
            got.append((net.loss, net.param_diff.copy()))
    finally:
        threads.set_threads(old)
    for loss, diff in got[1:]:
        assert loss == got[0][0] and np.array_equal(diff, got[0][1])


def test_param_diff_is_complete_after_backward(tmp_path):
    """No extra call: what backward() leaves in param_diff is the whole gradient (checked against
    the sum of per-sample gradients, each computed alone)."""
    from netcli.exec import threads
    old = threads.count()
    threads.set_threads(2)
    try:
        def no_accuracy(n):
            text = STRETCH_NET.format(n=n)
            return text[:text.index("  - {name: acc")]
        net = netcli.Net(write(tmp_path, no_accuracy(130)), phase="TRAIN", seed=1)
        one = netcli.Net(write(tmp_path, no_accuracy(1)), phase="TRAIN", seed=1)
        rng = np.random.default_rng(5)
        x, y = rng.standard_normal((130, 3, 10, 10)).astype(np.float32), rng.integers(0, 4, 130).astype(np.float32)
        net.clear_param_diffs()
        net.forward(data=x, label=y)
        net.backward()
        total = np.zeros(one.param_diff.size, np.float64)
        for k in range(130):
            one.clear_param_diffs()
            one.forward(data=x[k:k + 1], label=y[k:k + 1])
            one.backward()
            total += one.param_diff / 130      # SoftmaxWithLoss normalises by the batch
        np.testing.assert_allclose(net.param_diff, total, rtol=2e-4, atol=1e-6)
    finally:
        threads.set_threads(old)


def test_an_error_inside_a_stretch_is_raised_not_a_hang():
    """A layer raising in one share while the others wait to combine gradients (bad label in the
    second share, 2 threads): the error comes out; nothing waits forever."""
    from netcli.exec import threads
    old = threads.count()
    threads.set_threads(2)
    try:
        net = netcli.Net({"name": "t", "layers": [
            {"name": "in", "type": "Input", "top": ["data", "label"],
             "input_param": {"shape": [{"dim": [64, 5]}, {"dim": [64]}]}},
            {"name": "ip", "type": "InnerProduct", "bottom": "data", "top": "ip", "inner_product_param": {"num_output": 3}},
            {"name": "loss", "type": "SoftmaxWithLoss", "bottom": ["ip", "label"], "top": "loss"}]}, phase="TRAIN")
        assert len(net.executor.shares[64]) == 2
        net.blobs["data"].data[...] = np.random.default_rng(0).standard_normal((64, 5))
        for row in (50, 3):                          # in the second share, then in the first
            net.blobs["label"].data[...] = 0
            net.blobs["label"].data[row] = 7
            with pytest.raises(NetcliError, match=f"label 7 in row {row} of the batch"):
                net.forward_backward()
    finally:
        threads.set_threads(old)


BN_NET = """\
name: bn
layers:
  - {{name: in, type: Input, top: [data, label], input_param: {{shape: [{{dim: [{n}, 2, 6, 6]}}, {{dim: [{n}]}}]}}}}
  - {{name: conv, type: Convolution, bottom: data, top: conv,
     convolution_param: {{num_output: 3, kernel_size: 3, bias_term: false, weight_filler: {{type: gaussian}}}}}}
  - {{name: bn, type: BatchNorm, bottom: conv, top: conv}}
  - {{name: scale, type: Scale, bottom: conv, top: conv,
     scale_param: {{bias_term: true, filler: {{type: gaussian, mean: 1}}, bias_filler: {{type: gaussian}}}}}}
  - {{name: relu, type: ReLU, bottom: conv, top: conv}}
  - {{name: ip, type: InnerProduct, bottom: conv, top: ip,
     inner_product_param: {{num_output: 3, weight_filler: {{type: gaussian}}}}}}
  - {{name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}}
"""


@pytest.mark.parametrize("nthreads", [1, 2, 3])
def test_batch_norm_in_a_stretch_matches_finite_differences(tmp_path, nthreads):
    """BatchNorm in TRAIN inside a stretch of 4 shares (statistics gathered per share and combined),
    in place and followed by an in-place Scale and ReLU: the whole net's parameter gradients
    equal central differences of its loss (float64)."""
    from netcli.exec import threads
    old = threads.count()
    threads.set_threads(nthreads)
    try:
        net = netcli.Net(write(tmp_path, BN_NET.format(n=130)), phase="TRAIN", seed=3, dtype=np.float64)
        assert len(net.executor.shares[130]) == 4
        assert [n for n, idx in net.executor.stretches if net.layer_names.index("bn") in idx] == [130]
        rng = np.random.default_rng(4)
        net.blobs["data"].data[...] = rng.standard_normal((130, 2, 6, 6))
        net.blobs["label"].data[...] = rng.integers(0, 3, 130)
        bn = net.layers[net.layer_names.index("bn")]
        running = [b.data.copy() for b in bn.blobs]

        def loss():
            for b, r in zip(bn.blobs, running):
                b.data[...] = r
            return net.forward()["loss"]
        net.clear_param_diffs()
        net.forward_backward()
        grad = net.param_diff.copy()
        checked = 0
        for name in ("conv", "scale", "ip"):
            for blob in net.layers[net.layer_names.index(name)].blobs:
                flat = blob.data.reshape(-1)
                for j in rng.choice(flat.size, min(6, flat.size), replace=False):
                    off = (blob.diff.reshape(-1)[j:j + 1].__array_interface__["data"][0]
                           - net.param_diff.__array_interface__["data"][0]) // 8
                    old_v = flat[j]
                    flat[j] = old_v + 1e-6
                    lp = float(loss())
                    flat[j] = old_v - 1e-6
                    lm = float(loss())
                    flat[j] = old_v
                    num = (lp - lm) / 2e-6
                    assert abs(grad[off] - num) <= 1e-5 * max(1.0, abs(num)), (name, j, grad[off], num)
                    checked += 1
        assert checked >= 20
    finally:
        threads.set_threads(old)


def test_batch_norm_net_results_do_not_depend_on_the_thread_count(tmp_path):
    from netcli.exec import threads
    old = threads.count()
    net = netcli.Net(write(tmp_path, BN_NET.format(n=130)), phase="TRAIN", seed=3)
    rng = np.random.default_rng(4)
    net.blobs["data"].data[...] = rng.standard_normal((130, 2, 6, 6))
    net.blobs["label"].data[...] = rng.integers(0, 3, 130)
    got = []
    try:
        for n in (1, 2, 3, 8):
            threads.set_threads(n)
            for b in net.layers[2].blobs:       # the BatchNorm's running averages, from zero
                b.data[...] = 0
            net.clear_param_diffs()
            net.forward_backward(cleared=True)
            got.append((net.loss, net.param_diff.copy(), np.concatenate([b.data.ravel() for b in net.layers[2].blobs])))
    finally:
        threads.set_threads(old)
    for loss, diff, running in got[1:]:
        assert loss == got[0][0] and np.array_equal(diff, got[0][1]) and np.array_equal(running, got[0][2])


def test_frozen_params_get_no_gradient_but_pass_it_down(tmp_path):
    """lr_mult 0 (Caffe's param_propagate_down false): the layer still back-propagates to its
    bottom, but its frozen params' gradients are not computed (their diffs stay zero)."""
    path = write(tmp_path, f"""
        layers:
          - {{name: in, type: Input, top: [x, y], input_param: {{shape: [{{dim: [4, 2, 5, 5]}}, {{dim: [4, 2]}}]}}}}
          - {{name: conv, type: Convolution, bottom: x, top: c, param: [{{lr_mult: 1}}, {{lr_mult: 0}}],
             convolution_param: {{num_output: 3, kernel_size: 3, weight_filler: {{type: gaussian}}}}}}
          - {{name: ip, type: InnerProduct, bottom: c, top: h, param: [{{lr_mult: 0}}, {{lr_mult: 0}}], {IP.format(n=2)}}}
          - {{name: loss, type: EuclideanLoss, bottom: [h, y], top: loss}}
        """)
    net = netcli.Net(path, seed=2)
    assert net.layer_dict["ip"].param_propagate_down == [False, False]
    rng = np.random.default_rng(0)
    net.forward(x=rng.standard_normal((4, 2, 5, 5)), y=rng.standard_normal((4, 2)))
    net.clear_param_diffs()
    net.backward()
    conv_w, conv_b = net.params["conv"]
    ip_w, ip_b = net.params["ip"]
    assert np.abs(conv_w.diff).sum() > 0            # learned, below a frozen layer: still reached
    assert not conv_b.diff.any() and not ip_w.diff.any() and not ip_b.diff.any()


def test_reshape_as_pycaffe(tmp_path):
    """net.blobs['data'].reshape(1, 1, 28, 28) then net.reshape(): the net runs at batch 1, with the
    same result as row 0 of a batch; forgetting net.reshape() is an error, not the old shape."""
    net = netcli.Net("configs/lenet_deploy.yaml", seed=3)
    x = np.random.default_rng(0).random((64, 1, 28, 28), dtype=np.float32)
    full = net.forward(data=x)["prob"].copy()
    net.blobs["data"].reshape(1, 1, 28, 28)
    with pytest.raises(NetcliError, match=r"call net.reshape\(\)"):
        net.forward()
    net.reshape()
    one = net.forward(data=x[:1])["prob"]
    assert one.shape == (1, 10)
    np.testing.assert_allclose(one, full[:1], rtol=1e-5, atol=1e-7)
    net.blobs["data"].reshape(2, 1, 20, 20)
    with pytest.raises(NetcliError, match="layer 'ip1' .*would need params of shapes"):
        net.reshape()


def test_the_engine_arrays_start_on_cache_lines(tmp_path):
    """blob.aligned_zeros: zeros of the shape and dtype asked, on an ALIGN_BYTES boundary; a
    training net's blobs, params, gradients and per-thread scratch all start on one."""
    from netcli.blob import ALIGN_BYTES, aligned_zeros
    for shape, dtype in (((3, 5, 7), np.float32), (17, np.float64), ((2, 0, 3), np.int32), ((), np.float32)):
        a = aligned_zeros(shape, dtype)
        assert a.shape == np.zeros(shape).shape and a.dtype == dtype and not a.any()
        assert a.flags.c_contiguous and a.flags.writeable
        assert a.ctypes.data % ALIGN_BYTES == 0 or a.size == 0          # (no memory to align)
    net = netcli.Net(write(tmp_path, STRETCH_NET.format(n=64)), phase="TRAIN", seed=1)
    net.forward_backward()
    starts = [a for b in net.blobs.values() for a in (b.data, b.diff) if a.size]
    starts += [net.param_data, net.param_diff, *net.executor.ws.thread_scratch]
    assert [a.ctypes.data % ALIGN_BYTES for a in starts] == [0] * len(starts)
