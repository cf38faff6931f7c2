"""Caffe's binary weights (.caffemodel: a NetParameter) and mean files (.binaryproto: a
BlobProto), read and written through the wire format (wire.py), no protoc or protobuf package.

Field numbers are caffe.proto's. A caffemodel's layers come from `layer` (LayerParameter) or, in
files written before 2015, `layers` (V1LayerParameter); a blob's shape from `shape` or the legacy
num/channels/height/width. Weights map to netcli's keys '<layer>/<i>' in Caffe's blob order.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import NetcliError
from ..io.npzfile import Declared
from . import wire

# NetParameter
NET_NAME, NET_LAYERS_V1, NET_LAYER = 1, 2, 100
# LayerParameter / V1LayerParameter
LAYER = {"name": 1, "type": 2, "bottom": 3, "top": 4, "blobs": 7}
LAYER_V1 = {"name": 4, "type": 5, "bottom": 2, "top": 3, "blobs": 6}
# BlobProto
BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH = 1, 2, 3, 4
BLOB_DATA, BLOB_DIFF, BLOB_SHAPE, BLOB_DOUBLE_DATA, BLOB_DOUBLE_DIFF = 5, 6, 7, 8, 9
V1_TYPE_NAMES = {
    35: "AbsVal", 1: "Accuracy", 30: "ArgMax", 2: "BNLL", 3: "Concat", 37: "ContrastiveLoss", 4: "Convolution",
    5: "Data", 39: "Deconvolution", 6: "Dropout", 32: "DummyData", 7: "EuclideanLoss", 25: "Eltwise", 38: "Exp",
    8: "Flatten", 9: "HDF5Data", 10: "HDF5Output", 28: "HingeLoss", 11: "Im2col", 12: "ImageData",
    13: "InfogainLoss", 14: "InnerProduct", 15: "LRN", 29: "MemoryData", 16: "MultinomialLogisticLoss",
    34: "MVN", 17: "Pooling", 26: "Power", 18: "ReLU", 19: "Sigmoid", 27: "SigmoidCrossEntropyLoss",
    36: "Silence", 20: "Softmax", 21: "SoftmaxWithLoss", 22: "Split", 33: "Slice", 23: "TanH",
    24: "WindowData", 31: "Threshold",
}


MAX_AXES = 32                 # Caffe's kMaxBlobAxes
MAX_EXTENT = 2 ** 31 - 1      # Caffe's blob count limit (INT_MAX), also for any one dimension


@dataclass
class Blob:
    """A BlobProto's shape, and its values, decoded only when asked for (`array`)."""
    shape: tuple
    legacy: bool          # shape from num/channels/height/width (padded to 4-D)
    data: list            # float runs: memoryviews of packed bytes or float32 arrays
    double: list

    @property
    def array(self):
        values = wire.floats(self.data) if self.data else (wire.doubles(self.double).astype(np.float32)
                                                           if self.double else np.zeros(0, np.float32))
        return values.reshape(self.shape)


@dataclass
class Layer:
    name: str
    type: str
    blobs: list = field(default_factory=list)


@dataclass
class Model:
    name: str
    layers: list


def _read_file(path, what):
    from ..blob import memory_budget
    from ..config.paths import read_start
    size = os.path.getsize(path) if os.path.isfile(path) else 0
    if size > memory_budget():
        raise NetcliError(f"{path}: {size / 2 ** 30:.3g} GB is more than this machine can hold for a {what}")
    _, raw = read_start(path, what, max(size, 1))
    return raw


