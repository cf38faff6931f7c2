"""The split of a batch into shares (netcli/exec/stretches.py): fixed by the batch size alone;
a net for inference (not TRAIN) cuts a small batch into shares of at least INFER_ROWS samples, so that
batch-8 inference uses two cores, and its outputs do not depend on the thread count."""
import os

import numpy as np

import netcli
from netcli.exec import threads
from netcli.exec.stretches import INFER_ROWS, MAX_SHARES, shares

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_training_and_inference_splits():
    for n in range(1, 300):
        for inference in (False, True):
            got = shares(n, inference=inference)
            assert got[0][0] == 0 and got[-1][1] == n and all(a[1] == b[0] for a, b in zip(got, got[1:]))
            s = len(got)
            assert s & (s - 1) == 0 and s <= MAX_SHARES
        if n >= 32:
            assert shares(n, inference=True) == shares(n)
    assert [len(shares(n)) for n in (1, 8, 16, 31, 32, 64, 100)] == [1, 1, 1, 1, 2, 2, 2]
    assert [len(shares(n, inference=True)) for n in (1, 7, 8, 16, 31)] == [1, 1, 2, 4, 4]
    assert min(hi - lo for lo, hi in shares(31, inference=True)) >= INFER_ROWS


def test_a_test_net_of_batch_8_runs_two_shares_with_the_same_outputs_for_any_thread_count(tmp_path, thread_count):
    text = open(os.path.join(ROOT, "configs", "lenet_train_test.yaml")).read()
    (tmp_path / "net.yaml").write_text(text.replace("batch_size: 100", "batch_size: 8"))
    outs = []
    for T in (1, 2, 3):
        thread_count(T)
        net = netcli.Net(str(tmp_path / "net.yaml"), phase="TEST", seed=2)
        assert [len(v) for v in net.executor.shares.values()] == [2]
        net.forward()
        outs.append({k: net.blobs[k].data.copy() for k in ("ip2", "loss", "accuracy")})
    for o in outs[1:]:
        assert all(np.array_equal(o[k], outs[0][k]) for k in o)
    train = netcli.Net(str(tmp_path / "net.yaml"), phase="TRAIN", batch_size=8)
    assert [len(v) for v in train.executor.shares.values()] == [1]


DEPLOY = """
name: one
layers:
  - {name: in, type: Input, top: data, input_param: {shape: {dim: [1, 64, 64, 64]}}}
  - {name: s2, type: Convolution, bottom: data, top: s2, convolution_param: {num_output: 64, kernel_size: 3, stride: 2,
     pad: 1, weight_filler: {type: gaussian, std: 0.05}, bias_filler: {type: gaussian}}}
  - {name: p1, type: Convolution, bottom: s2, top: p1, convolution_param: {num_output: 128, kernel_size: 1,
     weight_filler: {type: gaussian, std: 0.05}}}
  - {name: up, type: Convolution, bottom: data, top: up, convolution_param: {num_output: 256, kernel_size: 1,
     weight_filler: {type: gaussian, std: 0.05}}}
  - {name: pool, type: Pooling, bottom: data, top: pool, pooling_param: {pool: AVE, kernel_size: 8, stride: 8}}
  - {name: tall, type: Convolution, bottom: pool, top: tall, convolution_param: {num_output: 4096, kernel_size: 1,
     weight_filler: {type: gaussian, std: 0.05}}}
  - {name: pool16, type: Pooling, bottom: data, top: pool16, pooling_param: {pool: AVE, kernel_size: 16, stride: 16}}
  - {name: wide, type: Convolution, bottom: pool16, top: wide, convolution_param: {num_output: 2048, kernel_size: 3,
     pad: 1, weight_filler: {type: gaussian, std: 0.05}, bias_filler: {type: gaussian}}}
  - {name: pool11, type: Pooling, bottom: data, top: pool11, pooling_param: {pool: AVE, kernel_size: 6, stride: 6}}
  - {name: narrow, type: Convolution, bottom: pool11, top: narrow, convolution_param: {num_output: 127, kernel_size: 5,
     pad: 2, weight_filler: {type: gaussian, std: 0.05}, bias_filler: {type: gaussian}}}
"""


