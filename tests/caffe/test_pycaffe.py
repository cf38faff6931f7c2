"""pycaffe scripts against `import netcli.caffe as caffe` (issue 27, items 1 and 4): each value is
checked against what Caffe computes, from its formulas in NumPy, never from netcli's own output."""
import os
import sys

import numpy as np
import pytest

import netcli.caffe as caffe
from netcli.caffe import layers as L, params as P
from netcli.caffe import wire
from netcli.errors import NetcliError

DEPLOY = """name: "tiny"
layer {
  name: "data"
  type: "Input"
  top: "data"
  input_param { shape { dim: 2 dim: 4 } }
}
layer {
  name: "ip"
  type: "InnerProduct"
  bottom: "data"
  top: "ip"
  inner_product_param { num_output: 3 }
}
layer {
  name: "prob"
  type: "Softmax"
  bottom: "ip"
  top: "prob"
}
"""


def _caffemodel(layers):
    """A NetParameter written field by field (caffe.proto: layer = 100; name 1, type 2, blobs 7;
    BlobProto data 5 packed, shape 7 of BlobShape dim 1 packed)."""
    out = []
    for name, type_, arrays in layers:
        body = wire.put_string(1, name) + wire.put_string(2, type_)
        for a in arrays:
            shape = wire.put_bytes(7, wire.put_packed_varints(1, a.shape))
            body += wire.put_bytes(7, wire.put_packed_floats(5, a.astype(np.float32).ravel()) + shape)
        out.append(wire.put_bytes(100, body))
    return b"".join(out)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture
def deploy(tmp_path):
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    model = tmp_path / "deploy.txt"          # a prototxt without the .prototxt extension
    model.write_text(DEPLOY)
    weights = tmp_path / "tiny.caffemodel"
    weights.write_bytes(_caffemodel([("ip", "InnerProduct", [w, b]), ("ghost", "InnerProduct", [w])]))
    return str(model), str(weights), w, b


def test_module_level_api(monkeypatch):
    assert (caffe.TRAIN, caffe.TEST) == (0, 1)
    from netcli.caffe.pycaffe import Layer
    assert caffe.Layer is Layer
    assert {"Convolution", "InnerProduct", "Python"} <= set(caffe.layer_type_list())
    monkeypatch.setattr(caffe, "_mode", dict(caffe._mode))
    caffe.set_mode_gpu()
    assert caffe.device() == "cuda:0"
    caffe.set_mode_cpu()
    caffe.set_device(0)
    assert caffe.device() == "cpu"
    caffe.init_log()
    assert not caffe.has_nccl() and caffe.solver_count() == 1 and caffe.solver_rank() == 0
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "2")
    assert (caffe.solver_count(), caffe.solver_rank()) == (4, 2)
    assert caffe.NetSpec is caffe.net_spec.NetSpec and caffe.layers is L and caffe.params is P
    assert caffe.SGDSolver is caffe.pysolver.SGDSolver and caffe.Classifier is caffe.classifier.Classifier
    with pytest.raises(AttributeError):
        caffe.no_such_thing


