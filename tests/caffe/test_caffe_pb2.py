"""caffe_pb2 (pycaffe's message classes, built from netcli's schema): field numbers and defaults
as caffe.proto's, text_format reading the repo's prototxt files, and binary round trips with
netcli's own caffemodel/Datum readers and writers on known values; hand-encoded bytes (written
here, from caffe.proto's numbers) are the independent side."""
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

from netcli import Net
from netcli.caffe import caffemodel, datum

LENET = "tests/data/caffe/examples/mnist/lenet.prototxt"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def pb():
    pytest.importorskip("google.protobuf")
    from netcli.caffe.proto import caffe_pb2
    return caffe_pb2


@pytest.fixture(scope="module")
def text_format():
    pytest.importorskip("google.protobuf")
    from google.protobuf import text_format
    return text_format


def _number(pb, message, field):
    return getattr(pb, message).DESCRIPTOR.fields_by_name[field].number


def test_field_numbers_and_defaults_are_caffe_protos(pb):
    # a sample of caffe.proto's numbers and defaults (BVLC master)
    for message, field, number in [("NetParameter", "layer", 100), ("NetParameter", "layers", 2),
                                   ("NetParameter", "input_dim", 4), ("LayerParameter", "convolution_param", 106),
                                   ("LayerParameter", "blobs", 7), ("LayerParameter", "transform_param", 100),
                                   ("LayerParameter", "batch_norm_param", 139), ("LayerParameter", "input_param", 143),
                                   ("ConvolutionParameter", "dilation", 18), ("ConvolutionParameter", "engine", 15),
                                   ("PoolingParameter", "global_pooling", 12), ("SolverParameter", "base_lr", 5),
                                   ("SolverParameter", "layer_wise_reduce", 41), ("SolverParameter", "weights", 42),
                                   ("SolverParameter", "snapshot_prefix", 15), ("BlobProto", "double_data", 8),
                                   ("Datum", "encoded", 7), ("FillerParameter", "variance_norm", 8),
                                   ("ParamSpec", "decay_mult", 4), ("NetStateRule", "not_stage", 5)]:
        assert _number(pb, message, field) == number, (message, field)
    s = pb.SolverParameter()
    assert (s.lr_policy, s.regularization_type, s.type, s.random_seed, s.clip_gradients) == ("", "L2", "SGD", -1, -1.0)
    assert s.solver_mode == pb.SolverParameter.GPU and s.snapshot_format == pb.SolverParameter.BINARYPROTO
    assert s.test_initialization is True and s.average_loss == 1 and abs(s.delta - 1e-8) < 1e-15
    f = pb.FillerParameter()
    assert (f.type, f.value, f.max, f.std, f.sparse) == ("constant", 0.0, 1.0, 1.0, -1)
    p = pb.PoolingParameter()
    assert (p.pool, p.pad, p.stride) == (pb.PoolingParameter.MAX, 0, 1)
    assert pb.ConvolutionParameter().group == 1 and pb.ConvolutionParameter().bias_term is True
    assert pb.LossParameter().normalization == pb.LossParameter.VALID
    assert (pb.ReductionParameter.SUM, pb.ReductionParameter.MEAN) == (1, 4)
    assert (pb.EltwiseParameter.PROD, pb.EltwiseParameter.SUM, pb.EltwiseParameter.MAX) == (0, 1, 2)
    assert (pb.TRAIN, pb.TEST) == (0, 1) and pb.NetState().phase == pb.TEST
    assert pb.PoolingParameter.PoolMethod.Name(1) == "AVE" and pb.ParamSpec.DimCheckMode.Value("PERMISSIVE") == 1
    assert pb.SolverParameter.NESTEROV == 1 and pb.SolverParameter().solver_type == pb.SolverParameter.SGD
    assert pb.Phase.Name(1) == "TEST"
    assert pb.DataParameter().backend == pb.DataParameter.LEVELDB and pb.DataParameter.LMDB == 1


