"""The net file's own messages: NetParameter, LayerParameter, ParamSpec, NetStateRule."""
from .schema import Field, Message, REQUIRED

PARAM_SPEC = Message("ParamSpec", [
    Field("name", "str", None, "name under which layers share this param"),
    Field("share_mode", ("STRICT", "PERMISSIVE"), "STRICT",
          "STRICT: shared shapes must match; PERMISSIVE: only counts"),
    Field("lr_mult", "float", 1.0, "multiplier on the solver's learning rate"),
    Field("decay_mult", "float", 1.0, "multiplier on the solver's weight decay"),
], doc="Per-parameter learning settings and sharing.")

NET_STATE_RULE = Message("NetStateRule", [
    Field("phase", ("TRAIN", "TEST", "VALIDATION"), None, "the phase this rule matches"),
    Field("min_level", "int", None, "lowest net level"),
    Field("max_level", "int", None, "highest net level"),
    Field("stage", "str", None, "stages the net must all have", repeated=True),
    Field("not_stage", "str", None, "stages the net must not have", repeated=True),
], doc="When a layer is part of the net.")

# The fields every layer has; `<type>_param` keys come from each layer class.
LAYER_COMMON = [
    Field("name", "str", REQUIRED, "layer name"),
    Field("type", "str", REQUIRED, "layer type"),
    Field("bottom", "str", None, "input blob name(s)", repeated=True),
    Field("top", "str", None, "output blob name(s)", repeated=True),
    Field("param", PARAM_SPEC, None, "one ParamSpec per param blob", repeated=True),
    Field("include", NET_STATE_RULE, None, "include only when a rule matches", repeated=True),
    Field("exclude", NET_STATE_RULE, None, "exclude when a rule matches", repeated=True),
    Field("loss_weight", "float", None, "weight of each top in the net's loss", repeated=True),
    Field("propagate_down", "bool", None, "per bottom: back-propagate into it", repeated=True),
    Field("phase", ("TRAIN", "TEST", "VALIDATION"), None, "override the net's phase for this layer"),
]

NET_STATE = Message("NetState", [
    Field("phase", ("TRAIN", "TEST", "VALIDATION"), "TEST", "ignored, as in Caffe: the phase is chosen when the net is built"),
    Field("level", "int", 0, "ignored, as in Caffe: the level is chosen when the net is built (--level)"),
    Field("stage", "str", None, "stages the net always has (--stage adds more)", repeated=True),
], doc="The state a net file gives itself.")

NET_TOP = Message("NetParameter", [
    Field("name", "str", "", "net name"),
    Field("force_backward", "bool", False, "compute every gradient, even into data"),
    Field("state", NET_STATE, None, "stages the net always has: {stage: [...]}"),
    Field("debug_info", "bool", False, "accepted for prototxt compatibility"),
])
