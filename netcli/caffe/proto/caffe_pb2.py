"""pycaffe's caffe_pb2: caffe.proto's message classes (NetParameter, LayerParameter and every
`<type>_param`, SolverParameter, BlobProto, Datum, ...) for google.protobuf's text_format and
binary encoding, built when imported from netcli's own schema (build.py). Needs the protobuf
package: pip install 'netcli[caffe]'."""
try:
    from google.protobuf import descriptor_pool, message_factory
    from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper
except ImportError:
    raise ImportError("netcli.caffe.proto.caffe_pb2 needs the protobuf package: pip install 'netcli[caffe]'") from None

from .build import file_descriptor

_pool = descriptor_pool.DescriptorPool()
DESCRIPTOR = _pool.Add(file_descriptor())
_make = getattr(message_factory, "GetMessageClass", None) or message_factory.MessageFactory(_pool).GetPrototype
for _name, _type in DESCRIPTOR.message_types_by_name.items():
    globals()[_name] = _make(_type)
for _enum in DESCRIPTOR.enum_types_by_name.values():      # Phase: caffe_pb2.TRAIN, caffe_pb2.TEST
    globals()[_enum.name] = EnumTypeWrapper(_enum)
    for _value in _enum.values:
        globals()[_value.name] = _value.number
del _make, _name, _type, _enum, _value
