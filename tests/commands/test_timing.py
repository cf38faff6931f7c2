"""`netcli time` (netcli/commands/timing.py): each Convolution layer's rows name its algorithm
(after Caffe's "name<TAB>forward: X ms." so that the rows still parse as Caffe's)."""
import textwrap
import time

import numpy as np

import netcli
from netcli.commands.timing import benchmark

ALGORITHMS_NET = """\
name: algorithms
layers:
  - {{name: in, type: Input, top: data, input_param: {{shape: {{dim: [{n}, 16, 24, 22]}}}}}}
  - {{name: conv_dw, type: Convolution, bottom: data, top: dw,
     convolution_param: {{num_output: 16, group: 16, kernel_size: 3, pad: 1, weight_filler: {{type: xavier}},
                         bias_filler: {{type: gaussian}}}}}}
  - {{name: conv_pw, type: Convolution, bottom: dw, top: pw,
     convolution_param: {{num_output: 4, kernel_size: 1, weight_filler: {{type: xavier}}}}}}
  - {{name: conv_few, type: Convolution, bottom: pw, top: few,
     convolution_param: {{num_output: 4, kernel_size: 3, stride: 2, weight_filler: {{type: xavier}}}}}}
  - {{name: conv_many, type: Convolution, bottom: dw, top: many,
     convolution_param: {{num_output: 3, kernel_size: 3, weight_filler: {{type: xavier}}}}}}
  - {{name: conv_wino, type: Convolution, bottom: dw, top: wino,
     convolution_param: {{num_output: 2, kernel_size: 3, pad: 1, weight_filler: {{type: xavier}}}}}}
  - {{name: loss3, type: Reduction, bottom: wino, top: l3, loss_weight: 1, reduction_param: {{operation: SUMSQ}}}}
  - {{name: loss1, type: Reduction, bottom: few, top: l1, loss_weight: 1, reduction_param: {{operation: SUMSQ}}}}
  - {{name: flat, type: Flatten, bottom: many, top: flat}}
  - {{name: ip, type: InnerProduct, bottom: flat, top: ip,
     inner_product_param: {{num_output: 2, weight_filler: {{type: xavier}}}}}}
  - {{name: red, type: Reduction, bottom: ip, top: l2, loss_weight: 1}}
"""
EXPECTED = {"conv_dw": "depthwise", "conv_pw": "1x1", "conv_few": "im2col", "conv_many": "im2row",
            "conv_wino": "winograd4"}


def _net_file(tmp_path, n):
    p = tmp_path / "net.yaml"
    p.write_text(textwrap.dedent(ALGORITHMS_NET.format(n=n)))
    return str(p)


def test_time_names_each_convolution_algorithm(tmp_path):
    lines = []
    result = benchmark(_net_file(tmp_path, 2), iterations=1, echo=lines.append)
    for name, algorithm in EXPECTED.items():
        for word in ("forward", "backward"):
            assert any(line.strip().startswith(f"{name}\t{word}: ") and line.endswith(f" ms. [{algorithm}]")
                       for line in lines), (name, word, lines)
        row = next(r for r in result["layers"] if r["name"] == name)
        assert row["algorithm"] == algorithm
    assert "algorithm" not in next(r for r in result["layers"] if r["name"] == "ip")
    assert any(line.strip().startswith("ip\tforward:") and line.endswith(" ms.") for line in lines)


def test_algorithms_give_the_same_bits_for_any_thread_count(tmp_path):
    """Depthwise, 1x1, Winograd, im2col and im2row layers in one net of 70 samples (shares of >= 32): the
    loss and every param gradient have the same bits with 1, 2 and 3 threads."""
    from netcli.exec import threads
    old = threads.count()
    net = netcli.Net(_net_file(tmp_path, 70), phase="TRAIN", seed=1)
    x = np.random.default_rng(3).standard_normal((70, 16, 24, 22)).astype(np.float32)
    got = []
    try:
        for t in (1, 2, 3):
            threads.set_threads(t)
            net.clear_param_diffs()
            net.forward(data=x)
            net.backward()
            got.append((float(net.loss), net.param_diff.copy()))
    finally:
        threads.set_threads(old)
    assert np.count_nonzero(got[0][1]) > 0.9 * got[0][1].size
    for loss, diff in got[1:]:
        assert loss == got[0][0]
        assert np.array_equal(diff, got[0][1])


