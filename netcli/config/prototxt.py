"""Protocol buffers' text format (Caffe's .prototxt) -> the same trees as YAML (yamlload.LDict,
LList, scalars, each with its line), and back.

The reader needs no schema: a field written once is a value, a field written several times (or
as `[a, b]`) a list; the typed messages of netcli/config check the tree as they check YAML, so a
mistake gets the same file:line:layer:field line and did-you-mean. Identifiers (enum values such
as MAX or TRAIN) become strings, `true`/`false` booleans, numbers ints or floats.

`upgrade_net` turns what Caffe's upgrade_proto upgrades into the current form: V1 `layers {
type: CONVOLUTION blobs_lr: 1 }` into `layer { type: "Convolution" param { lr_mult: 1 } }`, and
the net-level `input`/`input_dim`/`input_shape` into an Input layer.
"""
from __future__ import annotations

import math
import os
import re

from ..errors import ConfigError
from .yamlload import LDict, LList, Loc, MAX_DEPTH, MAX_NODES, config_text

EXTENSIONS = (".prototxt", ".pbtxt", ".prototext", ".pt")

_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\f\v]+) | (?P<newline>\n) | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>-?(?:0[xX][0-9a-fA-F]+|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?[fF]?)(?![\w.]))
  | (?P<ident>-?[A-Za-z_][\w.]*)
  | (?P<symbol>[{}<>:\[\],;])
