"""A netcli layer list (the YAML's dicts) as a PyTorch model, for bench/nets_vs_torch.py.

The net runs blob by blob as netcli runs it: each step reads its bottoms from a table of named
tensors and writes its tops (in-place layers rebind the name). Shapes are PyTorch's own: each
module is built, then run once on a sample of batch 1, so a translation that disagrees with
netcli's shapes shows up as a shape error here or in the per-layer table. BatchNorm followed by
Scale on its top becomes one BatchNorm2d with its affine, as PyTorch users write it; Split is no
step (every reader sees the same tensor). Caffe's pooling rounds up (ceil_mode), and its average
pooling counts the padding (PyTorch's count_include_pad, the default).
PyTorch is imported here only; netcli never imports this module.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def as_list(v):
    return [] if v is None else [v] if isinstance(v, str) else list(v)


def pair(p, base, default):
    """Caffe's `base` (one value or h, w) or `base_h`/`base_w`, as (h, w)."""
    short = "kernel" if base == "kernel_size" else base
    if f"{short}_h" in p:
        return p[f"{short}_h"], p[f"{short}_w"]
    v = p.get(base, default)
    v = v if isinstance(v, list) else [v]
    return (v[0], v[-1]) if v else (default, default)


class Eltwise(nn.Module):
    def __init__(self, op, coeff):
        super().__init__()
        self.op, self.coeff = op, coeff

    def forward(self, *xs):
        if self.op == "PROD":
            y = xs[0]
            for x in xs[1:]:
                y = y * x
            return y
        if self.op == "MAX":
            y = xs[0]
            for x in xs[1:]:
                y = torch.maximum(y, x)
            return y
        if self.coeff:
            y = self.coeff[0] * xs[0]
            for c, x in zip(self.coeff[1:], xs[1:]):
                y = y + c * x
            return y
        y = xs[0]
        for x in xs[1:]:
            y = y + x
        return y


class Concat(nn.Module):
    def __init__(self, axis):
        super().__init__()
        self.axis = axis

    def forward(self, *xs):
        return torch.cat(xs, self.axis)


class ScaleBias(nn.Module):
    """Caffe's Scale on its own (no BatchNorm before it): a per-channel multiplier and bias."""

    def __init__(self, channels, bias, ndim):
        super().__init__()
        shape = (channels,) + (1,) * (ndim - 2)
        self.weight = nn.Parameter(torch.ones(shape))
        self.bias = nn.Parameter(torch.zeros(shape)) if bias else None

    def forward(self, x):
        return x * self.weight + self.bias if self.bias is not None else x * self.weight


class SoftmaxLoss(nn.Module):
    """SoftmaxWithLoss: cross-entropy in training (the label is set before each run), the
    probabilities in inference."""

    def __init__(self):
        super().__init__()
        self.label = None

    def forward(self, x):
        return torch.softmax(x, 1) if self.label is None else F.cross_entropy(x, self.label)


def conv(p, x):
    kh, kw = pair(p, "kernel_size", None)
    return nn.Conv2d(x.shape[1], p["num_output"], (kh, kw), pair(p, "stride", 1), pair(p, "pad", 0),
                     pair(p, "dilation", 1), p.get("group", 1), bias=p.get("bias_term", True))


def pool(p, x):
    ave = p.get("pool", "MAX") == "AVE"
    if p.get("global_pooling"):
        return nn.AdaptiveAvgPool2d(1) if ave else nn.AdaptiveMaxPool2d(1)
    k, s, pad = pair(p, "kernel_size", None), pair(p, "stride", 1), pair(p, "pad", 0)
    ceil = p.get("round_mode", "CEIL") == "CEIL"
    return nn.AvgPool2d(k, s, pad, ceil_mode=ceil) if ave else nn.MaxPool2d(k, s, pad, ceil_mode=ceil)


def inner_product(p, x):
    axis = p.get("axis", 1)
    size = 1
    for d in x.shape[axis:]:
        size *= d
    return nn.Sequential(nn.Flatten(axis), nn.Linear(size, p["num_output"], bias=p.get("bias_term", True)))


def module(layer, xs, fused_scale):
    """The module of one layer given its bottom tensors (batch 1), or None when the step is no op."""
    t = layer["type"]
    p = layer.get({"Convolution": "convolution_param", "Pooling": "pooling_param", "InnerProduct":
                   "inner_product_param", "Eltwise": "eltwise_param", "Concat": "concat_param",
                   "LRN": "lrn_param", "Dropout": "dropout_param", "ReLU": "relu_param",
                   "Scale": "scale_param", "Softmax": "softmax_param"}.get(t, ""), None) or {}
    x = xs[0] if xs else None
    if t == "Convolution":
        return conv(p, x)
    if t == "Pooling":
        return pool(p, x)
    if t == "InnerProduct":
        return inner_product(p, x)
    if t == "BatchNorm":
        affine = fused_scale is not None
        return (nn.BatchNorm2d if x.dim() == 4 else nn.BatchNorm1d)(x.shape[1], affine=affine)
    if t == "Scale":
        return ScaleBias(x.shape[1], p.get("bias_term", False), x.dim())
    if t == "ReLU":
        slope = p.get("negative_slope", 0)
        return nn.LeakyReLU(slope) if slope else nn.ReLU()
    if t == "TanH":
        return nn.Tanh()
    if t == "Sigmoid":
        return nn.Sigmoid()
    if t == "Dropout":
        return nn.Dropout(p.get("dropout_ratio", 0.5))
    if t == "Eltwise":
        return Eltwise(p.get("operation", "SUM"), p.get("coeff"))
    if t == "Concat":
        return Concat(p.get("axis", 1))
    if t == "LRN":
        if p.get("norm_region", "ACROSS_CHANNELS") != "ACROSS_CHANNELS":
            raise ValueError("bench: LRN WITHIN_CHANNEL has no PyTorch module")
        return nn.LocalResponseNorm(p.get("local_size", 5), p.get("alpha", 1.0), p.get("beta", 0.75), p.get("k", 1.0))
    if t == "Softmax":
        return nn.Softmax(p.get("axis", 1))
    if t == "Flatten":
        return nn.Flatten()
    if t == "SoftmaxWithLoss":
        return SoftmaxLoss()
    raise ValueError(f"bench: no PyTorch translation for layer type {t}")


