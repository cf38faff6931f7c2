"""One typed declaration per parameter message (as Caffe's caffe.proto): each field has a type,
a default and a one-line meaning. Parsing, defaults, error messages and the `netcli layers`
listing all come from these declarations.
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field as dc_field
from typing import Any, Callable

from ..errors import ConfigError
from .yamlload import LDict, Loc

REQUIRED = object()  # default of a field that must be given

# The range of every numeric field, as caffe.proto's types: "int" is an int32 and "float" a finite
# float32 unless a Field narrows it with `range`; a field's `check` adds what ranges cannot say.
INT_RANGE = (-2 ** 31, 2 ** 31 - 1)
FLOAT_RANGE = (-3.4e38, 3.4e38)


SUGGEST_LEN = 100    # longer names get no did-you-mean: difflib's time grows with the square of the length


def did_you_mean(word, choices):
    """' (did you mean X?)': the same word in another case first, then the shortest word that
    starts with it (`Conv`: Convolution, not Concat), then difflib's nearest. Nothing for words
    over SUGGEST_LEN characters (difflib is quadratic) or ints past Python's str() limit."""
    try:
        word = str(word)
    except ValueError:       # an int past Python's str() limit
        return ""
    if len(word) > SUGGEST_LEN:
        return ""
    choices = [c for c in map(str, choices) if len(c) <= SUGGEST_LEN]
    low = word.lower()
    close = [c for c in choices if c.lower() == low]
    if not close and len(low) >= 3:
        close = sorted((c for c in choices if c.lower().startswith(low)), key=lambda c: (len(c), c))
    close = close or difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Problems:
    """Collects every mistake found while reading one file, then raises them all at once."""

    def __init__(self):
        self.items: list[str] = []

    def add(self, loc: Loc | None, msg: str, layer: str | None = None, field: str | None = None):
        parts = [str(loc) if loc else None, layer, f"field '{field}'" if field else None]
        prefix = ": ".join(p for p in parts if p)
        self.items.append(f"{prefix}: {msg}" if prefix else msg)

    def raise_if_any(self):
        if self.items:
            raise ConfigError(self.items)

    def __bool__(self):
        return bool(self.items)


@dataclass
class Field:
    """One parameter: `kind` is "int", "float", "bool", "str", a tuple of enum names, or a Message."""
    name: str
    kind: Any
    default: Any = None
    doc: str = ""
    repeated: bool = False
    check: Callable[[Any], str | None] | None = None  # returns a complaint, or None
    range: tuple | None = None   # (lowest, highest) for "int"/"float"; default INT_RANGE/FLOAT_RANGE
    number: int | None = None    # caffe.proto's field number; netcli's own fields: from 10001 up (caffe_pb2)
    proto: dict | None = None    # where caffe.proto differs from kind/default: {"type": "string",
    #                              "default": ..., "values": {enum name: number}} (netcli/caffe/proto)

    def __post_init__(self):
        if self.range is None and self.kind in ("int", "float"):
            self.range = INT_RANGE if self.kind == "int" else FLOAT_RANGE

    @property
    def type_name(self):
        if isinstance(self.kind, Message):
            base = self.kind.name
        elif isinstance(self.kind, tuple):
            base = "|".join(self.kind)
        else:
            base = self.kind
        return f"list of {base}" if self.repeated else base


class Params:
    """Parsed values of one message: attributes, plus which fields were given and where."""

    def __init__(self, message: "Message", values: dict, given: dict):
        self._message = message
        self._given = given  # field name -> Loc
        self.__dict__.update(values)

    def has(self, name):
        return name in self._given

    def loc(self, name, default=None):
        return self._given.get(name, default)

    def to_dict(self, enum=None):
        """The given (non-default) fields as plain Python, for writing a config back; `enum`
        (message name, field name, value) -> value restyles enum values (prototxt writing)."""
        out = {}
        for name in self._given:
            v = getattr(self, name)
            kind = self._message.by_name[name].kind if name in self._message.by_name else None
            if isinstance(v, Params):
                v = v.to_dict(enum)
            elif isinstance(v, list):
                v = [x.to_dict(enum) if isinstance(x, Params) else
                     enum(self._message.name, name, x) if enum and isinstance(kind, tuple) else x for x in v]
            elif enum and isinstance(kind, tuple) and v is not None:
                v = enum(self._message.name, name, v)
            out[name] = v
        return out

    def __repr__(self):
        return f"{self._message.name}({self.to_dict()})"


