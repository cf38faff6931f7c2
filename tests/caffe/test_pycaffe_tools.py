"""caffe.Classifier, caffe.Detector, caffe.draw and caffe.coord_map against pycaffe's definitions
(issue 27, item 1): crops, preprocessing and averages computed in NumPy."""
import numpy as np
import pytest

import netcli.caffe as caffe
from netcli.caffe import coord_map, layers as L
from netcli.caffe import wire
from netcli.errors import NetcliError

NET = """name: "c"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: %d dim: 3 dim: 4 dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 3 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""
MEAN = np.array([0.2, 0.4, 0.6]) * 255


def _model(tmp_path, batch):
    rng = np.random.default_rng(11)
    w = rng.normal(scale=0.01, size=(3, 48)).astype(np.float32)
    b = rng.normal(size=3).astype(np.float32)
    body = wire.put_string(1, "ip") + wire.put_string(2, "InnerProduct")
    for a in (w, b):
        body += wire.put_bytes(7, wire.put_packed_floats(5, a.ravel()) +
                               wire.put_bytes(7, wire.put_packed_varints(1, a.shape)))
    (tmp_path / "w.caffemodel").write_bytes(wire.put_bytes(100, body))
    (tmp_path / "deploy.prototxt").write_text(NET % batch)
    return str(tmp_path / "deploy.prototxt"), str(tmp_path / "w.caffemodel"), w, b


def _score(crop, w, b):
    """pycaffe's preprocessing (transpose, RGB->BGR, *255, - mean) and the net, in NumPy."""
    x = crop.transpose(2, 0, 1)[::-1] * 255 - MEAN[:, None, None]
    z = w @ x.ravel() + b
    e = np.exp(z - z.max())
    return e / e.sum()


def test_classifier_oversamples_and_averages(tmp_path):
    model, weights, w, b = _model(tmp_path, 10)
    net = caffe.Classifier(model, weights, image_dims=(6, 6), mean=MEAN, raw_scale=255, channel_swap=(2, 1, 0))
    im = np.random.default_rng(12).random((6, 6, 3)).astype(np.float32)
    corners = [(0, 0), (0, 2), (2, 0), (2, 2), (1, 1)]
    crops = [im[i:i + 4, j:j + 4] for i, j in corners]
    crops += [c[:, ::-1] for c in crops]
    ref = np.mean([_score(c, w, b) for c in crops], axis=0)
    np.testing.assert_allclose(net.predict([im])[0], ref, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(net.predict([im], oversample=False)[0], _score(im[1:5, 1:5], w, b),
                               rtol=1e-4, atol=1e-6)
    assert net.predict([im, im, im], oversample=False).shape == (3, 3)


def test_detector_windows(tmp_path):
    from PIL import Image
    model, weights, w, b = _model(tmp_path, 2)
    pixels = np.random.default_rng(13).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "im.png")
    det = caffe.Detector(model, weights, mean=MEAN, raw_scale=255, channel_swap=(2, 1, 0))
    windows = [np.array([0, 0, 4, 4]), np.array([2, 3, 6, 7]), np.array([4, 4, 8, 8])]
    out = det.detect_windows([(str(tmp_path / "im.png"), windows)])
    im = pixels / 255.0
    for d, win in zip(out, windows):
        np.testing.assert_allclose(d["prediction"], _score(im[win[0]:win[2], win[1]:win[3]], w, b), rtol=1e-4)
    with pytest.raises(NetcliError, match="detect_windows"):
        det.detect_selective_search(["x.png"])


def test_draw_a_netspec_and_a_net(tmp_path):
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    n.conv1 = L.Convolution(n.data, kernel_size=3, num_output=2)
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    caffe.draw.draw_net_to_file(n.to_proto(), str(tmp_path / "net.svg"))
    svg = (tmp_path / "net.svg").read_text()
    assert "conv1" in svg and "Convolution" in svg
    model, weights, _, _ = _model(tmp_path, 1)
    assert b"digraph" in caffe.draw.draw_net(caffe.Net(model, caffe.TEST), ext="dot")


def test_coord_map_crop_offsets_run(tmp_path):
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 9, 9]))
    n.conv = L.Convolution(n.data, kernel_size=3, num_output=1)
    n.crop = coord_map.crop(n.data, n.conv)                     # the centre of each 3x3 window: offset 1
    n.up = L.Deconvolution(n.conv, convolution_param=dict(kernel_size=3, num_output=1))
    n.crop_up = coord_map.crop(n.up, n.data)                     # 7 -> 9 again: offset 0
    text = str(n.to_proto())
    assert text.count("offset: 1") == 1 and text.count("offset: 0") == 1
    (tmp_path / "fcn.prototxt").write_text(text)
    net = caffe.Net(str(tmp_path / "fcn.prototxt"), caffe.TEST)
    x = np.random.default_rng(14).normal(size=(1, 1, 9, 9)).astype(np.float32)
    out = net.forward(data=x, blobs=["crop"])
    np.testing.assert_array_equal(out["crop"], x[:, :, 1:8, 1:8])
    assert net.blobs["crop_up"].data.shape == (1, 1, 9, 9)
    assert coord_map.coord_map_from_to(n.conv, n.data)[1:] == (1, 1)
    n.s2 = L.Convolution(n.data, kernel_size=3, stride=2, pad=1, num_output=1)
    n.u2 = L.Deconvolution(n.s2, convolution_param=dict(kernel_size=4, stride=2, pad=1, num_output=1))
    with pytest.raises(ValueError, match="noninteger"):
        coord_map.crop(n.u2, n.data)
