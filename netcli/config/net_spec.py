"""The net file's own messages: NetParameter, LayerParameter, ParamSpec, NetStateRule."""
from .schema import Field, Message, REQUIRED

PARAM_SPEC = Message("ParamSpec", [
    Field("name", "str", None, "name under which layers share this param", number=1),
    Field("share_mode", ("STRICT", "PERMISSIVE"), "STRICT",
          "STRICT: shared shapes must match; PERMISSIVE: only counts", number=2,
          proto={"enum": "DimCheckMode"}),
    Field("lr_mult", "float", 1.0, "multiplier on the solver's learning rate", number=3),
    Field("decay_mult", "float", 1.0, "multiplier on the solver's weight decay", number=4),
], doc="Per-parameter learning settings and sharing.")

NET_STATE_RULE = Message("NetStateRule", [
    Field("phase", ("TRAIN", "TEST", "VALIDATION"), None, "the phase this rule matches", number=1),
    Field("min_level", "int", None, "lowest net level", number=2),
    Field("max_level", "int", None, "highest net level", number=3),
    Field("stage", "str", None, "stages the net must all have", repeated=True, number=4),
    Field("not_stage", "str", None, "stages the net must not have", repeated=True, number=5),
], doc="When a layer is part of the net.")

# The fields every layer has; `<type>_param` keys come from each layer class.
LAYER_COMMON = [
    Field("name", "str", REQUIRED, "layer name", number=1),
    Field("type", "str", REQUIRED, "layer type", number=2),
    Field("bottom", "str", None, "input blob name(s)", repeated=True, number=3),
    Field("top", "str", None, "output blob name(s)", repeated=True, number=4),
    Field("param", PARAM_SPEC, None, "one ParamSpec per param blob", repeated=True, number=6),
    Field("include", NET_STATE_RULE, None, "include only when a rule matches", repeated=True, number=8),
    Field("exclude", NET_STATE_RULE, None, "exclude when a rule matches", repeated=True, number=9),
    Field("loss_weight", "float", None, "weight of each top in the net's loss", repeated=True, number=5),
    Field("propagate_down", "bool", None, "per bottom: back-propagate into it", repeated=True, number=11),
    Field("phase", ("TRAIN", "TEST", "VALIDATION"), None, "override the net's phase for this layer", number=10),
]

NET_STATE = Message("NetState", [
    Field("phase", ("TRAIN", "TEST", "VALIDATION"), "TEST", "ignored, as in Caffe: the phase is chosen when the net is built", number=1),
    Field("level", "int", 0, "ignored, as in Caffe: the level is chosen when the net is built (--level)", number=2),
    Field("stage", "str", None, "stages the net always has (--stage adds more)", repeated=True, number=3),
], doc="The state a net file gives itself.")

NET_TOP = Message("NetParameter", [
    Field("name", "str", "", "net name", number=1),
    Field("force_backward", "bool", False, "compute every gradient, even into data", number=5),
    Field("state", NET_STATE, None, "stages the net always has: {stage: [...]}", number=6),
    Field("debug_info", "bool", False, "accepted for prototxt compatibility", number=7),
])
