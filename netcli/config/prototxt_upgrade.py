"""Caffe's upgrades of old net files (upgrade_proto.cpp), on the trees netcli/config/prototxt.py
reads: V1 `layers { type: CONVOLUTION blobs_lr: 1 }` into `layer { type: "Convolution" param {
lr_mult: 1 } }`, and the net-level `input`/`input_dim`/`input_shape` into an Input layer."""
from __future__ import annotations

from ..errors import ConfigError
from .yamlload import LDict, LList


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
# SolverParameter's deprecated `solver_type` enum, in caffe.proto's order (its values are 0, 1, ...)
SOLVER_TYPES = ("SGD", "NESTEROV", "ADAGRAD", "RMSPROP", "ADADELTA", "ADAM")


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


def upgrade_solver(tree, path):
    """`solver_type: NESTEROV` (Caffe's deprecated enum) -> `type: "Nesterov"`, as Caffe's
    UpgradeSolverType; both given is an error, as in Caffe. Returns the tree (changed in place)."""
    if not isinstance(tree, dict) or "solver_type" not in tree:
        return tree
    loc = tree.key_locs.get("solver_type")
    value = tree.pop("solver_type")
    tree.key_locs.pop("solver_type", None)
    if "type" in tree:
        raise ConfigError(f"{loc}: give the solver's type (type) or the deprecated solver_type, not both; "
                          "Caffe refuses such files too")
    name = value.upper() if isinstance(value, str) else None
    if name not in SOLVER_TYPES:
        from .schema import did_you_mean
        raise ConfigError(f"{loc}: solver_type '{value}' is not one of {', '.join(SOLVER_TYPES)}"
                          f"{did_you_mean(value, SOLVER_TYPES) if isinstance(value, str) else ''}")
    tree["type"] = name
    tree.key_locs["type"] = loc
    return tree