def test_net_from_deploy_and_caffemodel(deploy, capsys):
    model, weights, w, b = deploy
    x = np.random.default_rng(1).normal(size=(2, 4)).astype(np.float32)
    for net in (caffe.Net(model, weights, caffe.TEST), caffe.Net(model, caffe.TEST, weights=weights)):
        out = net.forward(data=x)
        assert list(out) == ["prob"]
        np.testing.assert_allclose(out["prob"], _softmax(x @ w.T + b), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(net.params["ip"][0].data, w)
    assert "Ignoring source layer ghost" in "".join(capsys.readouterr())
    assert net.inputs == ["data"] and net.outputs == ["prob"] and net._layer_names == ["data", "ip", "prob"]
    assert net.top_names["ip"] == ["ip"] and net.bottom_names["prob"] == ["ip"]
    assert list(net.layer_dict) == ["data", "ip", "prob"] and net.layer_dict["ip"].type == "InnerProduct"
    assert net.blob_loss_weights == {"data": 0.0, "ip": 0.0, "prob": 0.0}
    blob = net.blobs["data"]
    assert (blob.num, blob.channels, blob.height, blob.width, blob.count) == (2, 4, 1, 1, 8)
    # pycaffe's auto-reshape: reshape an input blob, then forward
    net.blobs["data"].reshape(5, 4)
    x5 = np.random.default_rng(2).normal(size=(5, 4)).astype(np.float32)
    net.blobs["data"].data[...] = x5
    out = net.forward()
    np.testing.assert_allclose(out["prob"], _softmax(x5 @ w.T + b), rtol=1e-5, atol=1e-6)
    with pytest.raises(NetcliError, match="phase must be caffe.TRAIN"):
        caffe.Net(model, 2)
    with pytest.raises(TypeError, match="caffe.Net"):
        caffe.Net(model, weights)
    staged = caffe.Net(model, caffe.TEST, 0, ["deploy"], weights=weights)
    np.testing.assert_array_equal(staged.params["ip"][1].data, b)


def test_forward_all_pads_and_drops_the_padding(deploy):
    model, weights, w, b = deploy
    net = caffe.Net(model, weights, caffe.TEST)
    x = np.random.default_rng(3).normal(size=(5, 4)).astype(np.float32)     # batch 2: 3 batches
    out = net.forward_all(data=x)
    assert out["prob"].shape == (5, 3)
    np.testing.assert_allclose(out["prob"], _softmax(x @ w.T + b), rtol=1e-5, atol=1e-6)
    with pytest.raises(NetcliError, match="batch sized"):
        net.forward(data=x)


CHAIN = """name: "chain"
force_backward: true
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "ip1" type: "InnerProduct" bottom: "data" top: "ip1"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 1 }
                              bias_filler { type: "gaussian" std: 1 } } }
layer { name: "relu" type: "ReLU" bottom: "ip1" top: "h" }
layer { name: "ip2" type: "InnerProduct" bottom: "h" top: "out"
        inner_product_param { num_output: 2 weight_filler { type: "gaussian" std: 1 } } }
"""


def test_forward_and_backward_between_layers(tmp_path):
    path = tmp_path / "chain.prototxt"
    path.write_text(CHAIN)
    net = caffe.Net(str(path), caffe.TEST)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(2, 3)).astype(np.float32)
    w1, b1 = net.params["ip1"][0].data.copy(), net.params["ip1"][1].data.copy()
    w2, b2 = net.params["ip2"][0].data.copy(), net.params["ip2"][1].data.copy()
    z = x @ w1.T + b1
    h = np.maximum(z, 0)
    net.blobs["data"].data[...] = x
    assert set(net.forward(end="ip1")) == {"ip1"}
    np.testing.assert_allclose(net.blobs["ip1"].data, z, rtol=1e-5, atol=1e-5)
    out = net.forward(start="relu", blobs=["h"])
    assert set(out) == {"out", "h"}
    np.testing.assert_allclose(out["out"], h @ w2.T + b2, rtol=1e-5, atol=1e-5)
    g = rng.normal(size=(2, 2)).astype(np.float32)
    diffs = net.backward(out=g, diffs=["h"])
    dh = g @ w2
    dz = dh * (z > 0)
    np.testing.assert_allclose(diffs["h"], dh, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(diffs["data"], dz @ w1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net.params["ip2"][0].diff, g.T @ h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(net.params["ip1"][0].diff, dz.T @ x, rtol=1e-5, atol=1e-5)
    net.blobs["h"].diff[...] = dh
    part = net.backward(start="relu", end="ip1")          # relu, then ip1: the diff of the blob named ip1
    assert set(part) == {"ip1"}
    np.testing.assert_allclose(part["ip1"], dz, rtol=1e-5, atol=1e-5)
    with pytest.raises(NetcliError, match="no blob 'ip2'"):
        net.backward(start="ip2", end="ip2")
    outs, grads = net.forward_backward_all(data=np.concatenate([x, x]), out=np.concatenate([g, g]))
    np.testing.assert_allclose(grads["data"], np.concatenate([dz @ w1] * 2), rtol=1e-5, atol=1e-5)


def _lenet(batch):
    """Caffe's 01-learning-lenet net, written as the tutorial writes it (an Input for the data)."""
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[batch, 1, 12, 12]))
    n.conv1 = L.Convolution(n.data, kernel_size=3, num_output=2, weight_filler=dict(type="xavier"),
                            bias_filler=dict(type="constant", value=0.1))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.fc1 = L.InnerProduct(n.pool1, num_output=5, weight_filler=dict(type="xavier"))
    n.relu1 = L.ReLU(n.fc1, in_place=True)
    n.score = L.InnerProduct(n.relu1, num_output=3, weight_filler=dict(type="xavier"))
    n.prob = L.Softmax(n.score)
    return n.to_proto()


