"""How an exported ONNX model's input is prepared (issue 24): netcli's data layers subtract a
mean and multiply by a scale (Caffe's transform_param) before the net sees a sample, and an
ONNX graph of the net alone expects what the data layer gives, not raw pixels.

The decision: the graph's input stays the net's input blob (as before, and as Caffe's deploy
nets take it), and the model's metadata_props always say how to prepare it:
  netcli:preprocess  JSON {shape, colors, scale, crop_size, mean: [per channel] | "image" | null}
  netcli:input       in words, e.g. "data = (pixels 0..255 - mean) * 0.00390625, RGB, NCHW"
With raw_input (`netcli export --raw-input`), Sub and Mul nodes do the mean and scale in the
graph, so ONNX Runtime on raw pixels (float 0..255, the net's input shape) gives what netcli
gives on the same images; a centre crop is then refused (the caller crops)."""
from __future__ import annotations

import json

import numpy as np

from ..errors import NetcliError


def find_preprocessing(net, weights):
    """The Preprocessing of net's first data layer, else the one kept in `weights`, else None."""
    from ..data.transform import Preprocessing
    layers = net.data_layers()
    if layers:
        return Preprocessing.of_data_layer(layers[0])
    if weights and "," not in str(weights):
        from .weights import read_preprocessing
        return read_preprocessing(weights)
    return None


def metadata(pre, input_name):
    """{key: text} for the model's metadata_props; {} without a known preprocessing."""
    if pre is None:
        return {}
    mean = None if pre.mean is None else ("image" if pre.mean.size > pre.shape[0] else
                                          [float(v) for v in pre.mean.reshape(-1)])
    meta = {"shape": list(pre.shape), "colors": pre.colors, "scale": pre.scale, "crop_size": pre.crop_size,
            "mean": mean}
    words = "pixels 0..255"
    if mean is not None:
        words = f"({words} - mean)" if pre.scale != 1 else f"{words} - mean"
    if pre.scale != 1:
        words += f" * {pre.scale:.8g}"
    crop = f", centre crop {pre.crop_size}" if pre.crop_size else ""
    return {"netcli:preprocess": json.dumps(meta), "netcli:input": f"{input_name} = {words}, {pre.colors}, NCHW{crop}"}


def raw_input_nodes(g, name, pre):
    """Nodes taking raw pixels in graph input `name` to what the net's first layer reads:
    (x - mean) * scale. Returns the value holding the result."""
    if pre is None:
        raise NetcliError("--raw-input: nothing says how the inputs were prepared (no data layer in the net, and "
                          "no preprocessing kept in the weights)")
    if pre.crop_size:
        raise NetcliError(f"--raw-input: the net's inputs are centre-cropped to {pre.crop_size}; crop before "
                          "feeding the model and export without --raw-input (the metadata says the rest)")
    x = name
    if pre.mean is not None:
        mean = pre.mean if pre.mean.ndim == 3 else pre.mean.reshape(-1, 1, 1)
        x = g.node("Sub", [x, g.const(f"{name}_mean", np.asarray(mean, np.float32))], hint=f"{name}_centred")
    if pre.scale != 1:
        x = g.node("Mul", [x, g.const(f"{name}_scale", np.float32(pre.scale))], hint=f"{name}_scaled")
    return x
