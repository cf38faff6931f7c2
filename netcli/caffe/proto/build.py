"""caffe.proto's messages as a protobuf FileDescriptorProto, built from netcli's own schema:
every Message and Field the net and solver files are checked against (config/net_spec.py, each
layer's `params`, solver/spec.py) with its `number` (caffe.proto's; netcli's own fields from 10001
up) and, where caffe.proto's type or default differs from netcli's, its `proto` entry; plus the
binary records of messages.py. No caffe.proto text, no generated code."""
from __future__ import annotations

from google.protobuf import descriptor_pb2

from ...config.net_spec import LAYER_COMMON, NET_TOP
from ...config.schema import REQUIRED, Field, Message
from ...layers import REGISTRY
from ...solver.spec import SOLVER
from . import messages

FD = descriptor_pb2.FieldDescriptorProto
SCALARS = {"int": FD.TYPE_INT32, "float": FD.TYPE_FLOAT, "bool": FD.TYPE_BOOL, "str": FD.TYPE_STRING,
           "int64": FD.TYPE_INT64, "uint32": FD.TYPE_UINT32, "double": FD.TYPE_DOUBLE, "string": FD.TYPE_STRING,
           "bytes": FD.TYPE_BYTES}
TOP_LEVEL_ENUMS = {"phase": "Phase"}       # caffe.proto's one enum outside a message (caffe_pb2.TRAIN)
PACKAGE = "caffe"


def layer_parameter():
    """LayerParameter: the fields every layer has, `blobs`, and every layer type's `<type>_param`."""
    fields = list(LAYER_COMMON) + list(messages.LAYER_EXTRA)
    seen = {f.name for f in fields}
    for cls in REGISTRY.values():
        for key, msg in cls.params.items():
            if key not in seen:
                seen.add(key)
                fields.append(Field(key, msg, None, msg.doc, number=msg.number))
    return Message("LayerParameter", fields, doc="One layer.")


def net_parameter(layer):
    return Message("NetParameter", list(NET_TOP.fields) + list(messages.NET_EXTRA) + [
        Field("layer", layer, None, "the layers", repeated=True, number=messages.NET_LAYER_NUMBER)])


def _camel(name):
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


class _Builder:
    def __init__(self, net):
        self.file = descriptor_pb2.FileDescriptorProto(name="netcli/caffe.proto", package=PACKAGE, syntax="proto2")
        self.done: dict[str, Message] = {}
        self.net = net
        self.top_enums: set = set()

    def message(self, msg: Message):
        if msg.name in self.done:
            return
        self.done[msg.name] = msg
        d = self.file.message_type.add(name=msg.name)
        for f in msg.fields:
            self.field(d, msg, f)

    def field(self, d, msg, f):
        if f.number is None:
            raise ValueError(f"{msg.name}.{f.name} has no field number")
        proto = f.proto or {}
        fd = d.field.add(name=f.name, number=f.number,
                         label=FD.LABEL_REPEATED if f.repeated else FD.LABEL_OPTIONAL)
        kind = proto.get("type", f.kind)
        default = proto.get("default", f.default)
        if f.kind == "tree":                          # a solver's net_param: a NetParameter
            kind, default = self.net, None
        if isinstance(kind, Message):
            self.message(kind)
            fd.type, fd.type_name = FD.TYPE_MESSAGE, f".{PACKAGE}.{kind.name}"
            return
        if isinstance(kind, tuple):
            values = proto.get("values") or {v: i for i, v in enumerate(kind)}
            fd.type, fd.type_name = FD.TYPE_ENUM, self.enum(d, f, values)
        else:
            if kind == "int" and f.range and f.range[1] > 2 ** 31 - 1:
                kind = "int64"
            fd.type = SCALARS[kind]
        if proto.get("packed"):
            fd.options.packed = True
        if default is not None and default is not REQUIRED and not f.repeated:
            fd.default_value = _default_text(default)

    def enum(self, d, f, values):
        name = (f.proto or {}).get("enum") or TOP_LEVEL_ENUMS.get(f.name) or _camel(f.name)
        if f.name in TOP_LEVEL_ENUMS:
            if name not in self.top_enums:
                self.top_enums.add(name)
                self.file.enum_type.add(name=name, value=[{"name": k, "number": v} for k, v in values.items()])
            return f".{PACKAGE}.{name}"
        if not any(e.name == name for e in d.enum_type):
            d.enum_type.add(name=name, value=[{"name": k, "number": v} for k, v in values.items()])
        return f".{PACKAGE}.{d.name}.{name}"


def _default_text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def file_descriptor():
    """The FileDescriptorProto of every message caffe_pb2 offers."""
    layer = layer_parameter()
    net = net_parameter(layer)
    b = _Builder(net)
    solver = Message(SOLVER.name, list(SOLVER.fields) + list(messages.SOLVER_EXTRA), doc=SOLVER.doc)
    for msg in (net, layer, solver, *messages.STANDALONE):
        b.message(msg)
    return b.file