def test_netspec_lenet_text_is_read_back_and_runs(tmp_path):
    text = str(_lenet(2))
    assert 'name: "conv1"' in text and "pool: MAX" in text and 'top: "fc1"' in text.split('name: "relu1"')[1]
    path = tmp_path / "lenet.pt"
    path.write_text(text)
    net = caffe.Net(str(path), caffe.TEST)
    assert net._layer_names == ["data", "conv1", "pool1", "fc1", "relu1", "score", "prob"]
    x = np.random.default_rng(5).normal(size=(2, 1, 12, 12)).astype(np.float32)
    out = net.forward(data=x)["prob"]
    k, kb = net.params["conv1"][0].data, net.params["conv1"][1].data
    win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))      # (2, 1, 10, 10, 3, 3)
    conv = np.einsum("nchwij,kcij->nkhw", win, k) + kb[None, :, None, None]
    pool = conv.reshape(2, 2, 5, 2, 5, 2).max(axis=(3, 5))
    fc = np.maximum(pool.reshape(2, -1) @ net.params["fc1"][0].data.T + net.params["fc1"][1].data, 0)
    ref = _softmax(fc @ net.params["score"][0].data.T + net.params["score"][1].data)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(net.params["conv1"][1].data, np.float32(0.1))


def test_netspec_train_layers_and_enums():
    n = caffe.NetSpec()
    n.data, n.label = L.Data(batch_size=64, backend=P.Data.LMDB, source="mnist_train_lmdb",
                             transform_param=dict(scale=1. / 255), ntop=2, include=dict(phase=caffe.TRAIN))
    n.ip = L.InnerProduct(n.data, num_output=10, param=[dict(lr_mult=1), dict(lr_mult=2)])
    n.loss = L.SoftmaxWithLoss(n.ip, n.label, loss_weight=1)
    text = str(n.to_proto())
    assert (int(P.Data.LMDB), int(P.Pooling.MAX), int(P.Pooling.AVE)) == (1, 0, 1)     # caffe.proto's numbers
    for line in ("backend: LMDB", 'source: "mnist_train_lmdb"', "batch_size: 64", "phase: TRAIN",
                 'bottom: "label"'):
        assert line in text
    from netcli.config.prototxt import load_prototxt
    tree = load_prototxt("<netspec>", text)
    assert [l["name"] for l in tree["layer"]] == ["data", "ip", "loss"]
    data, ip, loss = tree["layer"]
    assert np.float32(data["transform_param"]["scale"]) == np.float32(1 / 255)
    assert [float(p["lr_mult"]) for p in ip["param"]] == [1, 2] and float(loss["loss_weight"]) == 1
    with pytest.raises(NetcliError, match="no field 'kernel'"):
        L.Convolution(n.data, kernel=3).to_proto()


