"""Each layer type's ONNX export, as a function the layer class names (`to_onnx = onnx_ops.conv`):
(layer, graph, bottom values, top names) -> top value(s). The graph is netcli.io.onnx_export.Graph;
nothing here imports onnx (the graph does, when an export runs)."""
from __future__ import annotations

import numpy as np

from ..errors import NetcliError


def _params(layer):
    return [b.data.astype(np.float32) for b in layer.blobs]


def convolution(layer, g, xs, tops):
    w = g.const(f"{layer.name}_w", _params(layer)[0])
    ins = [w] + ([g.const(f"{layer.name}_b", _params(layer)[1])] if len(layer.blobs) > 1 else [])
    attrs = dict(kernel_shape=[layer.KH, layer.KW], strides=[layer.SH, layer.SW], dilations=[layer.DH, layer.DW],
                 pads=[layer.PH, layer.PW, layer.PH, layer.PW], group=layer.G)
    return [g.node("Conv", [x] + ins, [t], **attrs) for x, t in zip(xs, tops)]


def deconvolution(layer, g, xs, tops):
    w = g.const(f"{layer.name}_w", _params(layer)[0])
    ins = [w] + ([g.const(f"{layer.name}_b", _params(layer)[1])] if len(layer.blobs) > 1 else [])
    return g.node("ConvTranspose", [xs[0]] + ins, tops, kernel_shape=[layer.KH, layer.KW], strides=[layer.SH, layer.SW],
                  dilations=[layer.DH, layer.DW], pads=[layer.PH, layer.PW, layer.PH, layer.PW], group=layer.G)


def inner_product(layer, g, xs, tops):
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


def pooling(layer, g, xs, tops):
    if len(tops) > 1:
        raise NetcliError(f"layer '{layer.name}' (Pooling): the argmax mask top cannot be exported to ONNX")
    eh, ew = _pool_geometry(g, layer)
    return _pool(g, xs[0], layer.KH, layer.KW, layer.SH, layer.SW, layer.PH, layer.PW, eh, ew, layer.max, tops[0])


def spp(layer, g, xs, tops):
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


def relu(layer, g, xs, tops):
    slope = layer.p.relu_param.negative_slope
    return g.node("LeakyRelu", xs, tops, alpha=slope) if slope else g.node("Relu", xs, tops)


def simple(op, **fixed):
    """The exporter of a layer that is one ONNX operator on its bottoms."""
    return lambda layer, g, xs, tops: g.node(op, xs, tops, **fixed)


def elu(layer, g, xs, tops):
    return g.node("Elu", xs, tops, alpha=layer.p.elu_param.alpha)


def _affine(g, x, scale, shift, hint):
    if scale != 1:
        x = g.node("Mul", [x, g.const(f"{hint}_scale", scale)])
    if shift != 0:
        x = g.node("Add", [x, g.const(f"{hint}_shift", shift)])
    return x


def power(layer, g, xs, tops):
    p = layer.p.power_param
    z = _affine(g, xs[0], p.scale, p.shift, layer.name)
    return g.node("Pow", [z, g.const(f"{layer.name}_power", p.power)], tops)


def exp(layer, g, xs, tops):
    p = layer.p.exp_param
    ln_base = 1.0 if p.base == -1 else float(np.log(p.base))
    z = _affine(g, xs[0], p.scale * ln_base, p.shift * ln_base, layer.name)
    return g.node("Exp", [z], tops)


def log(layer, g, xs, tops):
    p = layer.p.log_param
    y = g.node("Log", [_affine(g, xs[0], p.scale, p.shift, layer.name)])
    inv_ln_base = 1.0 if p.base == -1 else 1.0 / float(np.log(p.base))
    return g.node("Mul", [y, g.const(f"{layer.name}_base", inv_ln_base)], tops)


def threshold(layer, g, xs, tops):
    above = g.node("Greater", [xs[0], g.const(f"{layer.name}_t", layer.p.threshold_param.threshold)])
    return g.node("Cast", [above], tops, to=g.onnx.TensorProto.FLOAT)


def prelu(layer, g, xs, tops):
    return g.node("PRelu", [xs[0], g.const(f"{layer.name}_slope", _params(layer)[0].reshape(layer.bshape[1:]))], tops)


def swish(layer, g, xs, tops):
    s = g.node("Sigmoid", [_affine(g, xs[0], layer.p.swish_param.beta, 0.0, layer.name)])
    return g.node("Mul", [xs[0], s], tops)


def hard_sigmoid(layer, g, xs, tops):
    p = layer.p.hard_sigmoid_param
    return g.node("HardSigmoid", xs, tops, alpha=p.slope, beta=p.offset)


def clip(layer, g, xs, tops):
    return g.node("Clip", [xs[0], g.const("min", layer.lo), g.const("max", layer.hi)], tops)