def test_no_timed_iteration_holds_a_layer_first_call(tmp_path):
    """A layer's first call alone (a kernel that training's fused pass never compiled) falls in
    time_layers' untimed pass: each timed average is that of later calls."""
    from netcli.commands.timing import time_layers
    net = netcli.Net(_net_file(tmp_path, 2), phase="TRAIN")
    real, seen = net.executor.time_layer, set()

    def first_call_slow(i, forward):
        if (i, forward) not in seen:
            seen.add((i, forward))
            time.sleep(0.2)
        return real(i, forward=forward)
    net.executor.time_layer = first_call_slow
    fwd, bwd, total, _ = time_layers(net, 2)
    assert seen and max(fwd.max(), bwd.max()) < 100 and total < 0.2 * len(seen) / 2      # (a sleep timed: >= 100)


def test_time_says_when_kernels_compile(tmp_path, monkeypatch):
    """A kernel compiled in the warm-up pass is announced, then named with its seconds, before the
    timed iterations begin (ops/compiles.py's notice)."""
    from helpers import fresh_kernel
    kernel, forward = fresh_kernel("netcli.ops.cpu.probe"), netcli.Net.forward

    def forward_compiling(net, *args, **kwargs):
        kernel(np.float32(1))
        return forward(net, *args, **kwargs)
    monkeypatch.setattr(netcli.Net, "forward", forward_compiling)
    said = []
    benchmark(_net_file(tmp_path, 2), iterations=1, echo=said.append)
    begins = said.index("*** Benchmark begins ***")
    notice = said.index("Compiling kernels (first use; Numba caches them on disk for later runs) ...")
    done = next(i for i, line in enumerate(said) if line.startswith("Kernels compiled in "))
    assert notice < done < begins and "probe.add_one" in said[done]


def test_a_layer_timed_alone_combines_only_its_own_gradients(tmp_path, monkeypatch):
    """A layer's backward timed alone sums the shares' gradients of its own params, not the whole
    net's (a MobileNet's every ReLU read 1.2 ms backward against 0.1 forward); the gradients that
    time_layers leaves are still the whole net's."""
    from netcli.commands.timing import time_layers
    from netcli.exec import cpu
    net = netcli.Net(_net_file(tmp_path, 70), phase="TRAIN", seed=1)
    net.blobs["data"].data[...] = np.random.default_rng(3).standard_normal((70, 16, 24, 22))
    touched = []
    real_combine, real_add = cpu.combine_shares, cpu.add_child
    monkeypatch.setattr(cpu, "combine_shares", lambda base, scratch, lo, hi: (touched.append((lo, hi)),
                                                                              real_combine(base, scratch, lo, hi)))
    monkeypatch.setattr(cpu, "add_child", lambda base, scratch, rows, a, b, lo, hi: (
        touched.append((lo, hi)), real_add(base, scratch, rows, a, b, lo, hi)))
    start = net.param_diff.__array_interface__["data"][0]
    for name in ("flat", "ip", "conv_wino"):
        i = net.layer_names.index(name)
        held = [((d.__array_interface__["data"][0] - start) // 4, d.size) for d in [b.diff for b in net.layers[i].blobs]]
        net.forward()
        touched.clear()
        net.executor.time_layer(i, forward=False)
        assert all(any(lo <= a and b <= lo + size for lo, size in held) for a, b in touched if b > a), (name, touched)
        assert bool(touched) == bool(held), name
    time_layers(net, 1)
    timed = net.param_diff.copy()
    net.clear_param_diffs()
    net.forward()
    net.backward()
    assert np.count_nonzero(timed) > 0.9 * timed.size
    np.testing.assert_allclose(timed, net.param_diff, rtol=1e-5, atol=1e-6)
