"""The messages of caffe.proto that netcli's net and solver schemas do not declare: Caffe's binary
records (BlobProto, Datum, SolverState: field numbers from caffemodel.py and datum.py, which read
and write them), the deprecated net-level inputs and V1 layers (which prototxt_upgrade.py turns
into the current form before netcli parses a net), and LayerParameter's `blobs`. Declared with
netcli's Field and Message, as the rest of the schema; caffe_pb2 builds classes from them."""
from ..caffemodel import (BLOB_CHANNELS, BLOB_DATA, BLOB_DIFF, BLOB_DOUBLE_DATA, BLOB_DOUBLE_DIFF, BLOB_HEIGHT,
                          BLOB_NUM, BLOB_SHAPE, BLOB_WIDTH, LAYER, LAYER_V1, NET_LAYER, NET_LAYERS_V1,
                          V1_TYPE_NAMES)
from ..datum import CHANNELS, DATA, ENCODED, FLOAT_DATA, HEIGHT, LABEL, WIDTH
from ...config.prototxt_upgrade import SOLVER_TYPES, V1_TYPES
from ...config.schema import Field, Message
from ...layers.common import BLOB_SHAPE as BLOB_SHAPE_MESSAGE

PACKED_FLOAT = {"packed": True}
PACKED_DOUBLE = {"type": "double", "packed": True}

BLOB_PROTO = Message("BlobProto", [
    Field("shape", BLOB_SHAPE_MESSAGE, None, "the blob's shape", number=BLOB_SHAPE),
    Field("data", "float", None, "the values, row-major", repeated=True, number=BLOB_DATA, proto=PACKED_FLOAT),
    Field("diff", "float", None, "the gradients", repeated=True, number=BLOB_DIFF, proto=PACKED_FLOAT),
    Field("double_data", "float", None, "the values as doubles", repeated=True, number=BLOB_DOUBLE_DATA,
          proto=PACKED_DOUBLE),
    Field("double_diff", "float", None, "the gradients as doubles", repeated=True, number=BLOB_DOUBLE_DIFF,
          proto=PACKED_DOUBLE),
    Field("num", "int", 0, "deprecated 4-D shape: num", number=BLOB_NUM),
    Field("channels", "int", 0, "deprecated 4-D shape: channels", number=BLOB_CHANNELS),
    Field("height", "int", 0, "deprecated 4-D shape: height", number=BLOB_HEIGHT),
    Field("width", "int", 0, "deprecated 4-D shape: width", number=BLOB_WIDTH),
], doc="One array (a layer's weights, a mean image).")

BLOB_PROTO_VECTOR = Message("BlobProtoVector", [
    Field("blobs", BLOB_PROTO, None, "the arrays", repeated=True, number=1),
])

DATUM = Message("Datum", [
    Field("channels", "int", None, "channels", number=CHANNELS),
    Field("height", "int", None, "height", number=HEIGHT),
    Field("width", "int", None, "width", number=WIDTH),
    Field("data", "str", None, "raw uint8 pixels (C, H, W), or the encoded image", number=DATA, proto={"type": "bytes"}),
    Field("label", "int", None, "the label", number=LABEL),
    Field("float_data", "float", None, "float values instead of data", repeated=True, number=FLOAT_DATA),
    Field("encoded", "bool", False, "data holds a PNG/JPEG file", number=ENCODED),
], doc="One record of an LMDB/LevelDB dataset.")

SOLVER_STATE = Message("SolverState", [
    Field("iter", "int", None, "the current iteration", number=1),
    Field("learned_net", "str", None, "the weights file of this state", number=2),
    Field("history", BLOB_PROTO, None, "the update rule's history", repeated=True, number=3),
    Field("current_step", "int", 0, "the current step of the learning-rate policy", number=4),
], doc="Caffe's .solverstate (netcli writes .solverstate.npz).")

_V1_NUMBERS = {name: number for number, name in V1_TYPE_NAMES.items()}
V1_LAYER = Message("V1LayerParameter", [
    Field("bottom", "str", None, "input blob names", repeated=True, number=LAYER_V1["bottom"]),
    Field("top", "str", None, "output blob names", repeated=True, number=LAYER_V1["top"]),
    Field("name", "str", None, "layer name", number=LAYER_V1["name"]),
    Field("type", ("NONE",) + tuple(V1_TYPES), "NONE", "layer type (upper case)", number=LAYER_V1["type"],
          proto={"enum": "LayerType", "values": {"NONE": 0, **{k: _V1_NUMBERS[v] for k, v in V1_TYPES.items()}}}),
    Field("blobs", BLOB_PROTO, None, "weights", repeated=True, number=LAYER_V1["blobs"]),
], doc="A layer of a net file written before 2015 (name, type, blobs: what old caffemodels hold).")

# NetParameter's fields beyond netcli's NET_TOP (config/net_spec.py), and LayerParameter's beyond
# LAYER_COMMON and the layers' <type>_param blocks.
NET_EXTRA = [
    Field("input", "str", None, "deprecated: input blob names", repeated=True, number=3),
    Field("input_shape", BLOB_SHAPE_MESSAGE, None, "deprecated: input shapes", repeated=True, number=8),
    Field("input_dim", "int", None, "deprecated: 4 dimensions per input", repeated=True, number=4),
    Field("layers", V1_LAYER, None, "deprecated V1 layers", repeated=True, number=NET_LAYERS_V1),
]
NET_LAYER_NUMBER = NET_LAYER
LAYER_EXTRA = [
    Field("blobs", BLOB_PROTO, None, "the layer's learned arrays", repeated=True, number=LAYER["blobs"]),
]
# SolverParameter's beyond netcli's SOLVER (solver/spec.py): prototxt_upgrade.py turns it into `type`.
SOLVER_EXTRA = [
    Field("solver_type", SOLVER_TYPES, "SGD", "deprecated: the update rule, as an enum", number=30),
]
STANDALONE = (BLOB_PROTO_VECTOR, DATUM, SOLVER_STATE)
