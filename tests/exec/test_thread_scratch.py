"""The CPU executor's scratch (PerSample.scratch: arrays a call writes before it reads them) is one
flat buffer per running thread, shared by every layer and share that thread runs, instead of a set
per layer and share; results keep their bits for any thread count."""
import numpy as np
import pytest

import netcli
from netcli.exec import threads
from netcli.exec.memory_plan import packed as _packed

# batch 64: two shares of 32; conv1 planes (3 channels), conv2 winograd4, conv6 direct (16 channels),
# conv7 im2col (2 groups), conv3 im2row (stride 2, 24 outputs), conv4 1x1, conv5 1x1-nhwc (small image)
NET = """
name: scratch
layers:
  - {name: in, type: Input, top: [data, label], input_param: {shape: [{dim: [64, 3, 18, 18]}, {dim: [64]}]}}
  - {name: conv1, type: Convolution, bottom: data, top: conv1,
     convolution_param: {num_output: 48, kernel_size: 3, weight_filler: {type: xavier}, bias_filler: {type: gaussian}}}
  - {name: relu1, type: ReLU, bottom: conv1, top: conv1}
  - {name: conv2, type: Convolution, bottom: conv1, top: conv2,
     convolution_param: {num_output: 16, kernel_size: 3, pad: 1, weight_filler: {type: xavier}}}
  - {name: conv6, type: Convolution, bottom: conv2, top: conv6,
     convolution_param: {num_output: 16, kernel_size: 3, pad: 1, weight_filler: {type: xavier}}}
  - {name: conv7, type: Convolution, bottom: conv6, top: conv7,
     convolution_param: {num_output: 16, kernel_size: 3, pad: 1, group: 2, weight_filler: {type: xavier}}}
  - {name: conv3, type: Convolution, bottom: conv7, top: conv3,
     convolution_param: {num_output: 24, kernel_size: 3, stride: 2, pad: 1, weight_filler: {type: xavier}}}
  - {name: conv4, type: Convolution, bottom: conv3, top: conv4,
     convolution_param: {num_output: 24, kernel_size: 1, weight_filler: {type: xavier}}}
  - {name: pool, type: Pooling, bottom: conv4, top: pool, pooling_param: {pool: MAX, kernel_size: 4, stride: 4}}
  - {name: conv5, type: Convolution, bottom: pool, top: conv5,
     convolution_param: {num_output: 8, kernel_size: 1, weight_filler: {type: xavier}}}
  - {name: ip, type: InnerProduct, bottom: conv5, top: ip,
     inner_product_param: {num_output: 4, weight_filler: {type: xavier}}}
  - {name: loss, type: SoftmaxWithLoss, bottom: [ip, label], top: loss}
"""


