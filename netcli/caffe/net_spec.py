"""caffe.net_spec: nets written in Python, as pycaffe's (Caffe 1.0's python/caffe/net_spec.py).

    from netcli.caffe import layers as L, params as P
    n = caffe.NetSpec()
    n.data, n.label = L.Data(batch_size=64, backend=P.Data.LMDB, source="train_lmdb", ntop=2)
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type="xavier"))
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    open("lenet.prototxt", "w").write(str(n.to_proto()))

The rules are pycaffe's: a layer is named after its first top (the NetSpec attribute it was
assigned to), unnamed tops get <Type><k>; keyword arguments go into the layer's own parameter
block (`<type>_param`) when that block has the field, else onto the layer (`loss_weight`,
`include`, `param`, any `*_param` block); `ntop` and `in_place` are the function's own.

to_proto() gives a NetParameter whose str() is the prototxt text. Without the protobuf package it
is netcli's own (net_parameter(): fields checked against netcli's schema, enum values written
by name); P.<Type>.<VALUE> is then an int with Caffe's number and its name.
"""
from __future__ import annotations

from collections import Counter, OrderedDict

from ..config.net_spec import LAYER_COMMON
from ..config.prototxt_write import caffe_enum, dump_prototxt
from ..config.schema import Message
from ..errors import NetcliError


def _registry():
    from ..layers import REGISTRY
    return REGISTRY


def _layer_fields(type_name):
    """{field: Field or Message} a layer of this type has (None: a type netcli does not know)."""
    cls = _registry().get(type_name)
    if cls is None:
        return None
    fields = {f.name: f for f in LAYER_COMMON}
    fields.update(cls.params)
    return fields


def _own_block(type_name):
    """The `<type>_param` block named after the type (pycaffe's param_name_dict), or None."""
    cls = _registry().get(type_name)
    for block, msg in (cls.params.items() if cls else ()):
        if msg.name == f"{type_name}Parameter":
            return block
    return None


class EnumValue(int):
    """P.Pooling.MAX without protobuf: Caffe's number, written by its name."""

    def __new__(cls, number, name):
        v = super().__new__(cls, number)
        v.name = name
        return v

    def __repr__(self):
        return self.name


# caffe.proto's numbers where they are not the position in netcli's list of names
_NUMBERS = {("DataParameter", "backend"): {"LEVELDB": 0, "LMDB": 1},
            ("ReductionParameter", "operation"): {"SUM": 1, "ASUM": 2, "SUMSQ": 3, "MEAN": 4},
            ("HingeLossParameter", "norm"): {"L1": 1, "L2": 2}}


def enum_number(message, field, name):
    """Caffe's number of an enum value (a value only netcli has: 100 + its position)."""
    table = _NUMBERS.get((message, field.name))
    if table is None:
        return field.kind.index(name)
    return table.get(name, 100 + field.kind.index(name))


def _scalar(message, field, value, where):
    kind = field.kind if field is not None else None
    if isinstance(kind, tuple):                   # an enum: a name, or Caffe's number
        if isinstance(value, EnumValue):
            value = value.name
        elif isinstance(value, int) and not isinstance(value, bool):
            names = [n for n in kind if enum_number(message, field, n) == value]
            if not names:
                raise NetcliError(f"{where}: {value} is not the number of any of {', '.join(kind)}")
            value = names[0]
        return caffe_enum(message, field.name, str(value))
    if kind == "str":
        return str(value)
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    return value


def _assign(fields, tree, key, value, where, message=""):
    """pycaffe's assign_proto on a tree: `fields` is {name: Field} of the message (None: no
    schema, everything as given); a name the message lacks is an AttributeError, as protobuf's."""
    field = None
    if fields is not None:
        field = fields.get(key)
        if field is None:
            raise AttributeError(f"{where} has no field '{key}'")
        if isinstance(field, Message):          # a layer's parameter block, given as a message
            sub = tree.setdefault(key, OrderedDict())
            for k, v in dict(value).items():
                _assign(field.by_name, sub, k, v, f"{where}.{key}", field.name)
            return
    repeated = field.repeated if field is not None else isinstance(value, (list, tuple))
    kind = field.kind if field is not None else None
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    out = []
    for v in items:
        if isinstance(v, dict):
            sub = OrderedDict()
            sub_fields = kind.by_name if isinstance(kind, Message) else None
            for k, x in v.items():
                _assign(sub_fields, sub, k, x, f"{where}.{key}", kind.name if sub_fields else "")
            out.append(sub)
        else:
            out.append(_scalar(message, field, v, f"{where}.{key}"))
    if repeated:
        tree.setdefault(key, []).extend(out)
    elif len(out) != 1:
        raise NetcliError(f"{where}.{key}: one value, got {len(out)}")
    else:
        tree[key] = out[0]


class NetParameter:
    """A net as to_proto() builds it without protobuf: `.name`, `.force_backward`, `.layer`
    (one tree per layer); str() is the prototxt text."""

    def __init__(self, layers=()):
        self.name, self.force_backward, self.layer = "", False, list(layers)

    def tree(self):
        t = OrderedDict()
        if self.name:
            t["name"] = self.name
        if self.force_backward:
            t["force_backward"] = True
        t["layer"] = self.layer
        return t

    def __str__(self):
        return dump_prototxt(self.tree()) if self.layer or self.name else ""