def test_one_image_gemms_split_into_tiles_keep_their_bits_for_any_thread_count(tmp_path, thread_count, monkeypatch):
    """Batch-1 inference: the GEMMs of one image are cut into fixed tiles (ops/cpu/conv2d.py,
    exec/threads.py tiles) that idle threads take: blocks of output rows (im2row; "tall": 4096
    rows of 64 positions), of positions (p1, up; and "direct"'s sums, s2) or of output channels,
    where there are fewer positions than channels (im2col, "wide": 16 positions, 2048 channels;
    im2row, each tile reordering its own weights, "narrow": 121 positions, 127 channels); the
    outputs are the same with 1 to 3 threads and equal a float64 reference."""
    from netcli.ops.cpu import conv2d
    (tmp_path / "net.yaml").write_text(DEPLOY)
    x = np.random.default_rng(1).standard_normal((1, 64, 64, 64)).astype(np.float32)
    outs, calls = [], []
    real = threads.tiles
    monkeypatch.setattr(threads, "tiles", lambda fn, count: (calls.append(count), real(fn, count))[1])
    for T in (1, 2, 3):
        thread_count(T)
        net = netcli.Net(str(tmp_path / "net.yaml"), phase="TEST", seed=4)
        assert [l.algorithm for l in net.layers if l.type == "Convolution"] == \
            ["direct", "1x1", "1x1", "1x1", "im2col", "im2row"]
        net.blobs["data"].data[...] = x
        net.forward()
        outs.append([net.blobs[k].data.copy() for k in ("s2", "p1", "up", "tall", "wide", "narrow")])
    assert calls and set(calls) == {conv2d.ONE_IMAGE_TILES}
    for o in outs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(o, outs[0]))
    p = np.pad(x[0].astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    w = net.params["s2"][0].data.astype(np.float64)
    ref = sum(np.einsum("kc,chw->khw", w[:, :, i, j], p[:, i:i + 64:2, j:j + 64:2]) for i in range(3) for j in range(3))
    np.testing.assert_allclose(outs[0][0][0], ref + net.params["s2"][1].data[:, None, None], rtol=1e-4, atol=1e-4)
    w = net.params["up"][0].data.reshape(256, 64).astype(np.float64)
    ref = np.einsum("kc,chw->khw", w, x[0].astype(np.float64)) + net.params["up"][1].data[:, None, None]
    np.testing.assert_allclose(outs[0][2][0], ref, rtol=1e-4, atol=1e-4)
    p = np.pad(net.blobs["pool16"].data[0].astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    w = net.params["wide"][0].data.astype(np.float64)
    ref = sum(np.einsum("kc,chw->khw", w[:, :, i, j], p[:, i:i + 4, j:j + 4]) for i in range(3) for j in range(3))
    np.testing.assert_allclose(outs[0][4][0], ref + net.params["wide"][1].data[:, None, None], rtol=1e-4, atol=1e-4)
    p = np.pad(net.blobs["pool11"].data[0].astype(np.float64), ((0, 0), (2, 2), (2, 2)))
    w = net.params["narrow"][0].data.astype(np.float64)
    ref = sum(np.einsum("kc,chw->khw", w[:, :, i, j], p[:, i:i + 11, j:j + 11]) for i in range(5) for j in range(5))
    np.testing.assert_allclose(outs[0][5][0], ref + net.params["narrow"][1].data[:, None, None], rtol=1e-4, atol=1e-4)


POOLS = """
name: pools
layers:
  - {name: in, type: Input, top: data, input_param: {shape: {dim: [1, 6, 23, 23]}}}
  - {name: max, type: Pooling, bottom: data, top: [max, argmax], pooling_param: {pool: MAX, kernel_size: 3, stride: 2}}
  - {name: ave, type: Pooling, bottom: data, top: ave, pooling_param: {pool: AVE, kernel_size: 3, stride: 2, pad: 1}}
  - {name: two, type: Pooling, bottom: data, top: two, pooling_param: {pool: MAX, kernel_size: 2, stride: 3}}
"""


def test_one_image_pooling_split_into_channel_tiles_keeps_its_bits(tmp_path, thread_count, monkeypatch):
    """Batch-1 inference: pooling a large image goes in blocks of channels (layers/pooling.py)
    that idle threads take; the outputs and the argmax are those of the untiled call, for 1 to 3
    threads (6 channels in 4 blocks: blocks of one and two channels)."""
    from netcli.layers import pooling
    (tmp_path / "net.yaml").write_text(POOLS)
    x = np.random.default_rng(5).standard_normal((1, 6, 23, 23)).astype(np.float32)
    calls = []
    real = threads.tiles
    monkeypatch.setattr(threads, "tiles", lambda fn, count: (calls.append(count), real(fn, count))[1])
    outs = []
    for T, reads in ((1, 2 ** 40), (1, 1), (2, 1), (3, 1)):
        monkeypatch.setattr(pooling, "TILED_READS", reads)
        thread_count(T)
        net = netcli.Net(str(tmp_path / "net.yaml"), phase="TEST")
        net.blobs["data"].data[...] = x
        net.forward()
        outs.append([net.blobs[k].data.copy() for k in ("max", "argmax", "ave", "two")])
    assert calls == [pooling.TILES] * 9
    for o in outs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(o, outs[0]))
    windows = np.lib.stride_tricks.sliding_window_view(x[0], (3, 3), axis=(1, 2))[:, ::2, ::2]
    np.testing.assert_array_equal(outs[0][0][0], windows.max(axis=(3, 4)))