def test_transformer_on_a_png_equals_numpy(tmp_path):
    from PIL import Image
    rng = np.random.default_rng(6)
    rgb = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "cat.png")
    im = caffe.io.load_image(str(tmp_path / "cat.png"))
    np.testing.assert_allclose(im, rgb / 255.0, atol=1e-7)
    mean = np.array([104.0, 117.0, 123.0])
    t = caffe.io.Transformer({"data": (1, 3, 6, 8)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    t.set_mean("data", mean)
    t.set_input_scale("data", 0.5)
    x = t.preprocess("data", im)
    ref = ((rgb[:, :, ::-1].transpose(2, 0, 1).astype(np.float64)) - mean[:, None, None]) * 0.5
    np.testing.assert_allclose(x, ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(t.deprocess("data", x), im, atol=1e-5)
    grey = caffe.io.load_image(str(tmp_path / "cat.png"), color=False)
    np.testing.assert_allclose(grey[:, :, 0], rgb @ np.array([0.2125, 0.7154, 0.0721]) / 255, atol=1e-6)
    with pytest.raises(ValueError, match="Mean channels"):
        t.set_mean("data", np.zeros(4))


def _skimage_bilinear(im, h, w):
    """skimage.transform.resize(order=1, mode='constant') by its definition: output pixel (r, c)
    samples input (r + .5) * H / h - .5, (c + .5) * W / w - .5 bilinearly; outside is 0."""
    H, W = im.shape[:2]
    def px(r, c):
        return im[r, c] if 0 <= r < H and 0 <= c < W else 0.0
    out = np.zeros((h, w) + im.shape[2:])
    for r in range(h):
        for c in range(w):
            y, x = (r + .5) * H / h - .5, (c + .5) * W / w - .5
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            dy, dx = y - y0, x - x0
            out[r, c] = ((1 - dy) * ((1 - dx) * px(y0, x0) + dx * px(y0, x0 + 1))
                         + dy * ((1 - dx) * px(y0 + 1, x0) + dx * px(y0 + 1, x0 + 1)))
    return out


def test_resize_image_and_oversample():
    rng = np.random.default_rng(7)
    im = rng.random((5, 7, 3))
    lo, hi = im.min(), im.max()
    ref = _skimage_bilinear((im - lo) / (hi - lo), 9, 4) * (hi - lo) + lo
    np.testing.assert_allclose(caffe.io.resize_image(im, (9, 4)), ref, rtol=1e-5, atol=1e-6)
    const = caffe.io.resize_image(np.full((3, 3, 1), 0.25), (2, 5))
    assert const.shape == (2, 5, 1) and np.all(const == np.float32(0.25))
    crops = caffe.io.oversample([im], (3, 4))
    assert crops.shape == (10, 3, 4, 3)
    np.testing.assert_allclose(crops[0], im[0:3, 0:4])
    np.testing.assert_allclose(crops[3], im[2:5, 3:7])
    np.testing.assert_allclose(crops[4], im[1:4, 1:5])                   # centre: 2.5-1.5, 3.5-2
    np.testing.assert_allclose(crops[5], im[0:3, 0:4][:, ::-1])


def test_blobproto_and_datum_round_trips(tmp_path):
    a = np.arange(6, dtype=np.float32).reshape(2, 3) / 7
    blob = caffe.io.array_to_blobproto(a)
    raw = blob.SerializeToString()
    # caffe.proto: data = 5 packed float, shape = 7 (BlobShape: dim = 1 packed int64)
    expect = (b"\x2a\x18" + a.astype("<f4").tobytes() + b"\x3a\x04\x0a\x02\x02\x03")
    assert raw == expect
    back = type(blob)()
    back.ParseFromString(raw)
    np.testing.assert_array_equal(caffe.io.blobproto_to_array(back), a.astype(np.float64))
    # a mean file as pycaffe scripts write it is what netcli's mean reader takes
    mean = np.random.default_rng(8).random((1, 3, 4, 5)).astype(np.float32)
    (tmp_path / "mean.binaryproto").write_bytes(caffe.io.array_to_blobproto(mean).SerializeToString())
    from netcli.caffe.caffemodel import read_binaryproto
    np.testing.assert_array_equal(read_binaryproto(str(tmp_path / "mean.binaryproto")), mean[0])
    arrays = [a, np.ones((2, 2, 2))]
    listed = caffe.io.blobprotovector_str_to_arraylist(caffe.io.arraylist_to_blobprotovector_str(arrays))
    assert [x.shape for x in listed] == [(2, 3), (2, 2, 2)]
    pixels = np.random.default_rng(9).integers(0, 256, (3, 2, 2), dtype=np.uint8)
    datum = caffe.io.array_to_datum(pixels, 7)
    raw = datum.SerializeToString()
    assert raw == b"\x08\x03\x10\x02\x18\x02\x22\x0c" + pixels.tobytes() + b"\x28\x07"
    again = type(datum)()
    again.ParseFromString(raw)
    assert again.label == 7
    np.testing.assert_array_equal(caffe.io.datum_to_array(again), pixels)
    with pytest.raises(ValueError, match="Incorrect array shape"):
        caffe.io.array_to_datum(np.zeros((2, 2)))


def test_net_surgery_fc_to_fully_convolutional(tmp_path):
    """Caffe's net_surgery tutorial: fc6 (InnerProduct over 1x4x4) cast into fc6-conv (a 4x4
    Convolution); on a 6x6 input the conv net's 3x3 map holds the fc net's output at each offset."""
    fc = tmp_path / "fc.prototxt"
    fc.write_text('layer { name: "data" type: "Input" top: "data"\n'
                  '        input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }\n'
                  'layer { name: "fc6" type: "InnerProduct" bottom: "data" top: "fc6" inner_product_param {\n'
                  '  num_output: 2 weight_filler { type: "gaussian" std: 1 }\n'
                  '  bias_filler { type: "gaussian" std: 1 } } }\n')
    conv = tmp_path / "conv.prototxt"
    conv.write_text('layer { name: "data" type: "Input" top: "data"\n'
                    '        input_param { shape { dim: 1 dim: 1 dim: 6 dim: 6 } } }\n'
                    'layer { name: "fc6-conv" type: "Convolution" bottom: "data" top: "fc6-conv" '
                    'convolution_param { num_output: 2 kernel_size: 4 } }\n')
    net, net_full_conv = caffe.Net(str(fc), caffe.TEST), caffe.Net(str(conv), caffe.TEST)
    fc_params = {pr: (net.params[pr][0].data, net.params[pr][1].data) for pr in ["fc6"]}
    conv_params = {pr: (net_full_conv.params[pr][0].data, net_full_conv.params[pr][1].data)
                   for pr in ["fc6-conv"]}
    assert conv_params["fc6-conv"][0].shape == (2, 1, 4, 4) and fc_params["fc6"][0].shape == (2, 16)
    conv_params["fc6-conv"][0].flat = fc_params["fc6"][0].flat
    conv_params["fc6-conv"][1][...] = fc_params["fc6"][1]
    x = np.random.default_rng(10).normal(size=(1, 1, 6, 6)).astype(np.float32)
    out = net_full_conv.forward(data=x)["fc6-conv"]
    w, b = fc_params["fc6"]
    for i in range(3):
        for j in range(3):
            ref = w @ x[0, 0, i:i + 4, j:j + 4].ravel() + b
            np.testing.assert_allclose(out[0, :, i, j], ref, rtol=1e-5, atol=1e-5)
    path = tmp_path / "surgery.caffemodel"
    net_full_conv.save(str(path))
    again = caffe.Net(str(conv), str(path), caffe.TEST)
    np.testing.assert_array_equal(again.params["fc6-conv"][0].data, w.reshape(2, 1, 4, 4))


def test_hdf5_round_trip_and_its_missing_package(deploy, tmp_path, monkeypatch):
    model, weights, w, b = deploy
    net = caffe.Net(model, weights, caffe.TEST)
    pytest.importorskip("h5py")
    net.save_hdf5(str(tmp_path / "w.h5"))
    other = caffe.Net(model, caffe.TEST)
    other.load_hdf5(str(tmp_path / "w.h5"))
    np.testing.assert_array_equal(other.params["ip"][0].data, w)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(NetcliError, match="pip install h5py"):
        net.save_hdf5(str(tmp_path / "x.h5"))


def test_temporary_files_and_the_random_seed(tmp_path, monkeypatch):
    """pycaffe scripts write nets to temporary files without an extension; set_random_seed makes
    the fillers repeat."""
    import tempfile
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 3]))
    n.ip = L.InnerProduct(n.data, num_output=2, weight_filler=dict(type="gaussian", std=1))
    with tempfile.NamedTemporaryFile("w", dir=tmp_path, delete=False) as f:
        f.write(str(n.to_proto()))
    assert "." not in os.path.basename(f.name)
    monkeypatch.setitem(caffe._mode, "seed", None)          # restored after the test
    caffe.set_random_seed(5)
    a = caffe.Net(f.name, caffe.TEST).params["ip"][0].data.copy()
    b = caffe.Net(f.name, caffe.TEST).params["ip"][0].data.copy()
    np.testing.assert_array_equal(a, b)
    assert np.abs(a).sum() > 0


