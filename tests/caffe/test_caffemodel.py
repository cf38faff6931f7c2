"""Caffe's binary weights and mean files: written and read back bit-exact, read by an independent
reader (OpenCV's Caffe importer), legacy V1 files and legacy shapes, and broken files as one line."""
import struct

import numpy as np
import pytest

from netcli import Net
from netcli.caffe import caffemodel
from netcli.errors import NetcliError

LENET = "tests/data/caffe/examples/mnist/lenet.prototxt"


def _varint(v):
    out = b""
    while True:
        b, v = v & 0x7F, v >> 7
        out += bytes([b | (0x80 if v else 0)])
        if not v:
            return out


def _field(number, wt, payload):
    """Hand-encoded protobuf field (independent of netcli.caffe.wire)."""
    head = _varint(number << 3 | wt)
    return head + (_varint(len(payload)) + payload if wt == 2 else payload)


def test_write_then_read_is_bit_exact(tmp_path):
    net = Net(LENET, seed=1)
    path = tmp_path / "lenet.caffemodel"
    net.save(path)
    other = Net(LENET, seed=2)
    assert not np.array_equal(other.param_data, net.param_data)
    other.load(path)
    assert np.array_equal(other.param_data, net.param_data)
    model = caffemodel.read_caffemodel(path)
    assert [(l.name, l.type, len(l.blobs)) for l in model.layers][:3] == \
        [("data", "Input", 0), ("conv1", "Convolution", 2), ("pool1", "Pooling", 0)]


def test_opencv_reads_our_caffemodel(tmp_path):
    cv2 = pytest.importorskip("cv2")
    net = Net(LENET, seed=3)
    path = tmp_path / "lenet.caffemodel"
    net.save(path)
    x = np.random.default_rng(0).random(net.blobs["data"].shape, dtype=np.float32)
    ours = net.forward(data=x)["prob"].copy()
    cv = cv2.dnn.readNetFromCaffe(LENET, str(path))
    cv.setInput(x)
    theirs = cv.forward()
    assert theirs.shape == ours.shape
    np.testing.assert_allclose(theirs, ours, atol=1e-5)


def test_v1_file_with_legacy_shapes(tmp_path):
    """A caffemodel as Caffe wrote them before 2015: V1 `layers` (field 2, name 4, type enum 5,
    blobs 6), blobs with num/channels/height/width; InnerProduct weights as (1, 1, N, K)."""
    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(3).astype(np.float32)

    def legacy_blob(a, dims):
        head = b"".join(_field(n, 0, _varint(d)) for n, d in zip((1, 2, 3, 4), dims))
        return head + b"".join(_field(5, 5, struct.pack("<f", v)) for v in a.reshape(-1))   # not packed

    layer = _field(4, 2, b"ip") + _field(5, 0, _varint(14)) + _field(6, 2, legacy_blob(w, (1, 1, 3, 4))) + \
        _field(6, 2, legacy_blob(b, (1, 1, 1, 3)))
    path = tmp_path / "old.caffemodel"
    path.write_bytes(_field(1, 2, b"old") + _field(2, 2, layer))
    model = caffemodel.read_caffemodel(path)
    assert model.name == "old" and model.layers[0].type == "InnerProduct"
    net = Net({"layers": [{"name": "in", "type": "Input", "top": "x", "input_param": {"shape": {"dim": [2, 4]}}},
                          {"name": "ip", "type": "InnerProduct", "bottom": "x", "top": "y",
                           "inner_product_param": {"num_output": 3}}]})
    net.load(path)
    assert np.array_equal(net.params["ip"][0].data, w) and np.array_equal(net.params["ip"][1].data, b)


def test_binaryproto_mean(tmp_path):
    mean = np.random.default_rng(1).random((3, 5, 4)).astype(np.float32) * 255
    shape = _field(7, 2, _field(1, 2, b"".join(_varint(d) for d in (1, 3, 5, 4))))
    path = tmp_path / "mean.binaryproto"
    path.write_bytes(shape + _field(5, 2, mean.tobytes()))
    assert np.array_equal(caffemodel.read_binaryproto(path), mean)


@pytest.mark.parametrize("cut", [1, 7, 100, -3])
def test_broken_files_are_one_line(tmp_path, cut):
    net = Net(LENET, seed=1)
    path = tmp_path / "lenet.caffemodel"
    net.save(path)
    raw = path.read_bytes()
    path.write_bytes(raw[:cut])
    with pytest.raises(NetcliError) as e:
        Net(LENET).load(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_not_a_caffemodel(tmp_path):
    path = tmp_path / "x.caffemodel"
    path.write_text('name: "LeNet"\n')
    with pytest.raises(NetcliError, match="not a"):
        caffemodel.read_caffemodel(path)