def parse_blob(buf):
    """A BlobProto -> Blob (float32; double_data converted). Its shape is checked against the
    values it holds; nothing is decoded here."""
    dims, legacy, data, double = None, [None] * 4, [], []
    for number, wt, v in wire.fields(buf, runs=(BLOB_DATA,)):
        if number == BLOB_SHAPE and wt == wire.LENGTH:
            dims = wire.varints([(w, x) for n, w, x in wire.fields(v) if n == 1])
        elif number in (BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH) and wt == wire.VARINT:
            legacy[number - 1] = wire.signed(v, 32)
        elif number == BLOB_DATA and wt in (wire.LENGTH, wire.FIXED32):
            data.append(v)
        elif number == BLOB_DOUBLE_DATA and wt in (wire.LENGTH, wire.FIXED64):
            double.append(v)
    if any(not isinstance(v, np.ndarray) and len(v) % 4 for v in data) or any(len(v) % 8 for v in double):
        raise wire.WireError("a packed float field's length is not a whole number of values")
    held = sum(v.size if isinstance(v, np.ndarray) else len(v) // 4 for v in data) if data else \
        sum(len(v) // 8 for v in double)
    is_legacy = dims is None
    if is_legacy:
        dims = [1 if d is None else d for d in legacy] if any(d is not None for d in legacy) else [held]
    if len(dims) > MAX_AXES:
        raise wire.WireError(f"blob with {len(dims)} dimensions (at most {MAX_AXES})")
    if any(d < 0 for d in dims):
        raise wire.WireError(f"negative blob dimension {dims}")
    if any(d > MAX_EXTENT for d in dims):
        raise wire.WireError(f"blob dimension over {MAX_EXTENT:,} in shape {tuple(dims)}")
    count = math.prod(dims)                 # exact: no int64 overflow
    if count != held:
        raise wire.WireError(f"blob of shape {tuple(dims)} holds {held} values, not {count}")
    return Blob(tuple(dims), is_legacy, data, double)


def _parse_layer(buf, numbers, v1):
    layer = Layer("", "")
    for number, wt, v in wire.fields(buf):
        if number == numbers["name"] and wt == wire.LENGTH:
            layer.name = wire.text(v)
        elif number == numbers["type"]:
            layer.type = V1_TYPE_NAMES.get(v, f"V1 type {v}") if v1 and wt == wire.VARINT else \
                (wire.text(v) if wt == wire.LENGTH else layer.type)
        elif number == numbers["blobs"] and wt == wire.LENGTH:
            layer.blobs.append(parse_blob(v))
    return layer


def read_caffemodel(path) -> Model:
    """Every layer of a .caffemodel with its blobs (layers without blobs too)."""
    path = os.fspath(path)
    raw = _read_file(path, "caffemodel")
    name, layers = "", []
    try:
        for number, wt, v in wire.fields(raw):
            if number == NET_NAME and wt == wire.LENGTH:
                name = wire.text(v)
            elif number == NET_LAYER and wt == wire.LENGTH:
                layers.append(_parse_layer(v, LAYER, False))
            elif number == NET_LAYERS_V1 and wt == wire.LENGTH:
                layers.append(_parse_layer(v, LAYER_V1, True))
    except wire.WireError as e:
        raise NetcliError(f"{path}: not a valid caffemodel (Caffe's binary NetParameter): {e}") from None
    if not layers:
        raise NetcliError(f"{path}: not a caffemodel: no layers in it (a prototxt, or another file?)")
    return Model(name, layers)


def caffemodel_arrays(path, shapes=None):
    """{'<layer>/<i>': array} of a caffemodel's weights, and the keys whose shape is legacy
    (4-D num/channels/height/width, to be matched by count against the net's shape). `shapes`
    ({key: shape}, a net's params): a blob not named there, or of another count, is not decoded:
    a Declared (netcli/io/npzfile.py: its shape only) comes back, for the caller to report."""
    model = read_caffemodel(path)
    arrays, legacy = {}, set()
    for layer in model.layers:
        for i, b in enumerate(layer.blobs):
            key = f"{layer.name}/{i}"
            if key in arrays:
                continue            # Caffe copies a name's first layer; later ones are shadowed
            wanted = shapes is None or (key in shapes and math.prod(shapes[key]) == math.prod(b.shape))
            arrays[key] = b.array if wanted else Declared(b.shape, np.dtype(np.float32))
            if b.legacy:
                legacy.add(key)
    return arrays, legacy


def fit_legacy(array, shape):
    """A legacy 4-D blob as the net's shape when it is that shape padded with leading 1s (as
    Caffe's Blob::ShapeEquals accepts), else unchanged."""
    if array.ndim == 4 and len(shape) <= 4 and array.shape == (1,) * (4 - len(shape)) + tuple(shape):
        return array.reshape(shape)
    return array


def read_binaryproto(path, shape=None):
    """A mean file (one BlobProto, N=1) -> the (C, H, W) float32 mean. `shape` (C, H, W; None:
    any extent): the blob's declared shape is checked against it before its values are decoded."""
    from ..io.npzfile import fits, shown
    raw = _read_file(path, "mean file")
    try:
        b = parse_blob(raw)
    except wire.WireError as e:
        raise NetcliError(f"{path}: not a valid .binaryproto mean file (Caffe's BlobProto): {e}") from None
    dims = b.shape[1:] if len(b.shape) == 4 and b.shape[0] == 1 else b.shape
    if len(dims) != 3:
        raise NetcliError(f"{path}: the mean blob has shape {b.shape}; expected (1, C, H, W)")
    if shape is not None and not fits(dims, shape):
        raise NetcliError(f"{path}: the mean blob has shape {dims}, expected {shown(shape)}")
    return b.array.reshape(dims)


# -- writing ----------------------------------------------------------------------------------
def blob_bytes(array):
    shape = wire.put_packed_varints(1, array.shape)
    return wire.put_bytes(BLOB_SHAPE, shape) + wire.put_packed_floats(BLOB_DATA, array.reshape(-1))


def caffemodel_bytes(net):
    """A NetParameter holding every layer of `net` (name, type, bottoms as written, tops, blobs):
    what Caffe and OpenCV need to load the weights by layer name. The Splits netcli inserted are
    left out."""
    out = [wire.put_string(NET_NAME, net.name or "")]
    for layer, c in zip(net.layers, net.configs):
        if c.inserted:
            continue
        body = [wire.put_string(LAYER["name"], c.name), wire.put_string(LAYER["type"], c.type)]
        body += [wire.put_string(LAYER["bottom"], b) for b in c.written_bottom]
        body += [wire.put_string(LAYER["top"], t) for t in c.top]
        body += [wire.put_bytes(LAYER["blobs"], blob_bytes(np.asarray(b.data, np.float32))) for b in layer.blobs]
        out.append(wire.put_bytes(NET_LAYER, b"".join(body)))
    return b"".join(out)