def test_to_proto_is_caffe_pb2_with_protobuf_and_netclis_own_without(monkeypatch):
    """pycaffe's to_proto() returns a caffe_pb2.NetParameter (text_format reads and writes it);
    without protobuf (the [caffe] extra) an object with the same prototxt text."""
    text = str(_lenet(2))
    try:
        from google.protobuf import text_format
        from netcli.caffe.proto import caffe_pb2
    except ImportError:
        caffe_pb2 = None
    if caffe_pb2 is not None:
        proto = _lenet(2)
        assert isinstance(proto, caffe_pb2.NetParameter)
        assert [l.name for l in proto.layer][:2] == ["data", "conv1"] and proto.layer[1].convolution_param.num_output == 2
        again = text_format.Merge(text, caffe_pb2.NetParameter())
        assert again == proto
    import builtins
    real = builtins.__import__

    def no_protobuf(name, *args, **kw):
        if name.startswith("google.protobuf") or name.endswith("proto") and args and args[2] and "caffe_pb2" in args[2]:
            raise ImportError("no protobuf here")
        return real(name, *args, **kw)
    monkeypatch.setattr(builtins, "__import__", no_protobuf)
    own = _lenet(2)
    assert caffe_pb2 is None or not isinstance(own, caffe_pb2.NetParameter)
    from netcli.config.prototxt import load_prototxt
    assert [l["name"] for l in load_prototxt("<own>", str(own))["layer"]] == [l["name"] for l in load_prototxt("<pb2>", text)["layer"]]