@pytest.fixture
def net(tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(NET)
    net = netcli.Net(str(path), phase="TRAIN", seed=1)
    rng = np.random.default_rng(2)
    net.blobs["data"].data[...] = rng.standard_normal((64, 3, 18, 18))
    net.blobs["label"].data[...] = rng.integers(0, 4, 64)
    old = threads.count()
    yield net
    threads.set_threads(old)


def test_every_algorithm_is_in_the_net(net):
    algorithms = {net.layers[net.layer_names.index(f"conv{k}")].algorithm for k in range(1, 8)}
    assert algorithms == {"planes", "im2col", "winograd4", "direct", "im2row", "1x1", "1x1-nhwc"}


def test_scratch_is_allocated_once_per_thread_not_per_layer_and_share(net):
    ex, ws = net.executor, net.executor.ws
    convs = [i for i, layer in enumerate(net.layers) if layer.type == "Convolution"]
    per_call = [_packed(net.layers[i].scratch(hi - lo))[1] for i in convs
                for lo, hi in ex.shares[ex.batch_of[i]]]
    assert len(ex.shares[64]) == 2 and all(per_call)
    assert ws.scratch_bytes == max(per_call)
    threads.set_threads(2)
    net.forward_backward()
    assert len(ws.thread_scratch) == 2 and all(b.nbytes == max(per_call) for b in ws.thread_scratch)
    before = sum(per_call)                   # what a set per layer and share held
    assert sum(b.nbytes for b in ws.thread_scratch) < before
    # forward and backward of a share in one go: the state the backward reads is one set per
    # thread (one region per layer), apart from the thread's scratch
    assert all(not any(ws.per_share[i]) for i in set(ws.per_share) & set(convs))
    for i in convs:
        for t in range(2):
            for s in range(2):
                call = ws.calls(2, True)[t][i][s]
                for k in net.layers[i].workspace(32):
                    assert call[k].size == 0 or np.shares_memory(call[k], ws.thread_workspace[t])
                for k in net.layers[i].scratch(32):
                    assert call[k].size == 0 or np.shares_memory(call[k], ws.thread_scratch[t])
    # forward and backward apart: the state stays per share
    net.forward()
    net.backward()
    for i in convs:
        for s in range(2):
            state = ex.workspaces[i][s]
            assert set(state) == set(net.layers[i].workspace(32))
            for t in range(2):
                call = ws.calls(2, False)[t][i][s]
                assert all(call[k] is state[k] for k in state)
                for k in net.layers[i].scratch(32):
                    assert call[k].size == 0 or np.shares_memory(call[k], ws.thread_scratch[t])


def test_thread_workspaces_keep_the_bits_of_per_share_ones(net):
    threads.set_threads(2)
    net.clear_param_diffs()
    fused = net.forward_backward(cleared=True), net.param_diff.copy(), net.blobs["conv2"].diff.copy()
    net.clear_param_diffs()
    net.forward()
    net.backward()
    apart = net.loss, net.param_diff.copy(), net.blobs["conv2"].diff.copy()
    assert fused[0] == apart[0] and np.array_equal(fused[1], apart[1]) and np.array_equal(fused[2], apart[2])


def test_the_shared_scratch_keeps_the_bits_for_any_thread_count(net):
    got = []
    for n in (1, 2, 3, 1):                   # the per-thread sets grow with the thread count
        threads.set_threads(n)
        net.clear_param_diffs()
        loss = net.forward_backward(cleared=True)
        got.append((loss, net.param_diff.copy(), net.blobs["conv4"].data.copy()))
    for loss, diff, top in got[1:]:
        assert loss == got[0][0]
        assert np.array_equal(diff, got[0][1]) and np.array_equal(top, got[0][2])
    assert np.count_nonzero(got[0][1]) > 0.9 * got[0][1].size


# a forward-only net with every algorithm that keeps arrays for a backward: winograd4, depthwise-nhwc
# (3x3 in one pass, with a BatchNorm chain after it, and 5x5 tap by tap), 1x1-nhwc, im2row, im2col
FORWARD_ONLY = """
name: forward_only
layers:
  - {name: in, type: Input, top: data, input_param: {shape: {dim: [16, 48, 16, 16]}}}
  - {name: wino, type: Convolution, bottom: data, top: wino,
     convolution_param: {num_output: 32, kernel_size: 3, pad: 1, weight_filler: {type: msra}}}
  - {name: dw, type: Convolution, bottom: wino, top: dw,
     convolution_param: {num_output: 32, group: 32, kernel_size: 3, pad: 1, stride: 4, bias_term: false,
                         weight_filler: {type: msra}}}
  - {name: bn_dw, type: BatchNorm, bottom: dw, top: dw}
  - {name: scale_dw, type: Scale, bottom: dw, top: dw, scale_param: {bias_term: true, filler: {type: gaussian}}}
  - {name: relu_dw, type: ReLU, bottom: dw, top: dw}
  - {name: pw, type: Convolution, bottom: dw, top: pw,
     convolution_param: {num_output: 48, kernel_size: 1, weight_filler: {type: msra}, bias_filler: {type: gaussian}}}
  - {name: rows, type: Convolution, bottom: pw, top: rows,
     convolution_param: {num_output: 24, kernel_size: 3, pad: 1, weight_filler: {type: msra}}}
  - {name: cols, type: Convolution, bottom: data, top: cols,
     convolution_param: {num_output: 8, kernel_size: 5, stride: 2, pad: 2, group: 2, weight_filler: {type: msra}}}
  - {name: dw5, type: Convolution, bottom: cols, top: dw5,
     convolution_param: {num_output: 8, group: 8, kernel_size: 5, pad: 2, weight_filler: {type: msra},
                         bias_filler: {type: gaussian}}}
"""


@pytest.mark.parametrize("nthreads", [1, 2])
def test_a_forward_that_keeps_nothing_takes_its_arrays_from_the_scratch(tmp_path, nthreads, thread_count):
    """A convolution whose backward the net never runs (Net(..., inference=True), or no loss below
    it) keeps nothing per share: what its forward writes for a backward (patches, padded or
    transformed inputs) is scratch, and "depthwise-nhwc" pads one image at a time. The outputs
    keep the bits of the same net that keeps them (force_backward)."""
    thread_count(nthreads)
    (tmp_path / "net.yaml").write_text(FORWARD_ONLY)
    (tmp_path / "keep.yaml").write_text(FORWARD_ONLY + "force_backward: true\n")
    lean = netcli.Net(str(tmp_path / "net.yaml"), phase="TEST", seed=3, inference=True)
    full = netcli.Net(str(tmp_path / "keep.yaml"), phase="TEST", seed=3)
    convs = [i for i, layer in enumerate(lean.layers) if layer.type == "Convolution"]
    assert [lean.layers[i].algorithm for i in convs] == ["winograd4", "depthwise-nhwc", "1x1-nhwc", "im2row", "im2col",
                                                         "depthwise-nhwc"]
    for i in convs:
        kept, scratch = full.layers[i].workspace(16), lean.layers[i].scratch(16)
        assert kept and not lean.layers[i].workspace(16) and not lean.layers[i].keeps_for_backward
        assert set(kept) <= set(scratch) and full.layers[i].keeps_for_backward
        assert scratch.get("xp", ((1,),))[0][0] == 1           # depthwise-nhwc: one image padded at a time
    rng = np.random.default_rng(4)
    x = rng.standard_normal(lean.blobs["data"].data.shape).astype(np.float32)
    for a, b in zip(lean.layers, full.layers):
        for pa, pb in zip(a.blobs, b.blobs):
            pa.data[...] = pb.data[...] = rng.uniform(0.5, 2, pa.data.shape) if a.type == "BatchNorm" else \
                rng.standard_normal(pa.data.shape)
    for net in (lean, full):
        net.blobs["data"].data[...] = x
        net.forward()
    for name in ("wino", "dw", "pw", "rows", "dw5"):
        assert np.array_equal(lean.blobs[name].data, full.blobs[name].data), name
        assert np.isfinite(lean.blobs[name].data).all() and np.count_nonzero(lean.blobs[name].data)
    assert not any(ws for i in convs for ws in lean.executor.workspaces[i])
