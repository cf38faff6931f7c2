"""BlobProto, BlobProtoVector and Datum for caffe.io where the protobuf package is not installed:
the fields pycaffe's io functions read and write, SerializeToString and ParseFromString through
the wire format (wire.py; field numbers are caffe.proto's). With protobuf, caffe.io uses
caffe_pb2's classes (netcli.caffe.proto) instead; message() picks."""
from __future__ import annotations

import numpy as np

from . import wire
from .caffemodel import BLOB_CHANNELS, BLOB_DATA, BLOB_DIFF, BLOB_DOUBLE_DATA, BLOB_HEIGHT, BLOB_NUM, \
    BLOB_SHAPE, BLOB_WIDTH
from .datum import CHANNELS, DATA, ENCODED, FLOAT_DATA, HEIGHT, LABEL, WIDTH

BLOB_DOUBLE_DIFF = 9


def message(name):
    """A new caffe_pb2.<name> where protobuf is installed, else this module's <name>."""
    try:
        from .proto import caffe_pb2
        return getattr(caffe_pb2, name)()
    except Exception:         # no protobuf (or no proto package): the wire-format stand-ins
        return globals()[name]()


class _Message:
    _SCALARS = ()

    def HasField(self, name):
        return name in self._set

    def __setattr__(self, name, value):
        if name in self._SCALARS:
            self._set.add(name)
        object.__setattr__(self, name, value)

    def __init__(self):
        object.__setattr__(self, "_set", set())


class BlobShape:
    def __init__(self):
        self.dim = []


class BlobProto(_Message):
    _SCALARS = ("num", "channels", "height", "width")

    def __init__(self):
        super().__init__()
        object.__setattr__(self, "shape", BlobShape())
        for name in self._SCALARS:
            object.__setattr__(self, name, 0)
        for name in ("data", "diff", "double_data", "double_diff"):
            object.__setattr__(self, name, [])

    def HasField(self, name):
        return name == "shape" and bool(self.shape.dim) or super().HasField(name)

    def SerializeToString(self):
        out = []
        for number, name in zip((BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH), self._SCALARS):
            if name in self._set:
                out.append(wire.put_varint(number, int(getattr(self, name))))
        for number, values in ((BLOB_DATA, self.data), (BLOB_DIFF, self.diff)):
            if len(values):
                out.append(wire.put_packed_floats(number, np.asarray(values, np.float32)))
        for number, values in ((BLOB_DOUBLE_DATA, self.double_data), (BLOB_DOUBLE_DIFF, self.double_diff)):
            if len(values):
                out.append(wire.put_bytes(number, np.asarray(values, "<f8").tobytes()))
        if self.shape.dim:
            out.append(wire.put_bytes(BLOB_SHAPE, wire.put_packed_varints(1, [int(d) for d in self.shape.dim])))
        return b"".join(out)

    def ParseFromString(self, buf):
        self.__init__()
        floats = {BLOB_DATA: [], BLOB_DIFF: []}
        doubles = {BLOB_DOUBLE_DATA: [], BLOB_DOUBLE_DIFF: []}
        for number, wt, v in wire.fields(bytes(buf), runs=(BLOB_DATA, BLOB_DIFF)):
            if number in (BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH) and wt == wire.VARINT:
                setattr(self, self._SCALARS[number - 1], wire.signed(v, 32))
            elif number in floats:
                floats[number].append(v)
            elif number in doubles:
                doubles[number].append(v)
            elif number == BLOB_SHAPE and wt == wire.LENGTH:
                self.shape.dim = wire.varints([(w, x) for n, w, x in wire.fields(v) if n == 1])
        self.data, self.diff = (wire.floats(floats[k]).tolist() if floats[k] else [] for k in (BLOB_DATA, BLOB_DIFF))
        self.double_data, self.double_diff = (wire.doubles(doubles[k]).tolist() if doubles[k] else []
                                              for k in (BLOB_DOUBLE_DATA, BLOB_DOUBLE_DIFF))
        return len(buf)


def _values(buf, number):
    """The payloads of field `number` in a message."""
    return [v for n, _, v in wire.fields(bytes(buf)) if n == number]


class _Repeated(list):
    def __init__(self, cls):
        super().__init__()
        self._cls = cls

    def add(self):
        item = self._cls()
        self.append(item)
        return item


class BlobProtoVector:
    def __init__(self):
        self.blobs = _Repeated(BlobProto)

    def SerializeToString(self):
        return b"".join(wire.put_bytes(1, b.SerializeToString()) for b in self.blobs)

    def ParseFromString(self, buf):
        self.__init__()
        for payload in _values(buf, 1):
            self.blobs.add().ParseFromString(payload)
        return len(buf)


class Datum(_Message):
    _SCALARS = ("channels", "height", "width", "label", "encoded", "data")

    def __init__(self):
        super().__init__()
        for name, v in (("channels", 0), ("height", 0), ("width", 0), ("label", 0), ("encoded", False),
                        ("data", b"")):
            object.__setattr__(self, name, v)
        object.__setattr__(self, "float_data", [])

    def SerializeToString(self):
        out = [wire.put_varint(n, int(getattr(self, a))) for n, a in ((CHANNELS, "channels"), (HEIGHT, "height"),
                                                                      (WIDTH, "width")) if a in self._set]
        if "data" in self._set:
            out.append(wire.put_bytes(DATA, bytes(self.data)))
        if "label" in self._set:
            out.append(wire.put_varint(LABEL, int(self.label) & (2 ** 64 - 1)))
        if len(self.float_data):
            out += [wire.put_float(FLOAT_DATA, float(x)) for x in self.float_data]
        if "encoded" in self._set:
            out.append(wire.put_varint(ENCODED, int(bool(self.encoded))))
        return b"".join(out)

    def ParseFromString(self, buf):
        self.__init__()
        floats = []
        for number, wt, v in wire.fields(bytes(buf)):
            if number in (CHANNELS, HEIGHT, WIDTH, LABEL) and wt == wire.VARINT:
                setattr(self, {CHANNELS: "channels", HEIGHT: "height", WIDTH: "width", LABEL: "label"}[number],
                        wire.signed(v, 32))
            elif number == DATA and wt == wire.LENGTH:
                self.data = bytes(v)
            elif number == FLOAT_DATA and wt in (wire.LENGTH, wire.FIXED32):
                floats.append(v)
            elif number == ENCODED and wt == wire.VARINT:
                self.encoded = bool(v)
        self.float_data = [float(x) for x in wire.floats(floats)] if floats else []
        return len(buf)