class TorchNet:
    """The layer list as PyTorch modules, run blob by blob. sample: the input's shape without
    the batch axis; the input blob is `data`."""

    def __init__(self, layers, sample):
        self.steps = []              # (name, type, bottoms, tops)
        self.modules = nn.ModuleDict()
        self.loss = None
        fused = {}                   # BatchNorm's name -> the Scale folded into it
        skip = set()
        for k, layer in enumerate(layers):
            if layer["type"] == "BatchNorm":
                top = as_list(layer.get("top"))[0]
                after = layers[k + 1] if k + 1 < len(layers) else None
                if after and after["type"] == "Scale" and as_list(after.get("bottom")) == [top]:
                    fused[layer["name"]] = after["name"]
                    skip.add(after["name"])
        blobs = {"data": torch.zeros(1, *sample)}
        with torch.no_grad():
            for layer in layers:
                name, t = layer["name"], layer["type"]
                if name in skip:
                    continue
                bottoms, tops = as_list(layer.get("bottom")), as_list(layer.get("top"))
                if t == "SoftmaxWithLoss":
                    bottoms = bottoms[:1]            # the label is the module's (SoftmaxLoss.label)
                if t == "Split":
                    for top in tops:
                        blobs[top] = blobs[bottoms[0]]
                    continue
                m = module(layer, [blobs[b] for b in bottoms], fused.get(name))
                m.eval()
                if isinstance(m, SoftmaxLoss):
                    self.loss = m
                self.modules[name] = m
                self.steps.append((name, t, bottoms, tops))
                blobs[tops[0]] = m(*[blobs[b] for b in bottoms])

    def run(self, x, y=None):
        """Forward: the loss when y is given (training), else the last top."""
        if self.loss is not None:
            self.loss.label = y
        blobs = {"data": x}
        for name, _, bottoms, tops in self.steps:
            blobs[tops[0]] = self.modules[name](*[blobs[b] for b in bottoms])
        return blobs[self.steps[-1][3][0]]

    def layer_times(self, x, y, iters, clock, backward=True):
        """Per step: (name, forward ms, backward ms (the gradients of its params and its inputs;
        0 without backward)), each step on the inputs that one forward of the whole net gave it."""
        if self.loss is not None:
            self.loss.label = y
        blobs = {"data": x}
        out = []
        for name, t, bottoms, tops in self.steps:
            fn = self.modules[name]
            xs = [blobs[b].detach().requires_grad_(backward and b != "data") for b in bottoms]
            params = list(fn.parameters())
            f = b = 0.0
            for _ in range(iters):
                s = clock()
                yv = fn(*xs)
                f += clock() - s
                wrt = params + [v for v in xs if v.requires_grad]
                if wrt and backward:
                    g = torch.ones_like(yv)
                    s = clock()
                    torch.autograd.grad(yv, wrt, g)
                    b += clock() - s
            out.append((name, f / iters * 1e3, b / iters * 1e3))
            blobs[tops[0]] = yv.detach()
        return out


def load_from_netcli(model, net):
    """Copy a netcli net's params into the TorchNet of the same layer list (BatchNorm's stored
    statistics divided by its scale factor, as Caffe does; the Scale folded into a BatchNorm as its
    affine), so that both compute the same function: the check of this translation."""
    def put(param, blob):
        param.copy_(torch.from_numpy(blob.data).reshape(param.shape))
    with torch.no_grad():
        for k, (name, layer) in enumerate(zip(net.layer_names, net.layers)):
            m = model.modules[name] if name in model.modules else None
            if m is None or not layer.blobs:
                continue
            if layer.type == "InnerProduct":
                m = m[1]
            if layer.type == "BatchNorm":
                factor = float(layer.blobs[2].data.reshape(-1)[0])
                factor = 1 / factor if factor else 0.0
                m.running_mean.copy_(torch.from_numpy(layer.blobs[0].data * factor))
                m.running_var.copy_(torch.from_numpy(layer.blobs[1].data * factor))
                m.eps = layer.p.batch_norm_param.eps
                if m.affine:
                    scale = net.layers[k + 1]
                    put(m.weight, scale.blobs[0])
                    put(m.bias, scale.blobs[1])
                continue
            put(m.weight, layer.blobs[0])
            if len(layer.blobs) > 1:
                put(m.bias, layer.blobs[1])


def logits(model, x):
    """The input of the last step (the loss or the softmax), in eval mode."""
    model.modules.eval()
    blobs = {"data": x}
    with torch.no_grad():
        for name, _, bottoms, tops in model.steps[:-1]:
            blobs[tops[0]] = model.modules[name](*[blobs[b] for b in bottoms])
    return blobs[model.steps[-1][2][0]]