@dataclass
class Message:
    name: str
    fields: list[Field] = dc_field(default_factory=list)
    doc: str = ""
    number: int | None = None    # a layer's `<type>_param` block: its field number in LayerParameter

    def __post_init__(self):
        self.by_name = {f.name: f for f in self.fields}
        # whether any field (at any depth) must be given; sub-messages are built before this one
        self.has_required = any(f.default is REQUIRED or (isinstance(f.kind, Message) and not f.repeated and
                                                          f.default is None and f.kind.has_required)
                                for f in self.fields)

    def defaults(self):
        return self.parse(LDict(), Problems(), None, "")

    def parse(self, value, problems: Problems, layer: str | None, prefix: str, loc: Loc | None = None):
        """Turn a YAML mapping into Params, adding every mistake to `problems`."""
        if value is None:
            value = LDict()
        loc = getattr(value, "loc", loc)
        if not isinstance(value, dict):
            problems.add(loc, f"expected a mapping of {self.name} fields, got {_show(value)}",
                         layer, prefix.rstrip(".") or None)
            value = LDict()
        key_locs = getattr(value, "key_locs", {})
        values, given = {}, {}
        for key, v in value.items():
            kloc = key_locs.get(key, loc)
            f = self.by_name.get(key)
            if f is None:
                problems.add(kloc, f"unknown field '{key}' in {self.name}"
                             f"{did_you_mean(key, self.by_name)}", layer, prefix + key)
                continue
            given[key] = kloc
            values[key] = _parse_field(f, v, problems, layer, prefix + key, kloc)
        for f in self.fields:
            if f.name in values:
                continue
            if f.default is REQUIRED:
                problems.add(loc, f"required field '{f.name}' is missing ({f.doc})", layer,
                             prefix + f.name)
                values[f.name] = None
            elif isinstance(f.kind, Message) and not f.repeated:
                if f.default is None and f.kind.has_required:   # its required fields are reported
                    values[f.name] = f.kind.parse(LDict(), problems, layer, prefix + f.name + ".", loc)
                else:
                    values[f.name] = f.kind.defaults() if f.default is None else f.default
            else:
                values[f.name] = list(f.default or []) if f.repeated else f.default
        return Params(self, values, given)


def _show(v):
    if isinstance(v, dict):
        return "a mapping"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10 ** 24:
        return _show_int(v)
    text = repr(v)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(v).__name__} {text}"


def _show_int(v):
    """An int as text, or its size where it is too long to show (or for str() to convert)."""
    return str(v) if abs(v) < 10 ** 24 else f"an integer of about {int(v.bit_length() * 0.30103) + 1} digits"


def _parse_field(f: Field, v, problems, layer, path, loc):
    if f.repeated:
        items = v if isinstance(v, list) else [v]
        item_locs = getattr(v, "item_locs", None) or [loc] * len(items)
        return [_parse_one(f, x, problems, layer, f"{path}[{i}]" if isinstance(v, list) else path,
                           item_locs[i]) for i, x in enumerate(items)]
    if isinstance(v, list) and not isinstance(f.kind, Message):
        problems.add(loc, f"expected a single {f.type_name}, got a list", layer, path)
        return f.default if f.default is not REQUIRED else None
    return _parse_one(f, v, problems, layer, path, loc)


def _parse_one(f: Field, v, problems, layer, path, loc):
    kind = f.kind
    bad = None
    out = v
    if isinstance(kind, Message):
        return kind.parse(v, problems, layer, path + ".", loc)
    if isinstance(kind, tuple):
        canon = {k.upper(): k for k in kind}   # enum names match in any case
        if not isinstance(v, str) or v.upper() not in canon:
            bad = f"expected one of {', '.join(kind)}, got {_show(v)}{did_you_mean(v, kind)}"
        else:
            out = canon[v.upper()]
    elif kind == "int":
        if isinstance(v, str):  # YAML 1.1 reads 1e3 (no dot) as a string
            try:
                v = float(v)
            except ValueError:
                pass
        if isinstance(v, bool) or not isinstance(v, (int, float)) or \
                (isinstance(v, float) and not (math.isfinite(v) and v.is_integer())):
            bad = f"expected an integer, got {_show(v)}"
        else:
            out = int(v)
    elif kind == "float":
        if isinstance(v, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
            try:
                out = float(v)
            except ValueError:
                bad = f"expected a number, got {_show(v)}"
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            bad = f"expected a number, got {_show(v)}"
        else:
            try:
                out = float(v)
            except OverflowError:
                out = math.inf if v > 0 else -math.inf
        if bad is None and not math.isfinite(out):
            bad = f"expected a finite number, got {_show(v)}"
    elif kind == "bool":
        if not isinstance(v, bool):
            bad = f"expected true or false, got {_show(v)}"
    elif kind == "str":
        if not isinstance(v, (str, int, float)) or isinstance(v, bool):
            bad = f"expected a string, got {_show(v)}"
        else:
            try:
                out = str(v)
            except ValueError:      # an int past Python's str() limit
                bad = f"expected a string, got {_show(v)}"
    elif kind == "tree":      # a whole nested file, checked by its own reader (a solver's net_param)
        if not isinstance(v, dict):
            bad = f"expected a mapping, got {_show(v)}"
    else:  # pragma: no cover - a programming error in a spec
        raise TypeError(f"unknown field kind {kind!r}")
    if bad is None and f.range is not None and not f.range[0] <= out <= f.range[1]:
        lo, hi = f.range
        shown = f"{out:.6g}" if kind == "float" else _show_int(out)
        bad = f"{shown} is out of range [{lo:g}, {hi:g}]" if kind == "float" else f"{shown} is out of range [{lo}, {hi}]"
    if bad is None and f.check is not None:
        bad = f.check(out)
    if bad is not None:
        problems.add(loc, bad, layer, path)
        return f.default if f.default is not REQUIRED else None
    return out


ENGINES = ("DEFAULT", "CAFFE", "CUDNN")


def engine_field(number):
    """Caffe's `engine` of a layer (which library computes it): accepted and ignored, as netcli has
    one implementation per device. `number`: its field number in the layer's parameter message."""
    return Field("engine", ENGINES, "DEFAULT", "accepted for Caffe compatibility and ignored", number=number)


# Small reusable checks.
def positive(v):
    return None if v > 0 else f"must be > 0, got {v}"


def non_negative(v):
    return None if v >= 0 else f"must be >= 0, got {v}"


def fraction(v):
    return None if 0 <= v < 1 else f"must be in [0, 1), got {v}"