def net_parameter(layers):
    """The NetParameter of these layer trees: protobuf's caffe_pb2 message where it is installed
    (netcli.caffe.proto), else netcli's own with the same str()."""
    own = NetParameter(layers)
    try:
        from .proto import caffe_pb2
        from google.protobuf import text_format
    except ImportError:             # no protobuf (the [caffe] extra): netcli's own message
        return own
    return text_format.Merge(str(own), caffe_pb2.NetParameter())


class Top:
    """One output of a layer function: the value of `L.<Type>(...)`."""

    def __init__(self, fn, n):
        self.fn, self.n = fn, n

    def to_proto(self):
        return to_proto(self)

    def _to_proto(self, layers, names, autonames):
        return self.fn._to_proto(layers, names, autonames)


class Function:
    """A layer, as L.<Type>(*bottoms, **params) makes it."""

    def __init__(self, type_name, inputs, params):
        self.type_name, self.inputs, self.params = type_name, inputs, dict(params)
        self.ntop = self.params.pop("ntop", 1)
        self.in_place = self.params.pop("in_place", False)
        for i in inputs:
            if not isinstance(i, Top):
                raise TypeError(f"L.{type_name}: bottoms are tops of other layers, got {type(i).__name__}")
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _get_name(self, names, autonames):
        if self not in names and self.ntop > 0:
            names[self] = self._get_top_name(self.tops[0], names, autonames)
        elif self not in names:
            autonames[self.type_name] += 1
            names[self] = self.type_name + str(autonames[self.type_name])
        return names[self]

    def _get_top_name(self, top, names, autonames):
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = top.fn.type_name + str(autonames[top.fn.type_name])
        return names[top]

    def _to_proto(self, layers, names, autonames):
        if self in layers:
            return
        bottoms = []
        for inp in self.inputs:
            inp._to_proto(layers, names, autonames)
            bottoms.append(layers[inp.fn]["top"][inp.n])
        layer = OrderedDict([("name", None), ("type", self.type_name), ("bottom", bottoms)])
        layer["top"] = list(bottoms) if self.in_place else [self._get_top_name(t, names, autonames) for t in self.tops]
        layer["name"] = self._get_name(names, autonames)
        where = f"layer '{layer['name']}' ({self.type_name})"
        fields, own = _layer_fields(self.type_name), _own_block(self.type_name)
        for k, v in self.params.items():
            try:
                if k.endswith("param") or own is None:
                    raise AttributeError(k)
                _assign(fields[own].by_name, layer.setdefault(own, OrderedDict()), k, v, f"{where} {own}",
                        fields[own].name)
            except AttributeError:
                try:
                    _assign(fields, layer, k, v, where, "LayerParameter")
                except AttributeError as e:
                    raise NetcliError(f"{e} (nor its {own or 'own parameter block'})") from None
        for k in [k for k, v in layer.items() if v in ([], {})]:
            del layer[k]
        layers[self] = layer


def to_proto(*tops):
    """The NetParameter of the layers that make these tops."""
    layers, autonames = OrderedDict(), Counter()
    for top in tops:
        top._to_proto(layers, {}, autonames)
    return net_parameter(layers.values())


class NetSpec:
    """Tops by name: `n.conv1 = L.Convolution(n.data, ...)` names the layer and its top conv1."""

    def __init__(self):
        super().__setattr__("tops", OrderedDict())

    def __setattr__(self, name, value):
        self.tops[name] = value

    def __getattr__(self, name):
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setitem__(self, key, value):
        self.__setattr__(key, value)

    def __getitem__(self, item):
        return self.__getattr__(item)

    def __delitem__(self, name):
        del self.tops[name]

    def keys(self):
        return list(self.tops.keys())

    def vals(self):
        return list(self.tops.values())

    def to_proto(self):
        names = {v: k for k, v in self.tops.items()}
        layers, autonames = OrderedDict(), Counter()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        return net_parameter(layers.values())


class Layers:
    """L.<Type>(*bottoms, **params): a layer function of any type."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def layer_fn(*args, **kwargs):
            fn = Function(name, args, kwargs)
            return fn if fn.ntop == 0 else fn.tops[0] if fn.ntop == 1 else fn.tops
        return layer_fn


def _messages():
    """Every parameter message of every layer type, by name (nested ones too)."""
    out, stack = {}, [m for cls in _registry().values() for m in cls.params.values()]
    while stack:
        m = stack.pop()
        if m.name not in out:
            out[m.name] = m
            stack.extend(f.kind for f in m.fields if isinstance(f.kind, Message))
    return out


class Parameters:
    """P.<Type>.<VALUE>: an enum value of <Type>Parameter (P.Pooling.MAX, P.Data.LMDB)."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        msg = _messages().get(f"{name}Parameter")
        if msg is None:
            raise AttributeError(f"no message {name}Parameter")

        class Param:
            def __getattr__(self, value):
                for f in msg.fields:
                    if isinstance(f.kind, tuple) and value in f.kind:
                        return EnumValue(enum_number(msg.name, f, value), value)
                raise AttributeError(f"{msg.name} has no enum value {value}")
        return Param()


layers = Layers()
params = Parameters()

__all__ = ["layers", "params", "NetSpec", "to_proto"]