""", re.VERBOSE)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
            "\\": "\\", "'": "'", '"': '"', "?": "?"}
_CLOSE = {"{": "}", "<": ">"}
_WORD = re.compile(r"[-+.\w]+")          # what a bad number or name runs to, for the message
INT_RANGE = (-2 ** 63, 2 ** 64 - 1)     # protobuf's int64 and uint64
# The sniff's patterns. Each is linear in the text: a line's leading blanks never run on into the
# next line (where the search would scan them again from every blank line), and no two adjacent
# parts can match the same characters.
_BLOCK_LINE = re.compile(r"^[^\S\n]*[A-Za-z_]\w*\s*(?::\s*)?[{<][^\S\n]*(?:#.*)?$", re.MULTILINE)
_LIST_LINE = re.compile(r"^[^\S\n]*-\s", re.MULTILINE)


def is_prototxt(path, text=None):
    """By extension; for other names, by content: YAML has no `name {` opening a block."""
    if os.fspath(path).lower().endswith(EXTENSIONS):
        return True
    if os.fspath(path).lower().endswith((".yaml", ".yml")) or text is None:
        return False
    return _BLOCK_LINE.search(text) is not None and _LIST_LINE.search(text) is None


def load_prototxt(path, text=None):
    """Parse a text-format file (or `text`, reported as `path`) into LDict/LList/scalars."""
    path = os.fspath(path)
    return _Parser(path, config_text(path, text)).document()


class _Parser:
    def __init__(self, path, text):
        self.path = path
        self.tokens = []          # (kind, text, line)
        line = 1
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                word = _WORD.match(text, pos)
                if word is None:
                    raise ConfigError(f"{path}:{line}: prototxt syntax error: unexpected character {text[pos]!r}")
                shown = word.group() if len(word.group()) <= 40 else f"{word.group()[:30]}... ({len(word.group())} characters)"
                raise ConfigError(f"{path}:{line}: prototxt syntax error: {shown!r} is neither a number nor a name")
            kind = m.lastgroup
            if kind == "newline":
                line += 1
            elif kind not in ("space", "comment"):
                self.tokens.append((kind, m.group(), line))
            pos = m.end()
        self.tokens.append(("end", "", line))
        self.i = 0
        self.nodes = 0

    # -- tokens ------------------------------------------------------------------------------
    def peek(self):
        return self.tokens[self.i]

    def take(self):
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def fail(self, tok, expected):
        got = "the end of the file" if tok[0] == "end" else repr(tok[1])
        raise ConfigError(f"{self.path}:{tok[2]}: prototxt syntax error: expected {expected}, got {got}")

    # -- grammar -----------------------------------------------------------------------------
    def document(self):
        tree = self.message(None, 0, 1)
        if not tree:
            raise ConfigError(f"{self.path}: the file is empty")
        return tree

    def message(self, close, depth, line):
        if depth > MAX_DEPTH:
            raise ConfigError(f"{self.path}:{line}: nested more than {MAX_DEPTH} levels deep")
        out = LDict()
        out.loc, out.key_locs = Loc(self.path, line), {}
        repeated = set()
        while True:
            tok = self.take()
            if tok[0] == "end" and close is None:
                return out
            if tok[0] == "symbol" and tok[1] == close:
                return out
            if tok[0] != "ident" or tok[1].startswith("-"):
                self.fail(tok, f"a field name or '{close}'" if close else "a field name")
            name, loc = tok[1], Loc(self.path, tok[2])
            colon = self.peek()[1] == ":" and self.peek()[0] == "symbol"
            if colon:
                self.take()
            nxt = self.peek()
            if nxt[0] == "symbol" and nxt[1] == "[":
                self.take()
                values = LList()
                values.loc, values.item_locs = loc, []
                while not (self.peek()[0] == "symbol" and self.peek()[1] == "]"):
                    values.append(self.value(depth, colon, name))
                    values.item_locs.append(Loc(self.path, self.tokens[self.i - 1][2]))
                    if self.peek()[1] == ",":
                        self.take()
                    elif not (self.peek()[0] == "symbol" and self.peek()[1] == "]"):
                        self.fail(self.peek(), "',' or ']'")
                self.take()
                for v, vloc in zip(values, values.item_locs):
                    self.add(out, repeated, name, v, vloc, True)
                if not values:
                    self.add_empty(out, repeated, name, loc)
            else:
                self.add(out, repeated, name, self.value(depth, colon, name), loc, False)
            if self.peek()[0] == "symbol" and self.peek()[1] in ",;":
                self.take()

    def value(self, depth, colon, name):
        tok = self.peek()
        if tok[0] == "symbol" and tok[1] in _CLOSE:
            self.take()
            return self.message(_CLOSE[tok[1]], depth + 1, tok[2])
        if not colon:
            self.fail(tok, "':' or '{'")
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ConfigError(f"{self.path}:{tok[2]}: more than {MAX_NODES:,} values; netcli refuses files this large")
        self.take()
        if tok[0] == "string":
            text = _unquote(tok[1], self.path, tok[2])
            while self.peek()[0] == "string":           # adjacent strings are one string
                text += _unquote(self.take()[1], self.path, tok[2])
            return text
        if tok[0] == "number":
            try:
                return _number(tok[1])
            except ValueError as e:
                raise ConfigError(f"{self.path}:{tok[2]}: field '{name}': {e}") from None
        if tok[0] == "ident":
            word = tok[1]
            sign, bare = (-1.0, word[1:]) if word.startswith("-") else (1.0, word)
            low = bare.lower()
            if low in ("inf", "infinity", "inff", "infinityf"):
                return sign * math.inf
            if low in ("nan", "nanf"):
                return math.nan
            if sign > 0 and word in ("true", "True", "t"):
                return True
            if sign > 0 and word in ("false", "False", "f"):
                return False
            if sign < 0:
                self.fail(tok, "a number after '-'")
            return word
        self.fail(tok, "a value")

    @staticmethod
    def add(out, repeated, name, value, loc, from_list):
        if name not in out:
            out.key_locs[name] = loc
            if from_list:
                items = LList([value])
                items.loc, items.item_locs = loc, [loc]
                out[name] = items
                repeated.add(name)
            else:
                out[name] = value
            return
        if name not in repeated:
            items = LList([out[name]])
            items.loc, items.item_locs = out.key_locs[name], [out.key_locs[name]]
            out[name] = items
            repeated.add(name)
        out[name].append(value)
        out[name].item_locs.append(loc)

    @staticmethod
    def add_empty(out, repeated, name, loc):
        if name not in out:
            items = LList()
            items.loc, items.item_locs = loc, []
            out[name], out.key_locs[name] = items, loc
            repeated.add(name)


def _number(text):
    """An int (at most 64 bits, as protobuf's integers: ValueError beyond, before converting
    a number of any length) or a float."""
    body = text[:-1] if text[-1] in "fF" and not text.lower().startswith(("0x", "-0x")) else text
    hexed = re.fullmatch(r"-?0[xX][0-9a-fA-F]+", body)
    if not hexed and not re.fullmatch(r"-?\d+", body):
        return float(body)
    digits = body.lstrip("-")[2 if hexed else 0:].lstrip("0")
    value = None if len(digits) > (16 if hexed else 20) else int(body, 16 if hexed else 10)
    if value is None or not INT_RANGE[0] <= value <= INT_RANGE[1]:
        shown = body if len(body) <= 24 else f"{body[:12]}... ({len(digits)} {'hex ' if hexed else ''}digits)"
        raise ValueError(f"the integer {shown} is out of range: prototxt integers have at most 64 bits")
    return value


def _unquote(text, path, line):
    body, k = text[1:-1], 0
    raw = bytearray()
    while k < len(body):
        c = body[k]
        if c != "\\":
            raw += c.encode("utf-8")
            k += 1
            continue
        k += 1
        e = body[k]
        if e in _ESCAPES:
            raw += _ESCAPES[e].encode()
            k += 1
        elif e in "xX":
            m = re.match(r"[0-9a-fA-F]{1,2}", body[k + 1:])
            if not m:
                raise ConfigError(f"{path}:{line}: prototxt syntax error: bad escape '\\{e}' in a string")
            raw.append(int(m.group(), 16))
            k += 1 + len(m.group())
        elif e in "01234567":
            m = re.match(r"[0-7]{1,3}", body[k:])
            raw.append(int(m.group(), 8) & 0xFF)
            k += len(m.group())
        else:
            raise ConfigError(f"{path}:{line}: prototxt syntax error: bad escape '\\{e}' in a string")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}:{line}: a string is not UTF-8 after its escapes") from None


# -- writing ---------------------------------------------------------------------------------
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


# -- Caffe's upgrades (upgrade_proto.cpp) ------------------------------------------------------
V1_TYPES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL", "CONCAT": "Concat",
    "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution", "DATA": "Data",
    "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout", "DUMMY_DATA": "DummyData",
    "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise", "EXP": "Exp", "FLATTEN": "Flatten",
    "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output", "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col",
    "IMAGE_DATA": "ImageData", "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct",
    "LRN": "LRN", "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence", "SOFTMAX": "Softmax",
    "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice", "TANH": "TanH",
    "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}
_V1_PARAM_LISTS = {"param": "name", "blob_share_mode": "share_mode", "blobs_lr": "lr_mult",
                   "weight_decay": "decay_mult"}
_V1_TRANSFORM = ("scale", "mean_file", "crop_size", "mirror")


def _ldict(loc, items=()):
    out = LDict(items)
    out.loc, out.key_locs = loc, {k: loc for k in out}
    return out


def _llist(loc, items):
    out = LList(items)
    out.loc, out.item_locs = loc, [loc] * len(out)
    return out


def _as_list(v):
    return list(v) if isinstance(v, list) else [v]


def upgrade_net(tree, path):
    """A prototxt net in Caffe's current form: V1 `layers` -> `layer`, net-level inputs -> an
    Input layer (first). Returns the tree (changed in place)."""
    if "layers" in tree:
        if "layer" in tree:
            raise ConfigError(f"{path}:{tree.key_locs['layers'].line}: the net has both V1 'layers' and "
                              "'layer' entries; Caffe refuses such files too")
        v1 = tree.pop("layers")
        loc = tree.key_locs.pop("layers")
        tree["layer"] = _llist(loc, [_upgrade_v1(x, path) for x in _as_list(v1)])
        tree["layer"].item_locs = getattr(v1, "item_locs", None) or [loc]
        tree.key_locs["layer"] = loc
    if "input" in tree:
        _upgrade_inputs(tree, path)
    return tree


def _upgrade_v1(layer, path):
    if not isinstance(layer, dict):
        return layer
    loc = layer.loc
    if "layer" in layer:
        raise ConfigError(f"{loc}: a V0 layer (layers {{ layer {{ ... }} }}); upgrade the file with Caffe's "
                          "upgrade_net_proto_text first")
    out = _ldict(loc)
    params = {}
    for key, value in layer.items():
        kloc = layer.key_locs.get(key, loc)
        if key == "type":
            if isinstance(value, str) and value in V1_TYPES:
                value = V1_TYPES[value]
            elif isinstance(value, str):
                from .schema import did_you_mean
                raise ConfigError(f"{kloc}: V1 layer type '{value}' is not one of Caffe's "
                                  f"V1 types{did_you_mean(value, V1_TYPES)}")
        if key in _V1_PARAM_LISTS:
            for i, v in enumerate(_as_list(value)):
                params.setdefault(i, _ldict(kloc))[_V1_PARAM_LISTS[key]] = v
                params[i].key_locs[_V1_PARAM_LISTS[key]] = kloc
            continue
        if key.endswith("data_param") and isinstance(value, dict) and \
                any(k in value for k in _V1_TRANSFORM):
            transform = out.get("transform_param") or _ldict(kloc)
            for k in _V1_TRANSFORM:
                if k in value:
                    transform[k] = value.pop(k)
                    transform.key_locs[k] = value.key_locs.pop(k, kloc)
            out["transform_param"], out.key_locs["transform_param"] = transform, kloc
        out[key] = value
        out.key_locs[key] = kloc
    if params:
        out["param"] = _llist(loc, [params[i] for i in sorted(params)])
        out.key_locs["param"] = loc
    return out


def _upgrade_inputs(tree, path):
    """`input: "data" input_dim: 1 input_dim: 3 ...` (or `input_shape { dim: ... }`) -> an
    Input layer named "input", as Caffe's UpgradeNetInput."""
    loc = tree.key_locs["input"]
    names = _as_list(tree.pop("input"))
    tree.key_locs.pop("input")
    shapes = []
    if "input_shape" in tree:
        shapes = [s for s in _as_list(tree.pop("input_shape"))]
        tree.key_locs.pop("input_shape")
    elif "input_dim" in tree:
        dims = _as_list(tree.pop("input_dim"))
        tree.key_locs.pop("input_dim")
        if len(dims) != 4 * len(names):
            raise ConfigError(f"{loc}: {len(names)} input(s) need {4 * len(names)} input_dim values "
                              f"(4 each), got {len(dims)}")
        shapes = [_ldict(loc, {"dim": _llist(loc, dims[4 * i:4 * i + 4])}) for i in range(len(names))]
    layer = _ldict(loc, {"name": "input", "type": "Input", "top": _llist(loc, names),
                         "input_param": _ldict(loc, {"shape": _llist(loc, shapes)})})
    layers = tree.get("layer")
    if layers is None:
        layers = _llist(loc, [])
    elif not isinstance(layers, list):
        layers = _llist(tree.key_locs["layer"], [layers])
    layers.insert(0, layer)
    layers.item_locs.insert(0, loc)
    tree["layer"] = layers
    tree.key_locs.setdefault("layer", loc)


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
