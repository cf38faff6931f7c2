"""Trees (dicts, lists, scalars) written as protocol buffers' text format, and nets and solvers
written as a prototxt Caffe reads (`netcli convert`); the reader is netcli/config/prototxt.py."""
from __future__ import annotations

import math


def dump_prototxt(tree):
    """A tree of dicts, lists and scalars as text format: a list becomes a repeated field,
    strings are quoted but for `Enum` values, written bare."""
    lines = []
    _dump_message(tree, 0, lines)
    return "\n".join(lines) + "\n"


def _dump_message(tree, indent, lines):
    pad = "  " * indent
    for key, value in tree.items():
        for v in (value if isinstance(value, list) else [value]):
            if isinstance(v, dict):
                lines.append(f"{pad}{key} {{")
                _dump_message(v, indent + 1, lines)
                lines.append(f"{pad}}}")
            else:
                lines.append(f"{pad}{key}: {_scalar(v)}")


class Enum(str):
    """A string written bare (an enum value such as MAX or TRAIN)."""


def _scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Enum):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if math.isnan(v):
            return "nan"
        return repr(v)
    s = str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{s}"'



# -- writing nets and solvers as Caffe reads them ------------------------------------------------
# Fields that caffe.proto declares as strings although netcli checks them as enums.
_STRINGS = {("FillerParameter", "type"): str.lower, ("SolverParameter", "lr_policy"): str,
            ("SolverParameter", "type"): lambda v: _rule_name(v)}


def _rule_name(value):
    """An update rule's `type` as Caffe spells it (Nesterov, AdaGrad, ...)."""
    from ..update_rules import NAMES
    return NAMES.get(value, value)


def caffe_enum(message, field, value):
    """An enum value as caffe.proto spells it: bare, or a string where Caffe's field is one."""
    style = _STRINGS.get((message, field))
    return style(value) if style else Enum(value)


def net_to_prototxt(path):
    """A net file (YAML or prototxt) as a prototxt Caffe reads."""
    from .compile import config_to_dict
    return _caffe_only(config_to_dict(path, caffe_enum, "layer"))


def solver_to_prototxt(path):
    """A solver file (YAML or prototxt) as a prototxt Caffe reads."""
    from .compile import solver_to_dict
    return _caffe_only(solver_to_dict(path, caffe_enum, "layer"))


# netcli's bool fields that caffe.proto lacks (Caffe would refuse the file): left out, with a
# comment at the top of the file and a warning when true.
NOT_IN_CAFFE = {("data_param", "shuffle"): "Caffe's DataParameter has no shuffle (it reads the database in "
                "order: shuffle it when creating it, as convert_imageset -shuffle does)"}


def _caffe_only(tree):
    from .. import log
    notes = []
    _drop_not_in_caffe(tree, notes)
    for note in notes:
        log.warn(f"prototxt: {note}")
    return "".join(f"# {note}\n" for note in notes) + dump_prototxt(tree)


def _drop_not_in_caffe(tree, notes):
    """Remove NOT_IN_CAFFE's fields from every layer of `tree` (a net, or a solver with nets)."""
    for value in tree.values():
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict):
                continue
            for (param, field), why in NOT_IN_CAFFE.items():
                if isinstance(item.get(param), dict) and field in item[param]:
                    if item[param].pop(field):      # false: Caffe's behaviour, dropped without a word
                        notes.append(f"layer '{item.get('name')}': {param}.{field}: true left out: {why}")
            _drop_not_in_caffe(item, notes)
