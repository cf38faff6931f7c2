"""ONNX out: a net's inference graph, with its weights, as an ONNX model (opset 18) for ONNX
Runtime, OpenCV, TensorRT and the rest.

What is exported: the net's TEST phase as it runs for inference. Input layers and the data
tops of data layers become graph inputs with a free batch axis ("N"); labels, and every layer
that needs them (losses, Accuracy), are left out, as are other losses; what is left unread at
the end are the graph outputs (for a train/test net: the scores before the loss). Dropout is
the identity. One function per layer type, in EXPORTERS; a type without one is refused with a
list of what can be exported. Needs the `onnx` package: pip install 'netcli[onnx]'.
"""
from __future__ import annotations


import numpy as np

from .errors import NetcliError

OPSET = 18
DATA_TYPES = ("Data", "HDF5Data", "ImageData", "MemoryData", "DummyData", "WindowData")
DROPPED_TYPES = ("Accuracy",)


def _onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise NetcliError("ONNX export needs the onnx package: pip install 'netcli[onnx]'") from None
    return onnx, helper, numpy_helper


class Graph:
    """The nodes, weights, inputs and outputs of the ONNX graph being written."""

    def __init__(self, net):
        self.onnx, self.helper, self.numpy_helper = _onnx()
        self.net = net
        self.nodes, self.initializers, self.inputs = [], [], []
        self._names = set()

    def name(self, hint):
        """A fresh name for an intermediate value."""
        base, i = hint, 0
        while hint in self._names or hint in self.net.blobs:
            i += 1
            hint = f"{base}_{i}"
        self._names.add(hint)
        return hint

    def const(self, hint, value, dtype=np.float32):
        n = self.name(hint)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(value, dtype), n))
        return n

    def ints(self, hint, values):
        return self.const(hint, np.asarray(values, np.int64), np.int64)

    def node(self, op, inputs, outputs=None, hint=None, **attrs):
        """Add a node; returns its output name(s) (one fresh name when outputs is None)."""
        if outputs is None:
            outputs = [self.name(hint or op.lower())]
        self.nodes.append(self.helper.make_node(op, list(inputs), list(outputs), name=self.name(f"{op}_{outputs[0]}"),
                                                **attrs))
        return outputs[0] if len(outputs) == 1 else outputs

    def dims(self, blob):
        """The blob's shape with the batch axis free (-1), for Reshape targets."""
        return [-1] + list(self.net.blobs[blob].shape[1:])