def maxout(layer, g, xs, tops):
    grouped = g.node("Reshape", [xs[0], g.ints("shape", [0] + list(layer.gshape[1:]))])
    return g.node("ReduceMax", [grouped, g.ints("axes", [2])], tops, keepdims=0)


def softmax(layer, g, xs, tops):
    return g.node("Softmax", xs, tops, axis=layer.axis)


def batch_norm(layer, g, xs, tops):
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


def scale(layer, g, xs, tops):
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


def bias(layer, g, xs, tops):
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


def lrn(layer, g, xs, tops):
    p = layer.p.lrn_param
    if p.norm_region != "ACROSS_CHANNELS":
        raise NetcliError(f"layer '{layer.name}' (LRN): WITHIN_CHANNEL has no ONNX operator; only ACROSS_CHANNELS exports")
    return g.node("LRN", xs, tops, size=p.local_size, alpha=p.alpha, beta=p.beta, bias=p.k)


def mvn(layer, g, xs, tops):
    p = layer.p.mvn_param
    nd = len(g.net.blobs[layer.bottom_names[0]].shape)
    axes = g.ints("axes", list(range(1 if p.across_channels else 2, nd)))
    z = g.node("Sub", [xs[0], g.node("ReduceMean", [xs[0], axes], keepdims=1)])
    if not p.normalize_variance:
        return g.node("Identity", [z], tops)
    std = g.node("Sqrt", [g.node("ReduceMean", [g.node("Mul", [z, z]), axes], keepdims=1)])
    return g.node("Div", [z, g.node("Add", [std, g.const("eps", p.eps)])], tops)


def reshape_to_top(layer, g, xs, tops):
    """Flatten and Reshape: the top's shape, keeping the batch axis free when the layer keeps it."""
    x, t = g.net.blobs[layer.bottom_names[0]], g.net.blobs[layer.top_names[0]]
    keeps_batch = len(t.shape) > 0 and t.shape[0] == x.shape[0]
    shape = g.dims(layer.top_names[0]) if keeps_batch else list(t.shape)
    return g.node("Reshape", [xs[0], g.ints("shape", shape)], tops)


def concat(layer, g, xs, tops):
    return g.node("Concat", xs, tops, axis=layer.axis)


def slice_axis(layer, g, xs, tops):
    sizes = np.diff(layer.offsets).tolist()
    outs = g.node("Split", [xs[0], g.ints("split", sizes)], tops, axis=layer.axis)
    return outs if isinstance(outs, list) else [outs]


def eltwise(layer, g, xs, tops):
    if layer.op == "SUM":
        terms = [x if c == 1 else g.node("Mul", [x, g.const("coeff", c)]) for x, c in zip(xs, layer.coeff)]
        return g.node("Sum", terms, tops)
    if layer.op == "MAX":
        return g.node("Max", xs, tops)
    y = xs[0]                       # PROD: Mul takes two inputs
    for i, x in enumerate(xs[1:], 1):
        y = g.node("Mul", [y, x], tops if i == len(xs) - 1 else None)
    return y


def identity(layer, g, xs, tops):
    return g.node("Identity", xs[:1], tops)


def crop(layer, g, xs, tops):
    axes = [i for i, s in enumerate(layer.region) if s != slice(None)]
    starts = [layer.region[i].start for i in axes]
    ends = [layer.region[i].stop for i in axes]
    return g.node("Slice", [xs[0], g.ints("starts", starts), g.ints("ends", ends), g.ints("axes", axes)], tops)


def tile(layer, g, xs, tops):
    nd = len(g.net.blobs[layer.bottom_names[0]].shape)
    reps = [1] * nd
    reps[layer.p.tile_param.axis % nd] = layer.tiles
    return g.node("Tile", [xs[0], g.ints("repeats", reps)], tops)


def reduction(layer, g, xs, tops):
    nd = len(g.net.blobs[layer.bottom_names[0]].shape)
    a = layer.p.reduction_param.axis % nd
    op = {"SUM": "ReduceSum", "ASUM": "ReduceL1", "SUMSQ": "ReduceSumSquare", "MEAN": "ReduceMean"}[layer.op]
    y = g.node(op, [xs[0], g.ints("axes", list(range(a, nd)))], None if layer.coeff != 1 else tops, keepdims=0)
    return y if layer.coeff == 1 else g.node("Mul", [y, g.const("coeff", layer.coeff)], tops)


def argmax(layer, g, xs, tops):
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


def embed(layer, g, xs, tops):
    idx = g.node("Cast", xs, to=g.onnx.TensorProto.INT64)
    params = _params(layer)
    w = g.const(f"{layer.name}_w", params[0])
    if len(params) == 1:
        return g.node("Gather", [w, idx], tops, axis=0)
    return g.node("Add", [g.node("Gather", [w, idx], axis=0), g.const(f"{layer.name}_b", params[1])], tops)