def _prototxt_files():
    out = subprocess.run(["git", "ls-files", "*.prototxt"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    return [f for f in out if "consolidated" not in f]      # V1 `layers { data_param }`: not declared


def test_text_format_reads_the_repos_prototxt_files(pb, text_format):
    files = _prototxt_files()
    assert len(files) > 20
    for f in files:
        msg = pb.SolverParameter() if "solver" in os.path.basename(f) else pb.NetParameter()
        text_format.Merge(open(os.path.join(ROOT, f)).read(), msg)
        again = type(msg)()
        text_format.Merge(str(msg), again)
        assert again == msg, f


def test_text_format_values(pb, text_format):
    net = text_format.Merge(open(os.path.join(ROOT, LENET)).read(), pb.NetParameter())
    assert net.name == "LeNet" and [l.name for l in net.layer][:2] == ["data", "conv1"]
    conv = net.layer[1]
    assert conv.type == "Convolution" and conv.convolution_param.num_output == 20
    assert list(conv.convolution_param.kernel_size) == [5] and conv.convolution_param.weight_filler.type == "xavier"
    assert conv.param[1].lr_mult == 2
    assert list(net.layer[0].input_param.shape[0].dim) == [64, 1, 28, 28]
    pool = next(l for l in net.layer if l.type == "Pooling")
    assert pool.pooling_param.pool == pb.PoolingParameter.MAX
    with pytest.raises(text_format.ParseError):
        text_format.Merge('layer { name: "x" convolution_param { no_such_field: 1 } }', pb.NetParameter())


def test_netcli_caffemodel_parsed_by_caffe_pb2(pb, tmp_path):
    net = Net(LENET, seed=1)
    path = tmp_path / "lenet.caffemodel"
    net.save(path)
    m = pb.NetParameter()
    m.ParseFromString(path.read_bytes())
    conv = next(l for l in m.layer if l.name == "conv1")
    w = np.asarray(conv.blobs[0].data, np.float32).reshape(tuple(conv.blobs[0].shape.dim))
    assert np.array_equal(w, net.params["conv1"][0].data)
    assert list(conv.bottom) == ["data"] and list(conv.top) == ["conv1"]


def test_caffe_pb2_caffemodel_read_by_netcli(pb, tmp_path):
    m = pb.NetParameter(name="t")
    layer = m.layer.add(name="ip", type="InnerProduct")
    b = layer.blobs.add()
    b.shape.dim.extend([2, 3])
    b.data.extend([1.5, -2.0, 3.25, 0.0, 7.0, -0.5])
    old = m.layer.add(name="legacy", type="Convolution").blobs.add(num=1, channels=1, height=2, width=2)
    old.data.extend([1, 2, 3, 4])
    path = tmp_path / "t.caffemodel"
    path.write_bytes(m.SerializeToString())
    arrays, legacy = caffemodel.caffemodel_arrays(path)
    assert np.array_equal(arrays["ip/0"], np.array([[1.5, -2.0, 3.25], [0.0, 7.0, -0.5]], np.float32))
    assert arrays["legacy/0"].shape == (1, 1, 2, 2) and legacy == {"legacy/0"}


def test_blobproto_bytes_are_caffe_protos(pb):
    # hand-encoded: shape (7) { dim (1) packed [2, 1] }, data (5) packed [1.0, 2.0]
    dims = b"\x0a\x02\x02\x01"
    raw = b"\x3a" + bytes([len(dims)]) + dims + b"\x2a\x08" + struct.pack("<2f", 1.0, 2.0)
    b = pb.BlobProto()
    b.ParseFromString(raw)
    assert list(b.shape.dim) == [2, 1] and list(b.data) == [1.0, 2.0]
    assert caffemodel.blob_bytes(np.array([[1.0], [2.0]], np.float32)) == raw
    assert b.SerializeToString() == raw[6:] + raw[:6]      # protobuf writes fields in number order
    assert caffemodel.parse_blob(b.SerializeToString()).array.tolist() == [[1.0], [2.0]]
    legacy = pb.BlobProto(num=1, channels=2, height=1, width=1)
    legacy.double_data.extend([0.5, 0.25])
    parsed = caffemodel.parse_blob(legacy.SerializeToString())
    assert parsed.shape == (1, 2, 1, 1) and parsed.legacy
    assert np.array_equal(parsed.array.ravel(), np.array([0.5, 0.25], np.float32))
    vec = pb.BlobProtoVector()
    vec.blobs.add().CopyFrom(b)
    again = pb.BlobProtoVector.FromString(vec.SerializeToString())
    assert list(again.blobs[0].data) == [1.0, 2.0]


def test_datum_raw_and_encoded(pb):
    pixels = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    d = pb.Datum()
    d.ParseFromString(datum.datum_bytes(pixels, 7))
    assert (d.channels, d.height, d.width, d.label, d.encoded) == (2, 3, 4, 7, False)
    assert d.data == pixels.tobytes()
    floats = pb.Datum(channels=1, height=1, width=2, label=-3)
    floats.float_data.extend([0.5, -1.0])
    a, label = datum.parse_datum(floats.SerializeToString())
    assert label == -3 and np.array_equal(a, np.array([[[0.5, -1.0]]], np.float32))
    Image = pytest.importorskip("PIL.Image")
    import io
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0] = 200                          # red
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    enc = pb.Datum(data=buf.getvalue(), encoded=True, label=1)
    a, label = datum.parse_datum(enc.SerializeToString())
    assert label == 1 and a.shape == (3, 2, 3) and (a[2] == 200).all() and (a[0] == 0).all()   # BGR


def test_without_protobuf_one_line(tmp_path):
    """An ImportError naming the extra, and the rest of netcli (a net, its weights) works."""
    code = ("import sys; sys.modules['google'] = None; sys.modules['google.protobuf'] = None\n"
            "import netcli, netcli.caffe, netcli.caffe.caffemodel, netcli.cli\n"
            f"netcli.Net({os.path.join(ROOT, LENET)!r})\n"
            "try:\n    import netcli.caffe.proto.caffe_pb2\n"
            "except ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("pip install 'netcli[caffe]'") and len(out.stdout.strip().splitlines()) == 1


def test_negative_int32_is_read_from_its_ten_bytes():
    """protobuf writes a negative int32 as a 10-byte varint (sign-extended to 64 bits)."""
    minus_three = bytes([0xFD] + [0xFF] * 8 + [0x01])
    raw = b"\x08\x01\x10\x01\x18\x01" + b"\x28" + minus_three + b"\x32\x04" + struct.pack("<f", 0.5)
    a, label = datum.parse_datum(raw)
    assert label == -3 and a.tolist() == [[[0.5]]]


def test_every_schema_field_has_a_field_number():
    """caffe_pb2 is built from the schema: each field needs its number, one per message, and
    each <type>_param block its LayerParameter number (checked without protobuf)."""
    from netcli.config.net_spec import LAYER_COMMON, NET_TOP
    from netcli.config.schema import Message
    from netcli.layers import REGISTRY
    from netcli.solver.spec import SOLVER
    seen = {}

    def walk(msg):
        if msg.name in seen:
            return
        seen[msg.name] = msg
        numbers = [f.number for f in msg.fields]
        assert None not in numbers, (msg.name, [f.name for f in msg.fields if f.number is None])
        assert len(set(numbers)) == len(numbers), msg.name
        for f in msg.fields:
            if isinstance(f.kind, Message):
                walk(f.kind)
    for m in (NET_TOP, SOLVER, Message("LayerParameter", LAYER_COMMON)):
        walk(m)
    blocks = {}
    for cls in REGISTRY.values():
        for key, msg in cls.params.items():
            walk(msg)
            assert msg.number is not None, key
            blocks.setdefault(msg.number, key)
            assert blocks[msg.number] == key, (key, blocks[msg.number])
    assert not set(blocks) & {f.number for f in LAYER_COMMON}


def test_netclis_own_prototxt_text_is_read_by_text_format(pb, text_format):
    """What netcli writes (YAML nets and solvers converted to prototxt, netcli's own fields
    included) is read by text_format, as net_spec.to_proto's text must be."""
    from netcli.config.prototxt_write import net_to_prototxt, solver_to_prototxt
    configs = os.path.join(ROOT, "configs")
    for name in sorted(os.listdir(configs)):
        if not name.endswith(".yaml"):
            continue
        path = os.path.join(configs, name)
        solver = "solver" in name
        text = solver_to_prototxt(path) if solver else net_to_prototxt(path)
        msg = text_format.Merge(text, pb.SolverParameter() if solver else pb.NetParameter())
        assert str(msg), name


def test_v1_layers_in_binary_files(pb, tmp_path):
    """A pre-2015 caffemodel (V1 `layers`, type an enum) written with caffe_pb2 is read by netcli,
    and netcli's V1 field numbers are caffe_pb2's."""
    m = pb.NetParameter(name="old")
    v1 = m.layers.add(name="conv1", type=pb.V1LayerParameter.CONVOLUTION)
    v1.blobs.add(num=1, channels=1, height=1, width=2).data.extend([0.5, 1.5])
    m.layers.add(name="loss", type=pb.V1LayerParameter.SOFTMAX_LOSS)
    assert (pb.V1LayerParameter.CONVOLUTION, pb.V1LayerParameter.SOFTMAX_LOSS, pb.V1LayerParameter.NONE) == (4, 21, 0)
    path = tmp_path / "old.caffemodel"
    path.write_bytes(m.SerializeToString())
    model = caffemodel.read_caffemodel(path)
    assert [(l.name, l.type) for l in model.layers] == [("conv1", "Convolution"), ("loss", "SoftmaxWithLoss")]
    assert model.layers[0].blobs[0].array.tolist() == [[[[0.5, 1.5]]]]