def export_onnx(net, path, preprocessing=None, raw_input=False):
    """Write `net` (a netcli.Net, TEST phase) to `path` as ONNX; returns (inputs, outputs).
    preprocessing (a Preprocessing) goes into the metadata; raw_input: the graph does its mean
    and scale on its first input (netcli/onnx_preprocess.py)."""
    from .onnx_preprocess import metadata, raw_input_nodes
    g = Graph(net)
    onnx, helper = g.onnx, g.helper
    produced = {}          # blob name -> the ONNX value holding it now
    dropped = set()        # blobs left out (labels and what depends on them)
    last_writer = {t.name: i for i, tv in enumerate(net.top_vecs) for t in tv}
    origin = {}            # a Split's top -> the blob it copies
    for i, (layer, bottoms, tops) in enumerate(zip(net.layers, net.bottom_vecs, net.top_vecs)):
        bnames = [b.name for b in bottoms]
        tnames = [t.name for t in tops]
        # ONNX names each value once: a blob written in place is renamed but for its last writer
        values = [t if last_writer[t] == i else g.name(t) for t in tnames]
        if layer.type == "Input" or layer.type in DATA_TYPES:
            first = tops[0]
            g.inputs.append(helper.make_tensor_value_info(
                first.name, onnx.TensorProto.FLOAT, ["N"] + list(first.shape[1:])))
            produced[first.name] = first.name
            if raw_input and len(g.inputs) == 1:
                produced[first.name] = raw_input_nodes(g, first.name, preprocessing)
            if layer.type == "Input":
                for t in tops[1:]:
                    g.inputs.append(helper.make_tensor_value_info(t.name, onnx.TensorProto.FLOAT,
                                                                  ["N"] + list(t.shape[1:])))
                    produced[t.name] = t.name
            else:
                dropped.update(tnames[1:])
            continue
        if layer.loss or layer.type in DROPPED_TYPES or any(b in dropped for b in bnames):
            dropped.update(tnames)
            continue
        if layer.type == "Split":          # copies of one blob: the same value, known by its name
            for t in tnames:
                produced[t], origin[t] = produced[bnames[0]], origin.get(bnames[0], bnames[0])
            continue
        export = EXPORTERS.get(layer.type)
        if export is None:
            raise NetcliError(f"layer '{layer.name}' ({layer.type}) cannot be exported to ONNX; exportable types: "
                              f"{', '.join(sorted(EXPORTERS))}")
        outs = export(g, layer, [produced[b] for b in bnames], values)
        for t, o in zip(tnames, outs if isinstance(outs, list) else [outs]):
            produced[t] = o
    used = {b.name for layer, bv in zip(net.layers, net.bottom_vecs) for b in bv
            if not (layer.loss or layer.type in DROPPED_TYPES)}
    outputs, inputs = [], {i.name for i in g.inputs}
    for tv in net.top_vecs:
        for t in tv:
            name = origin.get(t.name, t.name)
            if t.name in produced and t.name not in used and t.name not in dropped and name not in inputs and \
                    name not in [o.name for o in outputs]:
                value = produced[t.name]
                if value != name:            # the graph output carries the blob's name
                    g.node("Identity", [value], [name])
                outputs.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT,
                                                             ["N"] + list(t.shape[1:])))
    if not outputs:
        raise NetcliError("the net has nothing to export: no output is left once labels and losses are removed")
    graph = helper.make_graph(g.nodes, net.name or "netcli", g.inputs, outputs, g.initializers)
    model = helper.make_model(graph, producer_name="netcli", opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = min(model.ir_version, 9)       # readable by ONNX Runtime releases of the last years
    helper.set_model_props(model, metadata(preprocessing, g.inputs[0].name) if g.inputs else {})
    onnx.checker.check_model(model)
    from .files import write_atomic
    write_atomic(path, model.SerializeToString(), "ONNX file")      # atomic: nothing half-written
    return [i.name for i in g.inputs], [o.name for o in outputs]


# -- one function per layer type: (graph, layer, bottom values, top names) -> top value(s) -------
def _params(layer):
    return [b.data.astype(np.float32) for b in layer.blobs]


def _convolution(g, layer, xs, tops):
    w = g.const(f"{layer.name}_w", _params(layer)[0])
    ins = [w] + ([g.const(f"{layer.name}_b", _params(layer)[1])] if len(layer.blobs) > 1 else [])
    attrs = dict(kernel_shape=[layer.KH, layer.KW], strides=[layer.SH, layer.SW], dilations=[layer.DH, layer.DW],
                 pads=[layer.PH, layer.PW, layer.PH, layer.PW], group=layer.G)
    return [g.node("Conv", [x] + ins, [t], **attrs) for x, t in zip(xs, tops)]


def _deconvolution(g, layer, xs, tops):
    w = g.const(f"{layer.name}_w", _params(layer)[0])
    ins = [w] + ([g.const(f"{layer.name}_b", _params(layer)[1])] if len(layer.blobs) > 1 else [])
    return g.node("ConvTranspose", [xs[0]] + ins, tops, kernel_shape=[layer.KH, layer.KW], strides=[layer.SH, layer.SW],
                  dilations=[layer.DH, layer.DW], pads=[layer.PH, layer.PW, layer.PH, layer.PW], group=layer.G)


def _inner_product(g, layer, xs, tops):
    p = layer.p.inner_product_param
    axis = len(g.net.blobs[layer.top_names[0]].shape) - 1        # the top is shape[:axis] + (num_output,)
    flat = g.node("Flatten", xs, axis=axis)
    ins = [flat, g.const(f"{layer.name}_w", _params(layer)[0])]
    if len(layer.blobs) > 1:
        ins.append(g.const(f"{layer.name}_b", _params(layer)[1]))
    if axis == 1:
        return g.node("Gemm", ins, tops, transB=0 if p.transpose else 1)
    y = g.node("Gemm", ins, transB=0 if p.transpose else 1)
    return g.node("Reshape", [y, g.ints("shape", g.dims(layer.top_names[0]))], tops)


def _pool_geometry(g, layer):
    H, W = g.net.blobs[layer.bottom_names[0]].shape[2:]
    OH, OW = g.net.blobs[layer.top_names[0]].shape[2:]
    # Caffe's ceil-mode windows as explicit end padding: the last window starts at (O-1)*S - P
    eh = max((OH - 1) * layer.SH + layer.KH - H - layer.PH, 0)
    ew = max((OW - 1) * layer.SW + layer.KW - W - layer.PW, 0)
    return eh, ew


def _pool(g, x, kh, kw, sh, sw, ph, pw, eh, ew, is_max, top=None):
    """Caffe's pooling: max over windows clipped to the image; average dividing by the window
    clipped to the image plus its symmetric padding (so: zero-pad first, then exclude the extra
    end padding from the count)."""
    kw_ = dict(kernel_shape=[kh, kw], strides=[sh, sw])
    outs = None if top is None else [top]
    if is_max:
        return g.node("MaxPool", [x], outs, pads=[ph, pw, eh, ew], **kw_)
    if ph or pw:
        x = g.node("Pad", [x, g.ints("pads", [0, 0, ph, pw, 0, 0, ph, pw])])
        eh, ew = max(eh - ph, 0), max(ew - pw, 0)
    return g.node("AveragePool", [x], outs, pads=[0, 0, eh, ew], count_include_pad=0, **kw_)


def _pooling(g, layer, xs, tops):
    if len(tops) > 1:
        raise NetcliError(f"layer '{layer.name}' (Pooling): the argmax mask top cannot be exported to ONNX")
    eh, ew = _pool_geometry(g, layer)
    return _pool(g, xs[0], layer.KH, layer.KW, layer.SH, layer.SW, layer.PH, layer.PW, eh, ew, layer.max, tops[0])


def _spp(g, layer, xs, tops):
    N, C, H, W = g.net.blobs[layer.bottom_names[0]].shape
    parts = []
    for kh, kw, ph, pw, y, _, _ in layer.levels:
        oh, ow = y.shape[2:]
        eh, ew = max((oh - 1) * kh + kh - H - ph, 0), max((ow - 1) * kw + kw - W - pw, 0)
        pooled = _pool(g, xs[0], kh, kw, kh, kw, ph, pw, eh, ew, layer.max)
        parts.append(pooled if len(layer.levels) == 1 else g.node("Flatten", [pooled], axis=1))
    if len(parts) == 1:
        return g.node("Identity", parts, tops)
    return g.node("Concat", parts, tops, axis=1)


def _relu(g, layer, xs, tops):
    slope = layer.p.relu_param.negative_slope
    return g.node("LeakyRelu", xs, tops, alpha=slope) if slope else g.node("Relu", xs, tops)


def _simple(op, **fixed):
    return lambda g, layer, xs, tops: g.node(op, xs, tops, **fixed)


def _elu(g, layer, xs, tops):
    return g.node("Elu", xs, tops, alpha=layer.p.elu_param.alpha)


def _affine(g, x, scale, shift, hint):
    if scale != 1:
        x = g.node("Mul", [x, g.const(f"{hint}_scale", scale)])
    if shift != 0:
        x = g.node("Add", [x, g.const(f"{hint}_shift", shift)])
    return x


def _power(g, layer, xs, tops):
    p = layer.p.power_param
    z = _affine(g, xs[0], p.scale, p.shift, layer.name)
    return g.node("Pow", [z, g.const(f"{layer.name}_power", p.power)], tops)


def _exp(g, layer, xs, tops):
    p = layer.p.exp_param
    ln_base = 1.0 if p.base == -1 else float(np.log(p.base))
    z = _affine(g, xs[0], p.scale * ln_base, p.shift * ln_base, layer.name)
    return g.node("Exp", [z], tops)


def _log(g, layer, xs, tops):
    p = layer.p.log_param
    y = g.node("Log", [_affine(g, xs[0], p.scale, p.shift, layer.name)])
    inv_ln_base = 1.0 if p.base == -1 else 1.0 / float(np.log(p.base))
    return g.node("Mul", [y, g.const(f"{layer.name}_base", inv_ln_base)], tops)


def _threshold(g, layer, xs, tops):
    above = g.node("Greater", [xs[0], g.const(f"{layer.name}_t", layer.p.threshold_param.threshold)])
    return g.node("Cast", [above], tops, to=g.onnx.TensorProto.FLOAT)


def _prelu(g, layer, xs, tops):
    return g.node("PRelu", [xs[0], g.const(f"{layer.name}_slope", _params(layer)[0].reshape(layer.bshape[1:]))], tops)


def _swish(g, layer, xs, tops):
    s = g.node("Sigmoid", [_affine(g, xs[0], layer.p.swish_param.beta, 0.0, layer.name)])
    return g.node("Mul", [xs[0], s], tops)


def _hard_sigmoid(g, layer, xs, tops):
    p = layer.p.hard_sigmoid_param
    return g.node("HardSigmoid", xs, tops, alpha=p.slope, beta=p.offset)


def _clip(g, layer, xs, tops):
    return g.node("Clip", [xs[0], g.const("min", layer.lo), g.const("max", layer.hi)], tops)


def _maxout(g, layer, xs, tops):
    grouped = g.node("Reshape", [xs[0], g.ints("shape", [0] + list(layer.gshape[1:]))])
    return g.node("ReduceMax", [grouped, g.ints("axes", [2])], tops, keepdims=0)


def _softmax(g, layer, xs, tops):
    return g.node("Softmax", xs, tops, axis=layer.axis)


def _batch_norm(g, layer, xs, tops):
    if layer.batch_stats:
        raise NetcliError(f"layer '{layer.name}' (BatchNorm): use_global_stats is false, so its output depends on "
                          "the batch; ONNX export needs the stored statistics")
    mean, var, s = _params(layer)
    f = 0.0 if s[0] == 0 else 1.0 / float(s[0])
    C = mean.shape[0]
    return g.node("BatchNormalization", [xs[0], g.const("one", np.ones(C)), g.const("zero", np.zeros(C)),
                                         g.const(f"{layer.name}_mean", mean * f), g.const(f"{layer.name}_var", var * f)],
                  tops, epsilon=layer.p.batch_norm_param.eps)


def _broadcast_shape(g, layer, first_axis, shape):
    nd = len(g.net.blobs[layer.bottom_names[0]].shape)
    return list(shape) + [1] * (nd - first_axis - len(shape))


def _scale(g, layer, xs, tops):
    p = layer.p.scale_param
    x = g.net.blobs[layer.bottom_names[0]]
    axis = p.axis % len(x.shape)
    params = _params(layer)
    if layer.from_bottom:
        shape = g.net.blobs[layer.bottom_names[1]].shape
        gamma = g.node("Reshape", [xs[1], g.ints("shape", _broadcast_shape(g, layer, axis, shape))])
    else:
        shape = params[0].shape
        gamma = g.const(f"{layer.name}_gamma", params[0].reshape(_broadcast_shape(g, layer, axis, shape)))
    if axis == 0 and not layer.from_bottom:
        raise NetcliError(f"layer '{layer.name}' (Scale): a learned scale over the batch axis cannot be exported")
    if not p.bias_term:
        return g.node("Mul", [xs[0], gamma], tops)
    y = g.node("Mul", [xs[0], gamma])
    return g.node("Add", [y, g.const(f"{layer.name}_beta", params[-1].reshape(_broadcast_shape(g, layer, axis, shape)))],
                  tops)


def _bias(g, layer, xs, tops):
    axis = layer.p.bias_param.axis % len(g.net.blobs[layer.bottom_names[0]].shape)
    if len(xs) > 1:
        shape = g.net.blobs[layer.bottom_names[1]].shape
        b = g.node("Reshape", [xs[1], g.ints("shape", _broadcast_shape(g, layer, axis, shape))])
    else:
        if axis == 0:
            raise NetcliError(f"layer '{layer.name}' (Bias): a learned bias over the batch axis cannot be exported")
        v = _params(layer)[0]
        b = g.const(f"{layer.name}_b", v.reshape(_broadcast_shape(g, layer, axis, v.shape)))
    return g.node("Add", [xs[0], b], tops)


def _lrn(g, layer, xs, tops):
    p = layer.p.lrn_param
    if p.norm_region != "ACROSS_CHANNELS":
        raise NetcliError(f"layer '{layer.name}' (LRN): WITHIN_CHANNEL has no ONNX operator; only ACROSS_CHANNELS exports")
    return g.node("LRN", xs, tops, size=p.local_size, alpha=p.alpha, beta=p.beta, bias=p.k)


def _mvn(g, layer, xs, tops):
    p = layer.p.mvn_param
    nd = len(g.net.blobs[layer.bottom_names[0]].shape)
    axes = g.ints("axes", list(range(1 if p.across_channels else 2, nd)))
    z = g.node("Sub", [xs[0], g.node("ReduceMean", [xs[0], axes], keepdims=1)])
    if not p.normalize_variance:
        return g.node("Identity", [z], tops)
    std = g.node("Sqrt", [g.node("ReduceMean", [g.node("Mul", [z, z]), axes], keepdims=1)])
    return g.node("Div", [z, g.node("Add", [std, g.const("eps", p.eps)])], tops)


def _reshape_to_top(g, layer, xs, tops):
    """Flatten and Reshape: the top's shape, keeping the batch axis free when the layer keeps it."""
    x, t = g.net.blobs[layer.bottom_names[0]], g.net.blobs[layer.top_names[0]]
    keeps_batch = len(t.shape) > 0 and t.shape[0] == x.shape[0]
    shape = g.dims(layer.top_names[0]) if keeps_batch else list(t.shape)
    return g.node("Reshape", [xs[0], g.ints("shape", shape)], tops)


def _concat(g, layer, xs, tops):
    return g.node("Concat", xs, tops, axis=layer.axis)


def _slice(g, layer, xs, tops):
    sizes = np.diff(layer.offsets).tolist()
    outs = g.node("Split", [xs[0], g.ints("split", sizes)], tops, axis=layer.axis)
    return outs if isinstance(outs, list) else [outs]


def _eltwise(g, layer, xs, tops):
    if layer.op == "SUM":
        terms = [x if c == 1 else g.node("Mul", [x, g.const("coeff", c)]) for x, c in zip(xs, layer.coeff)]
        return g.node("Sum", terms, tops)
    if layer.op == "MAX":
        return g.node("Max", xs, tops)
    y = xs[0]                       # PROD: Mul takes two inputs
    for i, x in enumerate(xs[1:], 1):
        y = g.node("Mul", [y, x], tops if i == len(xs) - 1 else None)
    return y


def _identity(g, layer, xs, tops):
    return g.node("Identity", xs[:1], tops)


def _crop(g, layer, xs, tops):
    axes = [i for i, s in enumerate(layer.region) if s != slice(None)]
    starts = [layer.region[i].start for i in axes]
    ends = [layer.region[i].stop for i in axes]
    return g.node("Slice", [xs[0], g.ints("starts", starts), g.ints("ends", ends), g.ints("axes", axes)], tops)


def _tile(g, layer, xs, tops):
    nd = len(g.net.blobs[layer.bottom_names[0]].shape)
    reps = [1] * nd
    reps[layer.p.tile_param.axis % nd] = layer.tiles
    return g.node("Tile", [xs[0], g.ints("repeats", reps)], tops)


def _reduction(g, layer, xs, tops):
    nd = len(g.net.blobs[layer.bottom_names[0]].shape)
    a = layer.p.reduction_param.axis % nd
    op = {"SUM": "ReduceSum", "ASUM": "ReduceL1", "SUMSQ": "ReduceSumSquare", "MEAN": "ReduceMean"}[layer.op]
    y = g.node(op, [xs[0], g.ints("axes", list(range(a, nd)))], None if layer.coeff != 1 else tops, keepdims=0)
    return y if layer.coeff == 1 else g.node("Mul", [y, g.const("coeff", layer.coeff)], tops)


def _argmax(g, layer, xs, tops):
    k = g.ints("k", [layer.k])
    if layer.axis is not None:
        values, idx = g.node("TopK", [xs[0], k], [g.name("values"), g.name("indices")], axis=layer.axis)
        if layer.values:
            return g.node("Identity", [values], tops)
        return g.node("Cast", [idx], tops, to=g.onnx.TensorProto.FLOAT)
    flat = g.node("Flatten", xs, axis=1)
    values, idx = g.node("TopK", [flat, k], [g.name("values"), g.name("indices")], axis=1)
    idx = g.node("Cast", [idx], to=g.onnx.TensorProto.FLOAT)
    rows = g.node("Concat", [idx, values], axis=1) if layer.values else idx
    return g.node("Reshape", [rows, g.ints("shape", g.dims(layer.top_names[0]))], tops)


def _embed(g, layer, xs, tops):
    idx = g.node("Cast", xs, to=g.onnx.TensorProto.INT64)
    params = _params(layer)
    w = g.const(f"{layer.name}_w", params[0])
    if len(params) == 1:
        return g.node("Gather", [w, idx], tops, axis=0)
    return g.node("Add", [g.node("Gather", [w, idx], axis=0), g.const(f"{layer.name}_b", params[1])], tops)


EXPORTERS = {
    "Convolution": _convolution, "Deconvolution": _deconvolution, "InnerProduct": _inner_product,
    "Pooling": _pooling, "SPP": _spp,
    "ReLU": _relu, "Sigmoid": _simple("Sigmoid"), "TanH": _simple("Tanh"), "ELU": _elu, "AbsVal": _simple("Abs"),
    "BNLL": _simple("Softplus"), "Power": _power, "Exp": _exp, "Log": _log, "Threshold": _threshold,
    "PReLU": _prelu, "Swish": _swish, "HardSigmoid": _hard_sigmoid, "Clip": _clip, "HardTanh": _clip,
    "Maxout": _maxout, "Dropout": _identity, "Softmax": _softmax,
    "BatchNorm": _batch_norm, "Scale": _scale, "Bias": _bias, "LRN": _lrn, "MVN": _mvn,
    "Flatten": _reshape_to_top, "Reshape": _reshape_to_top, "Concat": _concat, "Slice": _slice,
    "Split": None,    # in export_onnx: a Split's tops are its bottom's value under other names
    "Eltwise": _eltwise, "Crop": _crop, "Tile": _tile, "Reduction": _reduction, "ArgMax": _argmax, "Embed": _embed,
}
